"""The ``otlp`` exporter (alias ``otlp_grpc``): OTLP over gRPC, plus client plumbing shared with others.

Modules:

* :mod:`.config`: the exporter's config (the collector's keys and defaults).
* :mod:`.exporter`: :class:`~agent.exporters.otlp.exporter.OTLPGrpcExporter`.
* :mod:`.grpc_client`: gRPC client config, channel and status mapping (also used by ``jaeger``).
* :mod:`.tls`: client TLS config (also used by ``otlphttp`` and ``jaeger``).
* :mod:`.partial`: ``partial_success`` accounting (also used by ``otlphttp``).

Invariant: an unmodified batch is sent as the exact bytes it arrived as.
"""
