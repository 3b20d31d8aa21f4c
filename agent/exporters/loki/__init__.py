"""The ``loki`` exporter: OTLP logs to Loki's push API.

* :mod:`.config`: keys, defaults and validation (labels, structured metadata, line format, limits).
* :mod:`.convert`: OTLP logs -> streams of entries, in one pass (the hot path).
* :mod:`.encode`: snappy-compressed ``push.proto`` (hand-written encoder) or JSON bodies.
* :mod:`.wire`: varints and memoized ``structuredMetadata`` field encoding, shared by both.
* :mod:`.exporter`: the component: HTTP, Loki's status codes, per-stream fallback on 400.
* :mod:`.factory`: ``FACTORY`` for the registry.

Invariants: the data handed to the exporter is never modified (read-only
consumer); each request is converted and encoded once per attempt, straight
from the OTLP messages into the wire form (structured metadata is encoded
during the conversion in protobuf mode); one stream per distinct label set,
entries sorted by timestamp within a stream.
"""
