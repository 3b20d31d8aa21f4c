"""The ``span_metrics`` connector: RED metrics (``calls``, ``duration``) from spans, traces -> metrics.

Role: the collector's ``spanmetricsconnector``. Every span adds one call and
one duration observation to its series; every ``metrics_flush_interval`` one
OTLP Metrics request with every series goes to the metrics pipelines the
connector feeds.

Series. Spans are grouped by resource (all resource attributes, or those in
``resource_metrics_key_attributes``; resources without ``service.name`` are
skipped, as in the collector), then by the tuple ``(span name, kind, status
code, *dimension values)``. The series' attributes are ``service.name``,
``span.name``, ``span.kind`` (``SPAN_KIND_SERVER``...), ``status.code``
(``STATUS_CODE_ERROR``...) minus ``exclude_dimensions``, plus each configured
dimension found (span attributes first, then resource attributes, then the
derived DB values, then the dimension's default; absent otherwise).

Output per flush, per resource (with that resource's attributes) and scope
``spanmetricsconnector``:

* ``<namespace>.calls``: monotonic sum, int, no unit;
* ``<namespace>.duration``: histogram (explicit bounds, or exponential) in
  ``ms`` or ``s``; omitted with ``histogram.disable``.

Prometheus names (through the ``prometheus`` exporter, default namespace and
unit): ``traces_span_metrics_calls_total`` and
``traces_span_metrics_duration_milliseconds_{bucket,sum,count}``
(``_seconds_`` with ``unit: s``), labels ``service_name``, ``span_name``,
``span_kind``, ``status_code`` and the dimensions with dots as underscores,
plus ``job``/``instance`` from the resource and ``otel_scope_name``.

Temporality. Cumulative: start time = when the series was created, point time
= flush time; series not updated for ``metrics_expiration`` (> 0) are removed
at the flush. Delta: each point covers the time since the previous flush (or
since the series was created); series without spans in an interval are
removed. Points are only emitted for series with at least one span.

Exemplars (``exemplars.enabled``): spans with a trace id are exemplars with
their duration as value and their end time as timestamp. ``calls`` points
carry the most recent ``max_per_data_point`` spans; explicit-bucket
``duration`` points keep the latest span per bucket (the SDK's aligned
reservoir) and carry the ``max_per_data_point`` most recent of those;
exponential ones carry the recent list. Exemplars are cleared at every flush.

Bounds: ``aggregation_cardinality_limit`` series per resource (then one
overflow series ``{otel.metric.overflow=true}``); ``resource_metrics_cache_size``
resources (least recently updated evicted with their series).

Cost: one pass per span, reading name, kind, status, times and (only when
dimensions are configured) the attribute list once; series state lives in
dicts keyed by tuples. Nothing is awaited while state changes, so no lock is
needed: ``consume_traces`` never awaits at all, and :meth:`SpanMetricsConnector.flush`
builds its request synchronously, then awaits the next consumer.

Errors: ``consume_traces`` never fails. A refused flush is logged (at most
every 10 s) and its points counted as dropped; cumulative series are sent
again at the next flush, delta points are lost (as in the collector).

Self-metrics (label ``connector``): ``otelcol_connector_span_metrics_spans_total``,
``..._skipped_spans_total`` (no ``service.name``), ``..._overflow_spans_total``,
``..._expired_series_total``, ``..._dropped_metric_points_total`` and the
gauge ``..._series``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from bisect import bisect_left
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from agent.component import Capabilities, Host, Settings, Signal
from agent.connectors.span_metrics.config import DEFAULT_DIMENSIONS, Config
from agent.connectors.span_metrics.exphist import ExpHistogram
from agent.connectors.spans import (
    DB_COLLECTION,
    DB_OPERATION,
    DB_STATEMENT,
    DB_SUMMARY,
    DB_SYSTEM,
    FALLBACKS,
    KIND_NAMES,
    STATUS_NAMES,
    AttrReader,
    attr_str,
)
from agent.connectors.sql import QueryCache
from agent.consumer import consume_fn
from agent.errors import ConsumerError
from agent.pdata import Metrics, Traces, proto

__all__ = ["SCOPE_NAME", "SpanMetricsConnector"]

#: The instrumentation scope of the emitted metrics (the collector's).
SCOPE_NAME: Final = "spanmetricsconnector"
OVERFLOW_KEY: Final = "otel.metric.overflow"
_REPORT_INTERVAL: Final = 10.0
_PREFIX: Final = "otelcol_connector_span_metrics_"
_DERIVED: Final = (DB_OPERATION, DB_COLLECTION, DB_SUMMARY)
_CUMULATIVE: Final = proto.AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
_DELTA: Final = proto.AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA

#: An exemplar: (trace id, span id, value, time in ns).
Exemplar = tuple[bytes, bytes, float, int]


def _attr_bytes(point_class: Any, pairs: list[tuple[str, Any]]) -> bytes:
    """A serialized point holding only ``pairs`` as attributes: merged into each emitted point."""
    p = point_class()
    for k, v in pairs:
        kv = p.attributes.add()
        kv.key = k
        if isinstance(v, bool):
            kv.value.bool_value = v
        else:
            kv.value.string_value = v
    return bytes(p.SerializeToString())


class _Series:
    """One series: its attributes (pre-serialized per point type) and aggregated values."""

    __slots__ = ("buckets", "by_bucket", "count", "exp", "hist_attrs", "num_attrs", "recent", "seen", "start_ns",
                 "sum")

    def __init__(self, pairs: list[tuple[str, Any]], start_ns: int, seen: float, nbuckets: int,
                 exp_size: int, exemplars: int) -> None:
        self.num_attrs = _attr_bytes(proto.NumberDataPoint, pairs)
        self.hist_attrs = _attr_bytes(proto.ExponentialHistogramDataPoint if exp_size else proto.HistogramDataPoint,
                                      pairs)
        self.start_ns = start_ns
        self.seen = seen
        self.count = 0
        self.sum = 0.0
        self.buckets = [0] * nbuckets
        self.exp = ExpHistogram(exp_size) if exp_size else None
        self.recent: deque[Exemplar] | None = deque(maxlen=exemplars) if exemplars else None
        self.by_bucket: dict[int, Exemplar] = {}

    def clear(self, start_ns: int) -> None:
        """Zero the values (delta temporality, after a flush)."""
        self.start_ns = start_ns
        self.count = 0
        self.sum = 0.0
        self.buckets = [0] * len(self.buckets)
        if self.exp is not None:
            self.exp.reset()


class _Resource:
    """A resource's attributes (serialized) and series."""

    __slots__ = ("attrs", "dims", "overflow", "raw", "series", "service")

    def __init__(self, raw: bytes, service: str, dims: list[str | None]) -> None:
        self.raw = raw
        self.service = service
        self.dims = dims
        self.series: dict[tuple[Any, ...], _Series] = {}
        self.overflow: _Series | None = None


class SpanMetricsConnector:
    """Traces in, RED metrics out. See the module docstring.

    Args:
        settings: component settings.
        config: the decoded config.
        consumers: the next consumer per output signal (metrics).
        clock: monotonic seconds, for expiry (tests inject a fake one).
        wall_ns: wall-clock nanoseconds, for point timestamps.
        sleep: the wait between flushes.

    Raises:
        ValueError: no metrics consumer.
    """

    def __init__(self, settings: Settings, config: Config, consumers: Mapping[Signal, object], *,
                 clock: Callable[[], float] = time.monotonic, wall_ns: Callable[[], int] = time.time_ns,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if Signal.METRICS not in consumers:
            raise ValueError("span_metrics emits metrics: it must be a receiver of a metrics pipeline")
        self.id = settings.id
        self.config = config
        self._log = settings.logger
        self._next = consume_fn(consumers[Signal.METRICS], Signal.METRICS)
        self._clock = clock
        self._wall_ns = wall_ns
        self._sleep = sleep
        c = config
        excluded = set(c.exclude_dimensions)
        unknown = excluded - set(DEFAULT_DIMENSIONS)
        if unknown:
            self._log.warning("exclude_dimensions names %s, which are not default dimensions (%s); ignored.",
                              ", ".join(sorted(unknown)), ", ".join(DEFAULT_DIMENSIONS))
        if settings.id.type == "spanmetrics":
            self._log.warning("Component type 'spanmetrics' is deprecated; use 'span_metrics'.")
        if c.dimensions_cache_size:
            self._log.warning("dimensions_cache_size is deprecated and ignored; "
                              "use aggregation_cardinality_limit to bound the series.")
        self._inc_service = "service.name" not in excluded
        self._inc_name = "span.name" not in excluded
        self._inc_kind = "span.kind" not in excluded
        self._inc_status = "status.code" not in excluded
        self._all_defaults = self._inc_name and self._inc_kind and self._inc_status
        # Dimensions: slot i of the attribute reader holds dimension i; extra hidden slots hold
        # the DB system and statement when some dimension may be derived from them.
        self._dims = tuple(d.name for d in c.dimensions)
        self._defaults = tuple(d.default for d in c.dimensions)
        derive = c.derive_dimensions
        self._derived = tuple(i for i, n in enumerate(self._dims) if derive and n in _DERIVED_ALIASES)
        hidden = (DB_SYSTEM, DB_STATEMENT) if self._derived else ()
        self._reader = AttrReader((*self._dims, *hidden), fallbacks=derive) if self._dims else None
        self._res_reader = AttrReader(self._dims, fallbacks=derive) if self._dims else None
        self._scope_dims = tuple(i for i, n in enumerate(self._dims)
                                 if n in ("span.instrumentation.scope.name", "span.instrumentation.scope.version"))
        self._with_default = tuple((i, d) for i, d in enumerate(self._defaults) if d is not None)
        self._needs_fill = bool(self._derived or self._scope_dims or self._with_default)
        self._queries = QueryCache()
        self._key_attrs = frozenset(c.resource_metrics_key_attributes)
        self._limit = c.aggregation_cardinality_limit
        self._resources: OrderedDict[Any, _Resource] = OrderedDict()
        self._delta = c.delta
        self._temporality = _DELTA if c.delta else _CUMULATIVE
        self._per_unit_ns = c.unit_seconds * 1e9
        self._hist = not c.histogram.disable
        self._exp_size = c.histogram.exponential.max_size if c.histogram.exponential is not None else 0
        self._bounds = list(c.bounds) if self._hist and not self._exp_size else []
        self._nbuckets = len(self._bounds) + 1 if self._bounds else 0
        self._exemplars = c.exemplars.max_per_data_point if c.exemplars.enabled else 0
        ns = c.namespace
        self._calls_name = f"{ns}.calls" if ns else "calls"
        self._duration_name = f"{ns}.duration" if ns else "duration"
        self._unit = c.histogram.unit
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._last_report = -_REPORT_INTERVAL
        self._failed_flushes = 0
        self._nseries = 0
        self._n_overflow = 0  # spans folded into overflow series during one aggregate() call
        t = settings.telemetry
        cid = str(settings.id)
        lbl = ("connector",)
        self._spans = t.counter(_PREFIX + "spans", "Spans aggregated into span metrics.", lbl).labels(cid)
        self._skipped = t.counter(_PREFIX + "skipped_spans", "Spans skipped: their resource has no service.name.",
                                  lbl).labels(cid)
        self._overflowed = t.counter(_PREFIX + "overflow_spans",
                                     "Spans folded into the overflow series (aggregation_cardinality_limit).",
                                     lbl).labels(cid)
        self._expired = t.counter(_PREFIX + "expired_series",
                                  "Series removed: expired, idle (delta) or evicted with their resource.",
                                  lbl).labels(cid)
        self._dropped = t.counter(_PREFIX + "dropped_metric_points",
                                  "Data points of flushes the next consumer refused.", lbl).labels(cid)
        t.gauge(_PREFIX + "series", "Series currently aggregated.", lbl).labels(cid).set_function(
            lambda: float(self._nseries))

    # -- consumer ---------------------------------------------------------------------------
    def capabilities(self) -> Capabilities:
        return Capabilities(mutates_data=False)

    @property
    def series_count(self) -> int:
        """Series currently held (overflow series included)."""
        return self._nseries

    def _resource(self, res: Any) -> _Resource | None:
        attrs = res.attributes
        if self._key_attrs:
            key: Any = tuple(sorted((kv.key, attr_str(kv.value)) for kv in attrs if kv.key in self._key_attrs))
        else:
            key = res.SerializeToString()
        state = self._resources.get(key)
        if state is not None:
            self._resources.move_to_end(key)
            return state
        service = None
        for kv in attrs:
            if kv.key == "service.name":
                service = attr_str(kv.value)
                break
        if service is None:
            return None
        dims = self._res_reader.read(attrs) if self._res_reader is not None else []
        state = self._resources[key] = _Resource(bytes(res.SerializeToString()), service, dims)
        if len(self._resources) > self.config.resource_metrics_cache_size:
            _, old = self._resources.popitem(last=False)
            n = len(old.series) + (old.overflow is not None)
            self._nseries -= n
            self._expired.inc(n)
        return state

    async def consume_traces(self, td: Traces) -> None:
        """Aggregate every span of ``td`` (never raises; never awaits)."""
        self.aggregate(td)

    def aggregate(self, td: Traces) -> None:
        """Fold ``td`` into the series (synchronous: see the module docstring)."""
        now = self._clock()
        start_ns = self._wall_ns()
        per_unit = self._per_unit_ns
        bounds = self._bounds
        hist = self._hist
        reader = self._reader
        ndims = len(self._dims)
        exemplars = self._exemplars
        fast_key = self._all_defaults
        spans_n = skipped = 0
        for rs in td.proto.resource_spans:
            state = self._resource(rs.resource)
            if state is None:
                skipped += sum(len(ss.spans) for ss in rs.scope_spans)
                continue
            series = state.series
            res_dims = state.dims
            for ss in rs.scope_spans:
                for span in ss.spans:
                    spans_n += 1
                    st = span.start_time_unix_nano
                    en = span.end_time_unix_nano
                    d = (en - st) / per_unit if en > st else 0.0
                    if reader is not None:
                        vals = reader.read(span.attributes)
                        for i in range(ndims):
                            if vals[i] is None and res_dims[i] is not None:
                                vals[i] = res_dims[i]
                        if self._needs_fill:
                            self._fill(vals, ss.scope)
                        if fast_key:
                            key: tuple[Any, ...] = (span.name, span.kind, span.status.code, *vals[:ndims])
                        else:
                            key = (span.name if self._inc_name else None, span.kind if self._inc_kind else None,
                                   span.status.code if self._inc_status else None, *vals[:ndims])
                    elif fast_key:
                        key = (span.name, span.kind, span.status.code)
                    else:
                        key = (span.name if self._inc_name else None, span.kind if self._inc_kind else None,
                               span.status.code if self._inc_status else None)
                    s = series.get(key)
                    if s is None:
                        s = self._new_series(state, key, start_ns, now)
                    s.count += 1
                    s.seen = now
                    i = -1
                    if hist:
                        exp = s.exp
                        if exp is None:
                            s.sum += d
                            i = bisect_left(bounds, d)
                            s.buckets[i] += 1
                        else:
                            exp.record(d)
                    if exemplars:
                        tid = span.trace_id
                        recent = s.recent
                        if tid and recent is not None:
                            ex = (tid, span.span_id, d, en)
                            recent.append(ex)
                            if i >= 0:
                                s.by_bucket[i] = ex
        if spans_n:
            self._spans.inc(spans_n)
        if skipped:
            self._skipped.inc(skipped)
        if self._n_overflow:
            self._overflowed.inc(self._n_overflow)
            self._n_overflow = 0

    def _fill(self, vals: list[str | None], scope: Any) -> None:
        """Derived DB dimensions, scope dimensions and defaults for what the attributes lacked."""
        dims = self._dims
        if self._derived:
            ndims = len(dims)
            system, statement = vals[ndims], vals[ndims + 1]
            if system is not None and statement is not None:
                q = None
                for i in self._derived:
                    cur = vals[i]
                    name = _DERIVED_ALIASES[dims[i]]
                    if cur is not None and not (name == DB_OPERATION and " " in cur.strip()):
                        continue
                    if q is None:
                        q = self._queries.get(statement)
                    value = q.operation if name == DB_OPERATION else q.table if name == DB_COLLECTION else q.summary
                    vals[i] = value or None
        for i in self._scope_dims:
            if vals[i] is None:
                vals[i] = scope.name if dims[i].endswith(".name") else scope.version
                vals[i] = vals[i] or None
        for i, default in self._with_default:
            if vals[i] is None:
                vals[i] = default

    def _new_series(self, state: _Resource, key: tuple[Any, ...], start_ns: int, now: float) -> _Series:
        if self._limit and len(state.series) >= self._limit:
            self._n_overflow += 1
            s = state.overflow
            if s is None:
                s = state.overflow = self._make([(OVERFLOW_KEY, True)], start_ns, now)
            return s
        pairs: list[tuple[str, Any]] = []
        if self._inc_service:
            pairs.append(("service.name", state.service))
        name, kind, code = key[0], key[1], key[2]
        if name is not None:
            pairs.append(("span.name", name))
        if kind is not None:
            pairs.append(("span.kind", KIND_NAMES[kind] if 0 <= kind < len(KIND_NAMES) else f"SPAN_KIND_{kind}"))
        if code is not None:
            pairs.append(("status.code", STATUS_NAMES[code] if 0 <= code < len(STATUS_NAMES) else f"STATUS_{code}"))
        for dim, v in zip(self._dims, key[3:], strict=True):
            if v is not None:
                pairs.append((dim, v))
        s = state.series[key] = self._make(pairs, start_ns, now)
        return s

    def _make(self, pairs: list[tuple[str, Any]], start_ns: int, now: float) -> _Series:
        self._nseries += 1
        return _Series(pairs, start_ns, now, self._nbuckets, self._exp_size if self._hist else 0,
                       self._exemplars)

    # -- flush ------------------------------------------------------------------------------
    def collect(self) -> Metrics | None:
        """Build the flush request (``None`` when there is nothing to send) and apply
        expiry (cumulative) or reset (delta) to the state."""
        now = self._clock()
        now_ns = self._wall_ns()
        expiration = self.config.metrics_expiration
        req = proto.ExportMetricsServiceRequest()
        points = 0
        for key in list(self._resources):
            state = self._resources[key]
            if self._delta:
                self._drop_idle(state)
            elif expiration > 0:
                self._expire(state, now - expiration)
            if not state.series and state.overflow is None:
                del self._resources[key]
                continue
            live = list(state.series.values())
            if state.overflow is not None:
                live.append(state.overflow)
            rm = req.resource_metrics.add()
            rm.resource.MergeFromString(state.raw)
            sm = rm.scope_metrics.add()
            sm.scope.name = SCOPE_NAME
            self._write(sm, live, now_ns)
            points += len(live) * (2 if self._hist else 1)
        if not points:
            return None
        return Metrics(req, count=points)

    def _drop_idle(self, state: _Resource) -> None:
        idle = [k for k, s in state.series.items() if s.count == 0]
        for k in idle:
            del state.series[k]
        n = len(idle)
        if state.overflow is not None and state.overflow.count == 0:
            state.overflow = None
            n += 1
        if n:
            self._nseries -= n
            self._expired.inc(n)

    def _expire(self, state: _Resource, cutoff: float) -> None:
        old = [k for k, s in state.series.items() if s.seen <= cutoff]
        for k in old:
            del state.series[k]
        n = len(old)
        if state.overflow is not None and state.overflow.seen <= cutoff:
            state.overflow = None
            n += 1
        if n:
            self._nseries -= n
            self._expired.inc(n)

    def _write(self, sm: Any, live: list[_Series], now_ns: int) -> None:
        temporality = self._temporality
        calls = sm.metrics.add()
        calls.name = self._calls_name
        calls.sum.is_monotonic = True
        calls.sum.aggregation_temporality = temporality
        cdps = calls.sum.data_points
        hdps: Any = None
        if self._hist:
            dur = sm.metrics.add()
            dur.name = self._duration_name
            dur.unit = self._unit
            if self._exp_size:
                dur.exponential_histogram.aggregation_temporality = temporality
                hdps = dur.exponential_histogram.data_points
            else:
                dur.histogram.aggregation_temporality = temporality
                hdps = dur.histogram.data_points
        bounds = self._bounds
        limit = self._exemplars
        for s in live:
            p = cdps.add()
            p.MergeFromString(s.num_attrs)
            p.start_time_unix_nano = s.start_ns
            p.time_unix_nano = now_ns
            p.as_int = s.count
            recent = s.recent
            if recent:
                _add_exemplars(p.exemplars, recent)
            if hdps is not None:
                h = hdps.add()
                h.MergeFromString(s.hist_attrs)
                h.start_time_unix_nano = s.start_ns
                h.time_unix_nano = now_ns
                if s.exp is not None:
                    s.exp.write(h)
                    if recent:
                        _add_exemplars(h.exemplars, recent)
                else:
                    h.count = s.count
                    h.sum = s.sum
                    h.explicit_bounds.extend(bounds)
                    h.bucket_counts.extend(s.buckets)
                    if s.by_bucket:
                        chosen = sorted(s.by_bucket.values(), key=lambda e: e[3])[-limit:]
                        _add_exemplars(h.exemplars, chosen)
            if recent is not None:
                recent.clear()
                s.by_bucket.clear()
            if self._delta:
                s.clear(now_ns)

    async def flush(self) -> None:
        """Send the current series to the metrics pipelines (never raises on a refusal)."""
        md = self.collect()
        if md is None:
            return
        n = md.item_count
        try:
            await self._next(md)
        except ConsumerError as e:
            self._dropped.inc(n)
            self._failed_flushes += 1
            now = self._clock()
            if now - self._last_report >= _REPORT_INTERVAL:
                self._log.warning("Next consumer refused span metrics; dropping %d points (%d refusals since the "
                                  "last report): %s.", n, self._failed_flushes, e, extra={"dropped_items": n})
                self._last_report = now
                self._failed_flushes = 0

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self, host: Host) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name=f"span_metrics {self.id} flush")

    async def _run(self) -> None:
        interval = self.config.metrics_flush_interval
        while True:
            await self._sleep(interval)
            try:
                await self.flush()
            except Exception:  # never let the timer die
                self._log.exception("Span metrics flush failed.")

    async def shutdown(self) -> None:
        """Stop the timer and flush once more (idempotent, safe without start)."""
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.flush()


#: Dimension names that may be derived from the statement -> the canonical name they derive.
_DERIVED_ALIASES: Final[dict[str, str]] = {name: name for name in _DERIVED}
for _name in _DERIVED:
    for _other in FALLBACKS.get(_name, ()):
        _DERIVED_ALIASES.setdefault(_other, _name)


def _add_exemplars(target: Any, exemplars: Any) -> None:
    for tid, sid, value, ts in exemplars:
        e = target.add()
        e.trace_id = tid
        e.span_id = sid
        e.as_double = value
        e.time_unix_nano = ts
