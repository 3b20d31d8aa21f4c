"""The ``otlphttp`` exporter (alias ``otlp_http``): OTLP over HTTP, protobuf or JSON.

Modules: :mod:`.config` (keys and defaults), :mod:`.exporter`
(:class:`~agent.exporters.otlphttp.exporter.OTLPHttpExporter`) and
:mod:`.factory`. TLS and partial-success handling are shared with the gRPC
exporter (:mod:`agent.exporters.otlp`).

Invariant: an unmodified batch encoded as protobuf is sent as the exact bytes
it arrived as (compressed on the wire when ``compression`` is set).
"""
