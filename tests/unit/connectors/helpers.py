"""Span builders and metric readers for the span connector tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.pdata import Metrics, Traces, proto
from agent.pdata.attributes import set_any_value, value_to_python

MS = 1_000_000
T0 = 1_700_000_000_000_000_000
SERVER = proto.Span.SPAN_KIND_SERVER
CLIENT = proto.Span.SPAN_KIND_CLIENT
INTERNAL = proto.Span.SPAN_KIND_INTERNAL


def tid(n: int) -> bytes:
    return (0xA000 + n).to_bytes(16, "big")


def sid(n: int) -> bytes:
    return (0xB000 + n).to_bytes(8, "big")


@dataclass
class S:
    """A span to build: ids are small ints (0 parent: none); durations in ms."""

    trace: int
    span: int
    name: str = "op"
    parent: int = 0
    kind: int = SERVER
    start_ms: float = 0.0
    dur_ms: float = 1.0
    attrs: dict[str, Any] = field(default_factory=dict)
    error: bool = False
    no_trace_id: bool = False
    flags: int = 0


def traces(spans: list[S], *, service: str | None = "svc", resource: dict[str, Any] | None = None,
           scope: str = "tests", scope_version: str = "") -> Traces:
    """One request: one resource (``service.name`` plus ``resource``), one scope, ``spans``."""
    req = proto.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    attrs = dict(resource or {})
    if service is not None:
        attrs = {"service.name": service, **attrs}
    for k, v in attrs.items():
        kv = rs.resource.attributes.add()
        kv.key = k
        set_any_value(kv.value, v)
    ss = rs.scope_spans.add()
    ss.scope.name = scope
    ss.scope.version = scope_version
    for sp in spans:
        s = ss.spans.add()
        if not sp.no_trace_id:
            s.trace_id = tid(sp.trace)
        s.span_id = sid(sp.span)
        if sp.parent:
            s.parent_span_id = sid(sp.parent)
        s.name = sp.name
        s.flags = sp.flags
        s.kind = sp.kind  # type: ignore[assignment]
        s.start_time_unix_nano = T0 + int(sp.start_ms * MS)
        s.end_time_unix_nano = s.start_time_unix_nano + int(sp.dur_ms * MS)
        if sp.error:
            s.status.code = proto.Status.STATUS_CODE_ERROR
        for k, v in sp.attrs.items():
            kv = s.attributes.add()
            kv.key = k
            set_any_value(kv.value, v)
    return Traces(req)


def attrs_of(point: Any) -> dict[str, Any]:
    return {kv.key: value_to_python(kv.value) for kv in point.attributes}


def metrics_by_name(md: Metrics) -> dict[str, list[tuple[dict[str, Any], Any, Any]]]:
    """``{metric name: [(resource attributes, metric, point), ...]}`` of one request."""
    out: dict[str, list[tuple[dict[str, Any], Any, Any]]] = {}
    for rm in md.proto.resource_metrics:
        res = attrs_of(rm.resource)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                which = m.WhichOneof("data")
                for p in getattr(m, which).data_points:
                    out.setdefault(m.name, []).append((res, m, p))
    return out


def point_for(md: Metrics, name: str, **match: Any) -> Any:
    """The single point of metric ``name`` whose attributes include ``match`` (dots as ``__``)."""
    want = {k.replace("__", "."): v for k, v in match.items()}
    found = [p for _, _, p in metrics_by_name(md).get(name, []) if want.items() <= attrs_of(p).items()]
    assert len(found) == 1, (name, want, [attrs_of(p) for _, _, p in metrics_by_name(md).get(name, [])])
    return found[0]
