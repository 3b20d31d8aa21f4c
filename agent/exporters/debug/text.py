"""Text renderings of OTLP requests for the ``debug`` exporter.

Three levels, as the collector's debug exporter:

* :func:`summary`: one line of counts per request (``basic``); no per-item work
  beyond the cached item count and one pass over resources and scopes.
* :func:`normal`: one line per resource, scope and item (span name and ids,
  log body, ``metric{attrs} value``), like the collector's ``normal`` marshalers.
* :func:`detailed`: a readable dump of every field, in the layout of the
  collector's ``otlptext`` marshalers (``ResourceSpans #0``, ``Span #0``,
  ``-> key: Str(value)``...).

All functions only read the request. ``output`` settings filter which
sections and attributes the normal and detailed dumps show.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import Any

from agent.component import Signal
from agent.exporters.debug.config import AttributesOutputConfig, OutputConfig
from agent.pdata import PData
from agent.pdata.attributes import value_to_str

__all__ = ["detailed", "normal", "summary"]

_SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
_STATUS_CODES = ("Unset", "Ok", "Error")
_TEMPORALITY = ("Unspecified", "Delta", "Cumulative")
_SEVERITY_BASES = ("Trace", "Debug", "Info", "Warn", "Error", "Fatal")
_METRIC_TYPES = {"gauge": "Gauge", "sum": "Sum", "histogram": "Histogram",
                 "exponential_histogram": "ExponentialHistogram", "summary": "Summary"}
_VALUE_TYPES = {"string_value": "Str", "bool_value": "Bool", "int_value": "Int", "double_value": "Double",
                "array_value": "Slice", "kvlist_value": "Map", "bytes_value": "Bytes"}
_DEFAULT_OUTPUT = OutputConfig()


# -- summary ------------------------------------------------------------------------------
def summary(data: PData) -> tuple[str, tuple[int, ...], dict[str, int]]:
    """The ``basic`` line: (format, args, structured fields) for ``logger.info``."""
    resources = data.resources()
    if data.signal is Signal.TRACES:
        n, spans = len(resources), data.item_count
        return "Traces resource spans: %d, spans: %d", (n, spans), {"resource_spans": n, "spans": spans}
    if data.signal is Signal.LOGS:
        n, records = len(resources), data.item_count
        return ("Logs resource logs: %d, log records: %d", (n, records),
                {"resource_logs": n, "log_records": records})
    n, points = len(resources), data.item_count
    metrics = sum(len(sm.metrics) for rm in resources for sm in rm.scope_metrics)
    return ("Metrics resource metrics: %d, metrics: %d, data points: %d", (n, metrics, points),
            {"resource_metrics": n, "metrics": metrics, "data_points": points})


# -- helpers -------------------------------------------------------------------------------
def _typed(v: Any) -> str:
    """``Str(text)``, ``Int(3)``... (the collector's valueToString)."""
    which = v.WhichOneof("value")
    return f"{_VALUE_TYPES.get(which, 'Empty') if which else 'Empty'}({value_to_str(v)})"


def _attrs(kvs: Iterable[Any], cfg: AttributesOutputConfig) -> list[Any]:
    if not cfg.enabled:
        return []
    return [kv for kv in kvs if cfg.shows(kv.key)]


def _pairs(kvs: Iterable[Any], cfg: AttributesOutputConfig, sep: str = " ") -> str:
    return sep.join(f"{kv.key}={value_to_str(kv.value)}" for kv in _attrs(kvs, cfg))


def _ts(nanos: int) -> str:
    """Go's ``time.Time.String()`` of a Unix nanosecond timestamp, in UTC."""
    secs, frac = divmod(int(nanos), 1_000_000_000)
    try:
        base = dt.datetime.fromtimestamp(secs, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return str(nanos)
    digits = f"{frac:09d}".rstrip("0")
    return f"{base}{'.' + digits if digits else ''} +0000 UTC"


def _name(table: tuple[str, ...], value: int) -> str:
    return table[value] if 0 <= value < len(table) else str(value)


def _severity(number: int) -> str:
    if number <= 0 or number > 24:
        return "Unspecified" if number == 0 else str(number)
    base, offset = divmod(number - 1, 4)
    return f"{_SEVERITY_BASES[base]}{offset + 1 if offset else ''}({number})"


def _f(x: float) -> str:
    """Go's ``%f``."""
    return f"{x:f}" if math.isfinite(x) else ("NaN" if math.isnan(x) else ("+Inf" if x > 0 else "-Inf"))


def _g(x: float) -> str:
    """Go's ``%v`` of a float64 (shortest representation)."""
    if not math.isfinite(x):
        return _f(x)
    return repr(x).removesuffix(".0") if x == int(x) and abs(x) < 1e21 else repr(x)


def _scope_details(name: str, version: str, schema_url: str) -> str:
    text = name + (f"@{version}" if version else "")
    if schema_url:
        text += (" " if text else "") + f"[{schema_url}]"
    return f" {text}" if text else ""


# -- normal -------------------------------------------------------------------------------------
def normal(data: PData, output: OutputConfig = _DEFAULT_OUTPUT) -> str:
    """One line per resource, scope and item."""
    rfield, sfield, ifield = data.fields
    head = {Signal.TRACES: ("ResourceTraces", "ScopeTraces"), Signal.METRICS: ("ResourceMetrics", "ScopeMetrics"),
            Signal.LOGS: ("ResourceLog", "ScopeLog")}[data.signal]
    lines: list[str] = []
    for i, res in enumerate(getattr(data.proto, rfield)):
        if output.resource.enabled:
            attrs = _pairs(res.resource.attributes, output.resource.attributes)
            url = f" [{res.schema_url}]" if res.schema_url else ""
            lines.append(f"{head[0]} #{i}{url}{' ' + attrs if attrs else ''}")
        for j, scope in enumerate(getattr(res, sfield)):
            if output.scope.enabled:
                sc = scope.scope
                attrs = _pairs(sc.attributes, output.scope.attributes)
                lines.append(f"{head[1]} #{j}{_scope_details(sc.name, sc.version, scope.schema_url)}"
                             f"{' ' + attrs if attrs else ''}")
            if not output.record.enabled:
                continue
            rattrs = output.record.attributes
            for item in getattr(scope, ifield):
                if data.signal is Signal.TRACES:
                    attrs = _pairs(item.attributes, rattrs)
                    lines.append(f"{item.name} {item.trace_id.hex()} {item.span_id.hex()}"
                                 f"{' ' + attrs if attrs else ''}")
                elif data.signal is Signal.LOGS:
                    lines.append(f"{value_to_str(item.body)} {_pairs(item.attributes, rattrs)}")
                else:
                    lines.extend(_normal_points(item, rattrs))
    return "\n".join(lines)


def _normal_points(metric: Any, rattrs: AttributesOutputConfig) -> list[str]:
    which = metric.WhichOneof("data")
    if which is None:
        return []
    out = []
    for p in getattr(metric, which).data_points:
        labels = _pairs(p.attributes, rattrs, ",")
        if which in ("gauge", "sum"):
            value = str(p.as_int) if p.WhichOneof("value") == "as_int" else _g(p.as_double)
        else:
            value = f"count={p.count}"
            if which != "summary":
                for fld in ("sum", "min", "max"):
                    if p.HasField(fld):
                        value += f" {fld}={_g(getattr(p, fld))}"
            else:
                value += f" sum={_f(p.sum)}"
            if which == "histogram":
                bounds = list(p.explicit_bounds)
                for k, count in enumerate(p.bucket_counts):
                    value += f" le{_g(bounds[k])}={count}" if k < len(bounds) else f" {count}"
            elif which == "summary":
                value += "".join(f" q{_g(q.quantile)}={_g(q.value)}" for q in p.quantile_values)
        out.append(f"{metric.name}{{{labels}}} {value}")
    return out


# -- detailed -----------------------------------------------------------------------------------
class _Buf:
    __slots__ = ("lines",)

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, text: str) -> None:
        self.lines.append(text)

    def attr(self, name: str, value: object) -> None:
        self.lines.append(f"    {name:<15}: {value}")

    def attributes(self, header: str, kvs: Iterable[Any], cfg: AttributesOutputConfig, indent: str = "") -> None:
        shown = _attrs(kvs, cfg)
        if not shown:
            return
        self.lines.append(f"{indent}{header}:")
        for kv in shown:
            self.lines.append(f"{indent}     -> {kv.key}: {_typed(kv.value)}")


def detailed(data: PData, output: OutputConfig = _DEFAULT_OUTPUT) -> str:
    """A readable dump of every field of the request."""
    rfield, sfield, ifield = data.fields
    names = {Signal.TRACES: ("ResourceSpans", "ScopeSpans", "Span"),
             Signal.METRICS: ("ResourceMetrics", "ScopeMetrics", "Metric"),
             Signal.LOGS: ("ResourceLog", "ScopeLogs", "LogRecord")}[data.signal]
    b = _Buf()
    for i, res in enumerate(getattr(data.proto, rfield)):
        b.add(f"{names[0]} #{i}")
        if output.resource.enabled:
            b.add(f"Resource SchemaURL: {res.schema_url}")
            b.attributes("Resource attributes", res.resource.attributes, output.resource.attributes)
        for j, scope in enumerate(getattr(res, sfield)):
            b.add(f"{names[1]} #{j}")
            if output.scope.enabled:
                b.add(f"{names[1]} SchemaURL: {scope.schema_url}")
                b.add(f"InstrumentationScope {scope.scope.name} {scope.scope.version}")
                b.attributes("InstrumentationScope attributes", scope.scope.attributes, output.scope.attributes)
            if not output.record.enabled:
                continue
            for k, item in enumerate(getattr(scope, ifield)):
                b.add(f"{names[2]} #{k}")
                if data.signal is Signal.TRACES:
                    _span(b, item, output.record.attributes)
                elif data.signal is Signal.LOGS:
                    _log(b, item, output.record.attributes)
                else:
                    _metric(b, item, output.record.attributes)
    return "\n".join(b.lines)


def _span(b: _Buf, s: Any, attrs: AttributesOutputConfig) -> None:
    b.attr("Trace ID", s.trace_id.hex())
    b.attr("Parent ID", s.parent_span_id.hex())
    b.attr("ID", s.span_id.hex())
    b.attr("Name", s.name)
    b.attr("Kind", _name(_SPAN_KINDS, s.kind))
    if s.trace_state:
        b.attr("TraceState", s.trace_state)
    b.attr("Start time", _ts(s.start_time_unix_nano))
    b.attr("End time", _ts(s.end_time_unix_nano))
    b.attr("Status code", _name(_STATUS_CODES, s.status.code))
    b.attr("Status message", s.status.message)
    if s.dropped_attributes_count:
        b.add(f"    DroppedAttributesCount: {s.dropped_attributes_count}")
    b.attributes("Attributes", s.attributes, attrs)
    if len(s.events):
        b.add("Events:")
        for i, e in enumerate(s.events):
            b.add(f"SpanEvent #{i}")
            b.add(f"     -> Name: {e.name}")
            b.add(f"     -> Timestamp: {_ts(e.time_unix_nano)}")
            b.add(f"     -> DroppedAttributesCount: {e.dropped_attributes_count}")
            b.attributes("     -> Attributes:", e.attributes, attrs)
    if s.dropped_events_count:
        b.add(f"    DroppedEventsCount: {s.dropped_events_count}")
    if len(s.links):
        b.add("Links:")
        for i, link in enumerate(s.links):
            b.add(f"SpanLink #{i}")
            b.add(f"     -> Trace ID: {link.trace_id.hex()}")
            b.add(f"     -> ID: {link.span_id.hex()}")
            b.add(f"     -> TraceState: {link.trace_state}")
            b.add(f"     -> DroppedAttributesCount: {link.dropped_attributes_count}")
            b.attributes("     -> Attributes:", link.attributes, attrs)
    if s.dropped_links_count:
        b.add(f"    DroppedLinksCount: {s.dropped_links_count}")


def _log(b: _Buf, r: Any, attrs: AttributesOutputConfig) -> None:
    b.add(f"ObservedTimestamp: {_ts(r.observed_time_unix_nano)}")
    b.add(f"Timestamp: {_ts(r.time_unix_nano)}")
    b.add(f"SeverityText: {r.severity_text}")
    b.add(f"SeverityNumber: {_severity(r.severity_number)}")
    event_name = getattr(r, "event_name", "")
    if event_name:
        b.add(f"EventName: {event_name}")
    b.add(f"Body: {_typed(r.body)}")
    b.attributes("Attributes", r.attributes, attrs)
    b.add(f"Trace ID: {r.trace_id.hex()}")
    b.add(f"Span ID: {r.span_id.hex()}")
    b.add(f"Flags: {r.flags}")


def _metric(b: _Buf, m: Any, attrs: AttributesOutputConfig) -> None:
    which = m.WhichOneof("data")
    b.add("Descriptor:")
    b.add(f"     -> Name: {m.name}")
    b.add(f"     -> Description: {m.description}")
    b.add(f"     -> Unit: {m.unit}")
    b.add(f"     -> DataType: {_METRIC_TYPES.get(which, 'Empty') if which else 'Empty'}")
    if which is None:
        return
    body = getattr(m, which)
    if which == "sum":
        b.add(f"     -> IsMonotonic: {'true' if body.is_monotonic else 'false'}")
    if which in ("sum", "histogram", "exponential_histogram"):
        b.add(f"     -> AggregationTemporality: {_name(_TEMPORALITY, body.aggregation_temporality)}")
    kind = {"gauge": "NumberDataPoints", "sum": "NumberDataPoints", "histogram": "HistogramDataPoints",
            "exponential_histogram": "ExponentialHistogramDataPoints", "summary": "SummaryDataPoints"}[which]
    for i, p in enumerate(body.data_points):
        b.add(f"{kind} #{i}")
        b.attributes("Data point attributes", p.attributes, attrs)
        b.add(f"StartTimestamp: {_ts(p.start_time_unix_nano)}")
        b.add(f"Timestamp: {_ts(p.time_unix_nano)}")
        if which in ("gauge", "sum"):
            b.add(f"Value: {p.as_int}" if p.WhichOneof("value") == "as_int" else f"Value: {_f(p.as_double)}")
        elif which == "summary":
            b.add(f"Count: {p.count}")
            b.add(f"Sum: {_f(p.sum)}")
            for k, q in enumerate(p.quantile_values):
                b.add(f"QuantileValue #{k}: Quantile {_f(q.quantile)}, Value {_f(q.value)}")
        else:
            b.add(f"Count: {p.count}")
            for fld in ("sum", "min", "max"):
                if p.HasField(fld):
                    b.add(f"{fld.capitalize()}: {_f(getattr(p, fld))}")
            if which == "histogram":
                for k, bound in enumerate(p.explicit_bounds):
                    b.add(f"ExplicitBounds #{k}: {_f(bound)}")
                for k, count in enumerate(p.bucket_counts):
                    b.add(f"Buckets #{k}, Count: {count}")
            else:
                _exp_buckets(b, p)
        if which != "summary" and len(p.exemplars):
            b.add("Exemplars:")
            for k, e in enumerate(p.exemplars):
                b.add(f"Exemplar #{k}")
                b.add(f"     -> Trace ID: {e.trace_id.hex()}")
                b.add(f"     -> Span ID: {e.span_id.hex()}")
                b.add(f"     -> Timestamp: {_ts(e.time_unix_nano)}")
                b.add(f"     -> Value: {e.as_int}" if e.WhichOneof("value") == "as_int"
                      else f"     -> Value: {_f(e.as_double)}")
                b.attributes("     -> FilteredAttributes", e.filtered_attributes, attrs)


def _exp_buckets(b: _Buf, p: Any) -> None:
    factor = math.ldexp(math.log(2), -p.scale)

    def bound(index: float) -> float:
        try:
            return math.exp(index * factor)
        except OverflowError:
            return math.inf

    neg = list(p.negative.bucket_counts)
    for pos in range(len(neg) - 1, -1, -1):
        index = p.negative.offset + pos
        b.add(f"Bucket [{_f(-bound(index + 1))}, {_f(-bound(index))}), Count: {neg[pos]}")
    if p.zero_count:
        b.add(f"Bucket [0, 0], Count: {p.zero_count}")
    for pos, count in enumerate(p.positive.bucket_counts):
        index = p.positive.offset + pos
        b.add(f"Bucket ({_f(bound(index))}, {_f(bound(index + 1))}], Count: {count}")
