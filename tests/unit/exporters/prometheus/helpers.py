"""Builders of OTLP metric requests for the Prometheus exporter tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agent.pdata import Metrics, proto

CUMULATIVE = proto.AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
DELTA = proto.AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
UNSPECIFIED = proto.AggregationTemporality.AGGREGATION_TEMPORALITY_UNSPECIFIED
NO_RECORDED_VALUE = 1
T0 = 1_700_000_000_000_000_000  # ns
SEC = 1_000_000_000

RESOURCE = {"service.name": "api", "service.namespace": "shop", "service.instance.id": "i-1", "host.name": "h1"}


def _attrs(target: Any, attrs: Mapping[str, Any] | None) -> None:
    for k, v in (attrs or {}).items():
        kv = target.add()
        kv.key = k
        if isinstance(v, bool):
            kv.value.bool_value = v
        elif isinstance(v, int):
            kv.value.int_value = v
        elif isinstance(v, float):
            kv.value.double_value = v
        elif isinstance(v, list):
            for item in v:
                kv.value.array_value.values.add().string_value = str(item)
        else:
            kv.value.string_value = str(v)


def exemplar(value: float, t: int, trace: int = 1, span: int = 2, attrs: Mapping[str, Any] | None = None) -> Any:
    e = proto.Metric().sum.data_points.add().exemplars.add()
    e.as_double = value
    e.time_unix_nano = t
    e.trace_id = trace.to_bytes(16, "big")
    e.span_id = span.to_bytes(8, "big")
    _attrs(e.filtered_attributes, attrs)
    return e


def num(value: float, attrs: Mapping[str, Any] | None = None, *, start: int = T0, t: int = T0 + SEC,
        flags: int = 0, exemplars: Iterable[Any] = ()) -> dict[str, Any]:
    return {"value": value, "attrs": attrs, "start": start, "t": t, "flags": flags, "exemplars": list(exemplars)}


def hist(bounds: list[float], counts: list[int], total: float | None = None, attrs: Mapping[str, Any] | None = None,
         *, start: int = T0, t: int = T0 + SEC, flags: int = 0, exemplars: Iterable[Any] = ()) -> dict[str, Any]:
    return {"bounds": bounds, "counts": counts, "sum": total, "attrs": attrs, "start": start, "t": t,
            "flags": flags, "exemplars": list(exemplars)}


def exp(scale: int, positive: tuple[int, list[int]], *, zero: int = 0, negative: tuple[int, list[int]] = (0, []),
        total: float | None = 1.0, zero_threshold: float = 0.0, attrs: Mapping[str, Any] | None = None,
        start: int = T0, t: int = T0 + SEC, flags: int = 0) -> dict[str, Any]:
    return {"scale": scale, "positive": positive, "negative": negative, "zero": zero, "sum": total,
            "zt": zero_threshold, "attrs": attrs, "start": start, "t": t, "flags": flags}


def summary(count: int, total: float, quantiles: list[tuple[float, float]], attrs: Mapping[str, Any] | None = None,
            *, start: int = T0, t: int = T0 + SEC) -> dict[str, Any]:
    return {"count": count, "sum": total, "quantiles": quantiles, "attrs": attrs, "start": start, "t": t}


def _common(p: Any, spec: dict[str, Any], attr_field: str = "attributes") -> None:
    p.start_time_unix_nano = spec["start"]
    p.time_unix_nano = spec["t"]
    if spec.get("flags"):
        p.flags = spec["flags"]
    _attrs(getattr(p, attr_field), spec["attrs"])
    for e in spec.get("exemplars", ()):
        p.exemplars.add().CopyFrom(e)


def metric(name: str, kind: str, points: list[dict[str, Any]], *, unit: str = "", description: str = "",
           temporality: int = CUMULATIVE, monotonic: bool = True, metadata: Mapping[str, str] | None = None) -> Any:
    """One OTLP Metric; ``kind``: sum, gauge, histogram, exp, summary."""
    m = proto.Metric(name=name, unit=unit, description=description)
    for k, v in (metadata or {}).items():
        kv = m.metadata.add()
        kv.key = k
        kv.value.string_value = v
    if kind in ("sum", "gauge"):
        data = m.sum if kind == "sum" else m.gauge
        if kind == "sum":
            data.aggregation_temporality = temporality
            data.is_monotonic = monotonic
        for spec in points:
            p = data.data_points.add()
            _common(p, spec)
            if isinstance(spec["value"], int):
                p.as_int = spec["value"]
            else:
                p.as_double = spec["value"]
    elif kind == "histogram":
        m.histogram.aggregation_temporality = temporality
        for spec in points:
            p = m.histogram.data_points.add()
            _common(p, spec)
            p.explicit_bounds.extend(spec["bounds"])
            p.bucket_counts.extend(spec["counts"])
            p.count = sum(spec["counts"])
            if spec["sum"] is not None:
                p.sum = spec["sum"]
    elif kind == "exp":
        m.exponential_histogram.aggregation_temporality = temporality
        for spec in points:
            p = m.exponential_histogram.data_points.add()
            _common(p, spec)
            p.scale = spec["scale"]
            p.zero_count = spec["zero"]
            p.zero_threshold = spec["zt"]
            p.positive.offset, counts = spec["positive"]
            p.positive.bucket_counts.extend(counts)
            p.negative.offset, ncounts = spec["negative"]
            p.negative.bucket_counts.extend(ncounts)
            p.count = spec["zero"] + sum(counts) + sum(ncounts)
            if spec["sum"] is not None:
                p.sum = spec["sum"]
    elif kind == "summary":
        for spec in points:
            p = m.summary.data_points.add()
            _common(p, spec)
            p.count = spec["count"]
            p.sum = spec["sum"]
            for q, v in spec["quantiles"]:
                qv = p.quantile_values.add()
                qv.quantile = q
                qv.value = v
    else:
        raise ValueError(kind)
    return m


def request(*metrics: Any, resource: Mapping[str, Any] | None = None, scope: str = "lib", scope_version: str = "1.0",
            scope_attrs: Mapping[str, Any] | None = None, schema_url: str = "") -> Metrics:
    """One request: one resource (default :data:`RESOURCE`), one scope, the given metrics."""
    req = proto.ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    _attrs(rm.resource.attributes, RESOURCE if resource is None else resource)
    sm = rm.scope_metrics.add()
    sm.scope.name = scope
    sm.scope.version = scope_version
    sm.schema_url = schema_url
    _attrs(sm.scope.attributes, scope_attrs)
    for m in metrics:
        sm.metrics.add().CopyFrom(m)
    return Metrics(req)


def wire(md: Metrics) -> Metrics:
    """The same request as it arrives from a receiver (wire bytes only)."""
    return Metrics(raw=md.to_bytes())
