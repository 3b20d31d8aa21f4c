"""Exporters: the last consumers of a pipeline, sending data out of the sidecar.

Every exporter is built on :mod:`agent.exporters.helper` (the collector's
``exporterhelper``): its ``consume_<signal>`` methods hand data to a per-signal
sending queue (or send inline when the queue is off), and the helper's workers
push it with retries, a per-attempt timeout and the ``otelcol_exporter_*``
self-metrics. Exporters declare ``mutates_data=False``: they read shared data
and never edit it.

One instance per component id serves every signal it is used with. Shutdown
(after the receivers stopped) drains the queues within the service's
``shutdown_grace``; whatever cannot be sent by then is counted as
``send_failed`` and logged once.

Components: ``debug`` (counts or dumps to the log), ``file`` (OTLP/JSON lines or
length-prefixed protobuf, with rotation).
"""
