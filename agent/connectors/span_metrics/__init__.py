"""The ``span_metrics`` connector (alias ``spanmetrics``): RED metrics from spans, traces -> metrics.

See :mod:`agent.connectors.span_metrics.connector` for behaviour and
:mod:`agent.connectors.span_metrics.config` for the keys.
"""
