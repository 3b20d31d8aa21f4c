"""The ``span_detectors`` connector: slow requests, slow queries and N+1 queries, traces -> logs and metrics.

See :mod:`agent.connectors.span_detectors.connector` for behaviour and the
design choice (a connector, not a processor) and
:mod:`agent.connectors.span_detectors.config` for the keys.
"""
