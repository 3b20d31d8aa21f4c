"""OTLP traces -> Jaeger api_v2 ``PostSpansRequest`` bodies.

Mapping (shared/docs/protocols.md 3.2; the collector's
``pkg/translator/jaeger/traces_to_jaegerproto.go`` plus the spec-only tags the
team decided to emit, protocols.md 6):

* One ``Batch`` per distinct resource (ResourceSpans with byte-identical
  resources, as a batch processor's merged requests have, share one Batch).
  ``Process.service_name`` = resource ``service.name`` (its string form), or
  ``OTLPResourceNoServiceName`` when absent or empty; every other resource
  attribute becomes a ``Process`` tag.
* Span: ids unchanged (the 16-byte trace id is Jaeger's big-endian high/low
  pair); ``operation_name`` = name; ``flags`` = the W3C sampled bit of the
  OTLP span flags; ``start_time`` and ``duration`` (end - start, never
  negative) exact to the nanosecond.
* References: a non-zero parent -> ``CHILD_OF`` first; each link ->
  ``FOLLOWS_FROM`` (``CHILD_OF`` when the link has
  ``opentracing.ref_type=child_of``).
* Tags in order: ``otel.scope.name``, ``otel.scope.version``,
  ``otel.library.name``, ``otel.library.version`` (when non-empty); the span
  attributes; ``span.kind`` (client/server/producer/consumer; ``internal`` only
  with ``internal_kind_tag``); ``otel.status_code`` (OK/ERROR) and
  ``error=true`` for ERROR; ``otel.status_description`` (non-empty message);
  ``w3c.tracestate``; ``otel.dropped_{attributes,events,links}_count`` when
  non-zero.
* Events -> logs: ``timestamp`` = event time; fields = ``event``=<name>
  (unless the name is empty or an ``event`` attribute exists), then the
  attributes.
* Attribute values: string -> STRING, bool -> BOOL, int -> INT64, double ->
  FLOAT64, bytes -> BINARY (raw bytes); arrays and maps -> STRING holding
  compact JSON (bytes inside them base64, non-ASCII kept as is); empty -> "".

Speed (one attribute walk per span; messages built with ``.add()`` and
assignment): the request is parsed once into a *view*
(:mod:`agent.exporters.jaeger.otlpview`) in which each attribute is its
serialized OTLP ``KeyValue`` bytes. Those bytes key a cache of ready-made
Jaeger tag entries (tag ``KeyValue`` serialized and framed as field 8 of
``Span``), so a repeated attribute costs one dict lookup, and a span's tags
are merged into the span with a single C-level ``MergeFromString``. The cache
is bounded (:data:`TAG_CACHE_BYTES`, counting keys and values) and cleared
when full. Process conversions are cached per resource bytes.

Requests larger than ``max_request_bytes`` (Jaeger's gRPC server accepts 4 MiB
by default) are split by spans, each part carrying the Batch's Process.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from agent.exporters.jaeger._gen import collector_pb2, model_pb2
from agent.exporters.jaeger.otlpview import TracesView
from agent.pdata import proto
from agent.pdata.attributes import value_to_str
from agent.pdata.wire import delimited

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "NO_SERVICE_NAME", "TAG_CACHE_BYTES", "Converter"]

#: Service name of a resource without ``service.name`` (the collector's constant).
NO_SERVICE_NAME: Final = "OTLPResourceNoServiceName"
#: Bytes (keys + values) the attribute -> tag cache may hold before it is cleared.
TAG_CACHE_BYTES: Final = 4 << 20
#: Largest PostSpans request built (Jaeger's default gRPC limit is 4 MiB).
DEFAULT_MAX_REQUEST_BYTES: Final = (4 << 20) - (64 << 10)
_PROCESS_CACHE_ENTRIES: Final = 256
_NS: Final = 1_000_000_000

_STRING, _BOOL, _INT64, _FLOAT64, _BINARY = (model_pb2.STRING, model_pb2.BOOL, model_pb2.INT64,
                                             model_pb2.FLOAT64, model_pb2.BINARY)
_CHILD_OF, _FOLLOWS_FROM = model_pb2.CHILD_OF, model_pb2.FOLLOWS_FROM
_KIND_NAMES: Final = {2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUS_OK, _STATUS_ERROR = 1, 2
_SPAN_TAG: Final = b"\x42"  # LEN wire tag of Span.tags (8)
_ZERO_SPAN_ID: Final = bytes(8)


def tag_from_otlp(kv: Any, out: Any) -> None:
    """Fill the Jaeger ``KeyValue`` ``out`` from the OTLP ``KeyValue`` ``kv``."""
    out.key = kv.key
    v = kv.value
    which = v.WhichOneof("value")
    if which == "string_value":
        out.v_str = v.string_value
    elif which == "int_value":
        out.v_type = _INT64
        out.v_int64 = v.int_value
    elif which == "bool_value":
        out.v_type = _BOOL
        out.v_bool = v.bool_value
    elif which == "double_value":
        out.v_type = _FLOAT64
        out.v_float64 = v.double_value
    elif which == "bytes_value":
        out.v_type = _BINARY
        out.v_binary = v.bytes_value
    elif which is not None:  # array_value, kvlist_value: JSON text
        out.v_str = value_to_str(v)


def _tag(key: str, value: str | bool) -> bytes:
    """A ready-made ``Span.tags`` entry (framed as field 8) with a string or bool value."""
    t = model_pb2.KeyValue()
    t.key = key
    if isinstance(value, bool):
        t.v_type = _BOOL
        t.v_bool = value
    else:
        t.v_str = value
    return delimited(_SPAN_TAG, t.SerializeToString())


def _as_fields(entries: Iterable[bytes]) -> bytes:
    """Re-frame span tag entries (field 8) as ``Log.fields`` / ``Process.tags`` entries (field 2)."""
    return b"".join(b"\x12" + e[1:] for e in entries)


class Converter:
    """Stateful converter (it owns the caches); one per exporter, not thread-safe.

    Args:
        internal_kind_tag: also write ``span.kind=internal`` (the collector's
            behaviour; the spec omits it).
        max_request_bytes: split requests above this size.
        tag_cache_bytes: budget of the attribute cache.
    """

    def __init__(self, *, internal_kind_tag: bool = False, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                 tag_cache_bytes: int = TAG_CACHE_BYTES) -> None:
        self._cache: dict[bytes, bytes] = {}
        self._cache_used = 0
        self._cache_budget = tag_cache_bytes
        self._processes: dict[bytes, bytes] = {}
        self._scopes: dict[bytes, bytes] = {}
        self.max_request_bytes = max_request_bytes
        kinds = dict(_KIND_NAMES)
        if internal_kind_tag:
            kinds[1] = "internal"
        self._kind_tags = {k: _tag("span.kind", name) for k, name in kinds.items()}
        self._status_tags = {
            _STATUS_OK: _tag("otel.status_code", "OK"),
            _STATUS_ERROR: _tag("otel.status_code", "ERROR") + _tag("error", True),
        }

    # -- caches ----------------------------------------------------------------------------
    def _tag_entry(self, raw: bytes) -> bytes:
        """Jaeger tag entry (framed as ``Span.tags``) for serialized OTLP ``KeyValue`` bytes."""
        kv = proto.KeyValue()
        kv.ParseFromString(raw)
        t = model_pb2.KeyValue()
        tag_from_otlp(kv, t)
        entry = delimited(_SPAN_TAG, t.SerializeToString())
        used = self._cache_used + len(raw) + len(entry) + 100
        if used > self._cache_budget:
            self._cache.clear()
            used = len(raw) + len(entry) + 100
        self._cache[raw] = entry
        self._cache_used = used
        return entry

    def _entries(self, attributes: Any) -> list[bytes]:
        get = self._cache.get
        parts = [get(k) for k in attributes]
        if None in parts:
            parts = [p if p is not None else self._tag_entry(k) for p, k in zip(parts, attributes, strict=True)]
        return parts  # type: ignore[return-value]

    def process_bytes(self, resource: bytes) -> bytes:
        """Serialized Jaeger ``Process`` of a serialized OTLP ``Resource`` (cached)."""
        cached = self._processes.get(resource)
        if cached is not None:
            return cached
        res = proto.Resource()
        res.ParseFromString(resource)
        service = ""
        others: list[bytes] = []
        for kv in res.attributes:
            if kv.key == "service.name":
                service = value_to_str(kv.value)
            else:
                others.append(kv.SerializeToString())
        p = model_pb2.Process()
        p.service_name = service or NO_SERVICE_NAME
        p.MergeFromString(_as_fields(self._entries(others)))
        out = p.SerializeToString()
        if len(self._processes) >= _PROCESS_CACHE_ENTRIES:
            self._processes.clear()
        self._processes[resource] = out
        return out

    def _scope_tags(self, scope: bytes) -> bytes:
        cached = self._scopes.get(scope)
        if cached is not None:
            return cached
        sc = proto.InstrumentationScope()
        sc.ParseFromString(scope)
        out = b""
        if sc.name:
            out += _tag("otel.scope.name", sc.name)
        if sc.version:
            out += _tag("otel.scope.version", sc.version)
        if sc.name:
            out += _tag("otel.library.name", sc.name)
        if sc.version:
            out += _tag("otel.library.version", sc.version)
        if len(self._scopes) >= _PROCESS_CACHE_ENTRIES:
            self._scopes.clear()
        self._scopes[scope] = out
        return out

    # -- conversion ------------------------------------------------------------------------
    def convert(self, raw: bytes) -> list[bytes]:
        """Serialized ``PostSpansRequest`` bodies for one serialized ``ExportTraceServiceRequest``.

        Raises:
            google.protobuf.message.DecodeError: ``raw`` is not a valid request.
        """
        view = TracesView()
        view.ParseFromString(raw)
        requests: dict[bytes, Any] = {}
        kind_tags = self._kind_tags
        status_tags = self._status_tags
        entries = self._entries
        Link = proto.Span.Link
        for rs in view.resource_spans:
            resource = rs.resource
            req = requests.get(resource)
            if req is None:
                req = requests[resource] = collector_pb2.PostSpansRequest()
                req.batch.process.MergeFromString(self.process_bytes(resource))
            add_span = req.batch.spans.add
            for ss in rs.scope_spans:
                scope_tags = self._scope_tags(ss.scope)
                for s in ss.spans:
                    j = add_span()
                    trace_id = s.trace_id
                    j.trace_id = trace_id
                    j.span_id = s.span_id
                    j.operation_name = s.name
                    if s.flags & 1:
                        j.flags = 1
                    parent = s.parent_span_id
                    if parent and parent != _ZERO_SPAN_ID:
                        ref = j.references.add()
                        ref.trace_id = trace_id
                        ref.span_id = parent
                    links = s.links
                    for raw_link in links if links else ():
                        link = Link()
                        link.ParseFromString(raw_link)
                        ref = j.references.add()
                        ref.trace_id = link.trace_id
                        ref.span_id = link.span_id
                        ref.ref_type = _FOLLOWS_FROM
                        for kv in link.attributes:
                            if kv.key == "opentracing.ref_type" and kv.value.string_value == "child_of":
                                ref.ref_type = _CHILD_OF
                    start = s.start_time_unix_nano
                    end = s.end_time_unix_nano
                    ts = j.start_time
                    ts.seconds, ts.nanos = divmod(start, _NS)
                    du = j.duration
                    du.seconds, du.nanos = divmod(end - start if end > start else 0, _NS)
                    status = s.status
                    code = status.code
                    kind_tag = kind_tags.get(s.kind, b"")
                    status_tag = status_tags.get(code, b"") if code else b""
                    j.MergeFromString(scope_tags + b"".join(entries(s.attributes)) + kind_tag + status_tag)
                    message = status.message
                    if message:
                        t = j.tags.add()
                        t.key = "otel.status_description"
                        t.v_str = message
                    trace_state = s.trace_state
                    if trace_state:
                        t = j.tags.add()
                        t.key = "w3c.tracestate"
                        t.v_str = trace_state
                    if s.dropped_attributes_count or s.dropped_events_count or s.dropped_links_count:
                        self._dropped_tags(s, j)
                    events = s.events
                    if events:
                        self._logs(events, j)
        out: list[bytes] = []
        for req in requests.values():
            out.extend(self._serialize(req))
        return out

    @staticmethod
    def _dropped_tags(s: Any, j: Any) -> None:
        for key, count in (("otel.dropped_attributes_count", s.dropped_attributes_count),
                           ("otel.dropped_events_count", s.dropped_events_count),
                           ("otel.dropped_links_count", s.dropped_links_count)):
            if count:
                t = j.tags.add()
                t.key = key
                t.v_type = _INT64
                t.v_int64 = count

    def _logs(self, events: Any, j: Any) -> None:
        """Append one Jaeger ``Log`` per serialized OTLP event to span ``j``."""
        for raw_event in events:
            ev = proto.Span.Event()
            ev.ParseFromString(raw_event)
            lg = j.logs.add()
            lts = lg.timestamp
            lts.seconds, lts.nanos = divmod(ev.time_unix_nano, _NS)
            if ev.name and not any(kv.key == "event" for kv in ev.attributes):
                f = lg.fields.add()
                f.key = "event"
                f.v_str = ev.name
            if ev.attributes:
                lg.MergeFromString(_as_fields(self._entries([kv.SerializeToString() for kv in ev.attributes])))

    def _serialize(self, req: Any) -> list[bytes]:
        """Serialize ``req``, split by spans when it exceeds ``max_request_bytes``."""
        if req.ByteSize() <= self.max_request_bytes or len(req.batch.spans) <= 1:
            return [req.SerializeToString()]
        spans = req.batch.spans
        budget = self.max_request_bytes - req.batch.process.ByteSize() - 16
        parts: list[bytes] = []
        start = 0
        size = 0
        for i, span in enumerate(spans):
            n = span.ByteSize() + 6
            if size + n > budget and i > start:
                parts.append(self._part(req, spans[start:i]))
                start, size = i, 0
            size += n
        parts.append(self._part(req, spans[start:]))
        return parts

    @staticmethod
    def _part(req: Any, spans: Any) -> bytes:
        part = collector_pb2.PostSpansRequest()
        part.batch.process.CopyFrom(req.batch.process)
        part.batch.spans.extend(spans)
        return bytes(part.SerializeToString())
