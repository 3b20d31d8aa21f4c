"""The ``jaeger`` exporter: OTLP spans -> Jaeger api_v2 model -> ``CollectorService/PostSpans`` (gRPC).

A legacy path for Jaeger < 1.35: newer Jaeger (and every Jaeger v2) ingests
OTLP, for which the ``otlp`` exporter forwards batches unchanged.

Modules:

* :mod:`.config`: keys and defaults (gRPC client keys shared with ``otlp``).
* :mod:`.convert`: the mapping (protocols.md 3.2) and the fast, cached converter.
* :mod:`.otlpview`: byte-level views of OTLP requests used by the converter.
* :mod:`.exporter`: the component (exporter helper + gRPC client).
* ``proto/``: the api_v2 ``.proto`` sources (Jaeger's field numbers) and
  ``generate.py``, the one script that regenerates ``_gen/`` (the committed
  ``*_pb2.py``/``*_pb2.pyi`` modules; do not edit them).
"""
