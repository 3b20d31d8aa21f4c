"""The ``span_detectors`` connector: slow requests, slow queries and N+1 queries found in spans.

Why a connector. A processor has one output, the next consumer of its own
pipeline, so it cannot put log records into a logs pipeline. The collector's
way for "spans in, other signals out" is a connector (``count``,
``exceptions``, ``span_metrics``): this one is an exporter of a traces
pipeline and a receiver of a logs pipeline (the findings, as structured log
records) and/or a metrics pipeline (the finding counters); it only reads the
spans, so the traces pipeline's other exporters still get them unchanged.
Connects: traces -> logs, traces -> metrics.

Detectors (thresholds in :mod:`.config`):

* ``slow_request``: a server span at or above ``slow_requests.threshold``;
  reported when the span arrives.
* ``slow_query``: a DB client span (``db.system.name``/``db.system`` and a
  ``db.query.text``/``db.statement``) at or above ``slow_queries.threshold``;
  reported when its trace is evaluated, so it carries the trace's route.
* ``n_plus_one``: in one trace, one sanitised statement (literals -> ``?``,
  see :mod:`agent.connectors.sql`) executed more than ``n_plus_one.threshold``
  times under **one** parent span. Reported once per (trace, statement
  fingerprint), with the largest count under one parent; the record's span id
  is that parent (where the loop runs).

Traces. DB client spans and local root spans (:func:`~agent.connectors.spans.is_local_root`)
open a buffered entry per trace id holding only what the detectors need: the
root's ``http.route`` and method, per (parent span id, fingerprint) a count
and total duration, and the slow queries. A trace is evaluated when
``root_span_wait`` has passed since its local root arrived, or
``trace_window`` since its first span, whichever is first; at a full buffer
(``max_traces``) the oldest trace is evaluated early (counted in
``..._traces_evicted_total``). Evaluated trace ids are remembered (up to
``max_traces``): their late spans can no longer make an N+1 report (so a
trace never gets two), and a late slow query is reported without a route
(counted in ``..._late_spans_total``).

Findings. Each finding is a log record (severity WARN, ``event_name``
``<namespace>.<detector>``, ``trace_id``/``span_id`` of the offending span,
time = its end) under the spans' resource and scope
``otel_sidecar.span_detectors``, with a readable body and attributes
``span_detectors.finding`` (detector), ``http.route``,
``http.request.method``, ``span_detectors.duration_ms``, ``span_detectors.threshold_ms``
or ``span_detectors.threshold``, ``span_detectors.count`` and
``span_detectors.total_count`` (N+1), ``db.system.name``, ``db.query.text``
(sanitised, cut to ``max_statement_length``), ``db.query.fingerprint``,
``db.query.summary``, ``db.operation.name``, ``db.collection.name``.
Findings are also counted, per resource, in monotonic sums
``<namespace>.slow_requests`` (``{request}``; attributes ``http.route``,
``http.request.method``), ``<namespace>.slow_queries`` (``{query}``) and
``<namespace>.n_plus_one`` (``{trace}``) (both: ``http.route``,
``db.system.name``, ``db.query.summary``, ``db.query.fingerprint``), absent
values left out. Prometheus: ``span_detectors_slow_requests_total``,
``span_detectors_slow_queries_total``, ``span_detectors_n_plus_one_total``.

Timing. A background task ticks every ``tick_interval`` (<= 1 s): it evaluates
due traces and sends the pending findings as one Logs request; every
``metrics_flush_interval`` it sends the counters as one Metrics request
(cumulative counters without findings for ``metrics_expiration`` > 0 are
dropped first; delta counters idle for a whole interval are dropped).
``consume_traces`` never awaits and never fails. A refused send is logged (at
most every 10 s) and counted in ``..._dropped_items_total``; findings are not
retried. Shutdown evaluates every buffered trace and sends what is left.

Self-metrics (label ``connector``): ``otelcol_connector_span_detectors_findings_total``
(also ``detector``), ``..._traces_evicted_total``, ``..._late_spans_total``,
``..._dropped_items_total`` (also ``otel_signal``) and the gauge
``..._traces_on_memory``.

Time: ``clock`` (monotonic seconds) drives windows, ``wall_ns`` stamps
records and points; both injectable, as is the tick ``sleep``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from agent.component import Capabilities, Host, Settings, Signal
from agent.connectors.span_detectors.config import Config
from agent.connectors.spans import (
    DB_STATEMENT,
    DB_SYSTEM,
    HTTP_METHOD,
    HTTP_ROUTE,
    KIND_CLIENT,
    KIND_SERVER,
    AttrReader,
    is_local_root,
)
from agent.connectors.sql import QueryCache, QueryInfo
from agent.consumer import consume_fn
from agent.errors import ConsumerError
from agent.pdata import Logs, Metrics, Traces, proto
from agent.pdata.attributes import set_any_value

__all__ = ["DETECTORS", "SCOPE_NAME", "SpanDetectorsConnector"]

SCOPE_NAME: Final = "otel_sidecar.span_detectors"
#: Detector name -> (counter suffix, unit, description).
DETECTORS: Final[dict[str, tuple[str, str, str]]] = {
    "slow_request": ("slow_requests", "{request}", "Server spans at or above the slow request threshold."),
    "slow_query": ("slow_queries", "{query}", "DB client spans at or above the slow query threshold."),
    "n_plus_one": ("n_plus_one", "{trace}",
                   "Traces that ran one statement more than the N+1 threshold times under one parent span."),
}
OVERFLOW: Final[tuple[tuple[str, Any], ...]] = (("otel.metric.overflow", True),)
_REPORT_INTERVAL: Final = 10.0
_PREFIX: Final = "otelcol_connector_span_detectors_"
_WARN: Final = proto.SeverityNumber.Value("SEVERITY_NUMBER_WARN")
_CUMULATIVE: Final = proto.AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
_DELTA: Final = proto.AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA


class _Trace:
    """What the detectors keep of one buffered trace."""

    __slots__ = ("first_seen", "groups", "method", "resource", "route", "slow")

    def __init__(self, first_seen: float) -> None:
        self.first_seen = first_seen
        self.route: str | None = None
        self.method: str | None = None
        self.resource = b""
        #: (parent span id, fingerprint) -> [count, total duration ns, first span id, query, db system]
        self.groups: dict[tuple[bytes, str], list[Any]] = {}
        #: (span id, query, duration ns, end ns, db system, resource)
        self.slow: list[tuple[bytes, QueryInfo, int, int, str, bytes]] = []


class _Finding:
    """One finding, ready to become a log record."""

    __slots__ = ("attrs", "body", "detector", "resource", "span_id", "time_ns", "trace_id")

    def __init__(self, detector: str, resource: bytes, trace_id: bytes, span_id: bytes, time_ns: int, body: str,
                 attrs: list[tuple[str, Any]]) -> None:
        self.detector = detector
        self.resource = resource
        self.trace_id = trace_id
        self.span_id = span_id
        self.time_ns = time_ns
        self.body = body
        self.attrs = attrs


class _Count:
    __slots__ = ("seen", "start_ns", "value")

    def __init__(self, start_ns: int, seen: float) -> None:
        self.start_ns = start_ns
        self.seen = seen
        self.value = 0


def _ms(ns: float) -> float:
    return round(ns / 1e6, 3)


class SpanDetectorsConnector:
    """Traces in; findings out as logs and counters. See the module docstring.

    Args:
        settings: component settings.
        config: the decoded config.
        consumers: the next consumer per output signal (logs and/or metrics).
        clock: monotonic seconds (windows; tests inject a fake one).
        wall_ns: wall-clock nanoseconds (timestamps).
        sleep: the wait between ticks.

    Raises:
        ValueError: neither a logs nor a metrics consumer.
    """

    def __init__(self, settings: Settings, config: Config, consumers: Mapping[Signal, object], *,
                 clock: Callable[[], float] = time.monotonic, wall_ns: Callable[[], int] = time.time_ns,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if Signal.LOGS not in consumers and Signal.METRICS not in consumers:
            raise ValueError("span_detectors emits logs and metrics: it must be a receiver of a logs or "
                             "metrics pipeline")
        self.id = settings.id
        self.config = config
        self._log = settings.logger
        if Signal.TRACES in consumers:
            self._log.warning("span_detectors emits no traces; the traces pipelines it is a receiver of get nothing.")
        self._logs_next = consume_fn(consumers[Signal.LOGS], Signal.LOGS) if Signal.LOGS in consumers else None
        self._metrics_next = (consume_fn(consumers[Signal.METRICS], Signal.METRICS)
                              if Signal.METRICS in consumers else None)
        self._clock = clock
        self._wall_ns = wall_ns
        self._sleep = sleep
        c = config
        self._slow_req_ns = int(c.slow_requests.threshold * 1e9) if c.slow_requests.enabled else 0
        self._slow_query_ns = int(c.slow_queries.threshold * 1e9) if c.slow_queries.enabled else 0
        self._n1 = c.n_plus_one.threshold if c.n_plus_one.enabled else 0
        self._server = AttrReader((HTTP_ROUTE, HTTP_METHOD))
        self._db = AttrReader((DB_SYSTEM, DB_STATEMENT))
        self._queries = QueryCache()
        self._pending: OrderedDict[bytes, _Trace] = OrderedDict()
        self._closing: OrderedDict[bytes, float] = OrderedDict()
        self._closed: OrderedDict[bytes, None] = OrderedDict()
        self._findings: list[_Finding] = []
        self._counts: dict[tuple[str, bytes, tuple[tuple[str, Any], ...]], _Count] = {}
        self._per_metric: dict[str, int] = {}
        self._names = {d: f"{c.namespace}.{suffix}" if c.namespace else suffix
                       for d, (suffix, _, _) in DETECTORS.items()}
        self._events = {d: f"{c.namespace}.{d}" if c.namespace else d for d in DETECTORS}
        self.tick_interval = c.tick_interval
        self._last_metrics = clock()
        # Per-span events are counted here and added to the self-metrics once per request.
        self._n_evicted = 0
        self._n_late = 0
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._last_report = -_REPORT_INTERVAL
        self._failures = 0
        t = settings.telemetry
        cid = str(settings.id)
        lbl = ("connector",)
        found = t.counter(_PREFIX + "findings", "Findings of the span detectors, by detector.", (*lbl, "detector"))
        self._found = {d: found.labels(cid, d) for d in DETECTORS}
        self._evicted = t.counter(_PREFIX + "traces_evicted",
                                  "Buffered traces evaluated early because max_traces was reached.", lbl).labels(cid)
        self._late = t.counter(_PREFIX + "late_spans", "DB spans that arrived after their trace was evaluated.",
                               lbl).labels(cid)
        dropped = t.counter(_PREFIX + "dropped_items", "Log records or metric points the next consumer refused.",
                            (*lbl, "otel_signal"))
        self._dropped = {Signal.LOGS: dropped.labels(cid, "logs"), Signal.METRICS: dropped.labels(cid, "metrics")}
        t.gauge(_PREFIX + "traces_on_memory", "Traces buffered for evaluation.", lbl).labels(cid).set_function(
            lambda: float(len(self._pending)))

    # -- consumer ---------------------------------------------------------------------------
    def capabilities(self) -> Capabilities:
        return Capabilities(mutates_data=False)

    @property
    def pending_traces(self) -> int:
        return len(self._pending)

    @property
    def pending_findings(self) -> int:
        return len(self._findings)

    async def consume_traces(self, td: Traces) -> None:
        """Inspect every span of ``td`` (never raises; never awaits)."""
        self.inspect(td)

    def inspect(self, td: Traces) -> None:
        """Run the detectors over ``td`` (synchronous)."""
        try:
            self._inspect(td)
        finally:
            if self._n_evicted:
                self._evicted.inc(self._n_evicted)
                self._n_evicted = 0
            if self._n_late:
                self._late.inc(self._n_late)
                self._n_late = 0

    def _inspect(self, td: Traces) -> None:
        now = self._clock()
        slow_req = self._slow_req_ns
        for rs in td.proto.resource_spans:
            resource: bytes | None = None
            for ss in rs.scope_spans:
                for span in ss.spans:
                    kind = span.kind
                    if kind == KIND_CLIENT:
                        system, statement = self._db.read(span.attributes)
                        if system is None or statement is None:
                            continue
                        if resource is None:
                            resource = bytes(rs.resource.SerializeToString())
                        self._query(span, system, statement, resource, now)
                        continue
                    root = is_local_root(span)
                    slow = bool(kind == KIND_SERVER and slow_req
                                and span.end_time_unix_nano - span.start_time_unix_nano >= slow_req)
                    if not root and not slow:
                        continue
                    route = method = None
                    if kind == KIND_SERVER:
                        route, method = self._server.read(span.attributes)
                    if resource is None:
                        resource = bytes(rs.resource.SerializeToString())
                    if slow:
                        self._slow_request(span, route, method, resource)
                    tid = span.trace_id
                    if root and tid:
                        tr = self._trace(tid, now)
                        if tr is not None:
                            if tr.route is None:
                                tr.route, tr.method = route, method
                            if not tr.resource:
                                tr.resource = resource
                            if tid not in self._closing:
                                self._closing[tid] = now + self.config.root_span_wait

    def _trace(self, tid: bytes, now: float) -> _Trace | None:
        """The buffered entry of ``tid`` (created if new), or None when the trace was already evaluated."""
        tr = self._pending.get(tid)
        if tr is not None:
            return tr
        if tid in self._closed:
            return None
        if len(self._pending) >= self.config.max_traces:
            old_id, old = self._pending.popitem(last=False)
            self._closing.pop(old_id, None)
            self._n_evicted += 1
            self._evaluate(old_id, old)
        tr = self._pending[tid] = _Trace(now)
        return tr

    def _query(self, span: Any, system: str, statement: str, resource: bytes, now: float) -> None:
        slow_ns = self._slow_query_ns
        dur = span.end_time_unix_nano - span.start_time_unix_nano
        slow = bool(slow_ns and dur >= slow_ns)
        if not self._n1 and not slow:
            return
        q = self._queries.get(statement)
        tid = span.trace_id
        tr = self._trace(tid, now) if tid else None
        if tr is None:
            self._n_late += 1 if tid else 0
            if slow:
                self._slow_query(tid, (span.span_id, q, dur, span.end_time_unix_nano, system, resource), None, None)
            return
        if not tr.resource:
            tr.resource = resource
        if self._n1:
            key = (bytes(span.parent_span_id), q.fingerprint)
            g = tr.groups.get(key)
            if g is None:
                g = tr.groups[key] = [0, 0, bytes(span.span_id), q, system]
            g[0] += 1
            g[1] += dur
        if slow:
            tr.slow.append((bytes(span.span_id), q, dur, span.end_time_unix_nano, system, resource))

    # -- findings ---------------------------------------------------------------------------
    def _add(self, f: _Finding, metric_attrs: list[tuple[str, Any]]) -> None:
        self._found[f.detector].inc()
        if self._logs_next is not None:
            self._findings.append(f)
        if self._metrics_next is None:
            return
        name = self._names[f.detector]
        attrs = tuple((k, v) for k, v in metric_attrs if v)
        key = (name, f.resource, attrs)
        cnt = self._counts.get(key)
        if cnt is None:
            limit = self.config.aggregation_cardinality_limit
            n = self._per_metric.get(name, 0)
            if limit and n >= limit:
                key = (name, f.resource, OVERFLOW)
                cnt = self._counts.get(key)
            else:
                self._per_metric[name] = n + 1
            if cnt is None:
                cnt = self._counts[key] = _Count(self._wall_ns(), self._clock())
        cnt.value += 1
        cnt.seen = self._clock()

    def _slow_request(self, span: Any, route: str | None, method: str | None, resource: bytes) -> None:
        dur = span.end_time_unix_nano - span.start_time_unix_nano
        thr = self._slow_req_ns
        what = f"{method} {route}" if method and route else route or span.name
        body = f"Slow request: {what} took {_ms(dur):g} ms (threshold {_ms(thr):g} ms)."
        attrs: list[tuple[str, Any]] = [
            ("span_detectors.finding", "slow_request"), (HTTP_ROUTE, route), (HTTP_METHOD, method),
            ("span.name", span.name), ("span_detectors.duration_ms", _ms(dur)),
            ("span_detectors.threshold_ms", _ms(thr)),
        ]
        f = _Finding("slow_request", resource, bytes(span.trace_id), bytes(span.span_id), span.end_time_unix_nano,
                     body, attrs)
        self._add(f, [(HTTP_ROUTE, route), (HTTP_METHOD, method)])

    def _query_attrs(self, q: QueryInfo, system: str) -> list[tuple[str, Any]]:
        return [(DB_SYSTEM, system), ("db.query.text", q.text[:self.config.max_statement_length]),
                ("db.query.fingerprint", q.fingerprint), ("db.query.summary", q.summary),
                ("db.operation.name", q.operation), ("db.collection.name", q.table)]

    def _slow_query(self, tid: bytes, slow: tuple[bytes, QueryInfo, int, int, str, bytes], route: str | None,
                    method: str | None) -> None:
        sid, q, dur, end, system, resource = slow
        thr = self._slow_query_ns
        where = f" in {method + ' ' if method else ''}{route}" if route else ""
        body = f"Slow query{where}: {q.summary or 'statement'} took {_ms(dur):g} ms (threshold {_ms(thr):g} ms)."
        attrs: list[tuple[str, Any]] = [("span_detectors.finding", "slow_query"), (HTTP_ROUTE, route),
                                        (HTTP_METHOD, method), *self._query_attrs(q, system),
                                        ("span_detectors.duration_ms", _ms(dur)),
                                        ("span_detectors.threshold_ms", _ms(thr))]
        f = _Finding("slow_query", resource, bytes(tid), sid, end, body, attrs)
        self._add(f, [(HTTP_ROUTE, route), (DB_SYSTEM, system), ("db.query.summary", q.summary),
                      ("db.query.fingerprint", q.fingerprint)])

    def _evaluate(self, tid: bytes, tr: _Trace) -> None:
        """Report what the buffered trace shows and remember that it was evaluated."""
        closed = self._closed
        closed[tid] = None
        if len(closed) > self.config.max_traces:
            closed.popitem(last=False)
        route, method = tr.route, tr.method
        if self._n1 and tr.groups:
            worst: dict[str, tuple[bytes, list[Any]]] = {}
            totals: dict[str, int] = {}
            for (parent, fp), g in tr.groups.items():
                totals[fp] = totals.get(fp, 0) + g[0]
                if g[0] > self._n1:
                    cur = worst.get(fp)
                    if cur is None or g[0] > cur[1][0]:
                        worst[fp] = (parent, g)
            for fp, (parent, g) in worst.items():
                self._n_plus_one(tid, tr, parent, g, totals[fp])
        for slow in tr.slow:
            self._slow_query(tid, slow, route, method)

    def _n_plus_one(self, tid: bytes, tr: _Trace, parent: bytes, g: list[Any], total: int) -> None:
        count, dur, first_span, q, system = g
        route = tr.route
        where = f" in {tr.method + ' ' if tr.method else ''}{route}" if route else ""
        body = (f"N+1 queries{where}: {q.summary or 'statement'} ran {count} times under one parent span "
                f"(threshold {self._n1}): {q.text[:200]}")
        attrs: list[tuple[str, Any]] = [
            ("span_detectors.finding", "n_plus_one"), (HTTP_ROUTE, route), (HTTP_METHOD, tr.method),
            *self._query_attrs(q, system), ("span_detectors.count", count), ("span_detectors.total_count", total),
            ("span_detectors.threshold", self._n1), ("span_detectors.duration_ms", _ms(dur)),
        ]
        f = _Finding("n_plus_one", tr.resource, bytes(tid), parent or first_span, self._wall_ns(), body, attrs)
        self._add(f, [(HTTP_ROUTE, route), (DB_SYSTEM, system), ("db.query.summary", q.summary),
                      ("db.query.fingerprint", q.fingerprint)])

    # -- ticks ------------------------------------------------------------------------------
    def evaluate_due(self) -> int:
        """Evaluate every trace whose wait or window is over; returns how many."""
        now = self._clock()
        pending, closing = self._pending, self._closing
        n = 0
        while closing:
            tid, at = next(iter(closing.items()))
            if at > now:
                break
            closing.popitem(last=False)
            tr = pending.pop(tid, None)
            if tr is not None:
                self._evaluate(tid, tr)
                n += 1
        deadline = now - self.config.trace_window
        while pending:
            tid, tr = next(iter(pending.items()))
            if tr.first_seen > deadline:
                break
            pending.popitem(last=False)
            closing.pop(tid, None)
            self._evaluate(tid, tr)
            n += 1
        return n

    def evaluate_all(self) -> None:
        """Evaluate every buffered trace now (shutdown)."""
        traces = list(self._pending.items())
        self._pending.clear()
        self._closing.clear()
        for tid, tr in traces:
            self._evaluate(tid, tr)

    def collect_logs(self) -> Logs | None:
        """The pending findings as one Logs request (None when there are none); clears them."""
        findings, self._findings = self._findings, []
        if not findings:
            return None
        req = proto.ExportLogsServiceRequest()
        scopes: dict[bytes, Any] = {}
        observed = self._wall_ns()
        for f in findings:
            sl = scopes.get(f.resource)
            if sl is None:
                rl = req.resource_logs.add()
                rl.resource.MergeFromString(f.resource)
                sl = scopes[f.resource] = rl.scope_logs.add()
                sl.scope.name = SCOPE_NAME
            r = sl.log_records.add()
            r.time_unix_nano = f.time_ns
            r.observed_time_unix_nano = observed
            r.severity_number = _WARN
            r.severity_text = "WARN"
            r.event_name = self._events[f.detector]
            r.body.string_value = f.body
            r.trace_id = f.trace_id
            r.span_id = f.span_id
            for k, v in f.attrs:
                if v is None or v == "":
                    continue
                kv = r.attributes.add()
                kv.key = k
                set_any_value(kv.value, v)
        return Logs(req, count=len(findings))

    def _forget(self, keys: list[tuple[str, bytes, tuple[tuple[str, Any], ...]]]) -> None:
        for key in keys:
            del self._counts[key]
            if key[2] != OVERFLOW:
                self._per_metric[key[0]] -= 1

    def collect_metrics(self) -> Metrics | None:
        """The finding counters as one Metrics request (None when there are none)."""
        expiration = self.config.metrics_expiration
        if expiration > 0 and not self.config.delta:
            cutoff = self._clock() - expiration
            self._forget([key for key, cnt in self._counts.items() if cnt.seen <= cutoff])
        if not self._counts:
            return None
        now_ns = self._wall_ns()
        temporality = _DELTA if self.config.delta else _CUMULATIVE
        req = proto.ExportMetricsServiceRequest()
        scopes: dict[bytes, Any] = {}
        metrics: dict[tuple[bytes, str], Any] = {}
        units = {self._names[d]: (unit, desc) for d, (_, unit, desc) in DETECTORS.items()}
        points = 0
        for (name, resource, attrs), cnt in self._counts.items():
            if cnt.value == 0:
                continue
            sm = scopes.get(resource)
            if sm is None:
                rm = req.resource_metrics.add()
                rm.resource.MergeFromString(resource)
                sm = scopes[resource] = rm.scope_metrics.add()
                sm.scope.name = SCOPE_NAME
            m = metrics.get((resource, name))
            if m is None:
                m = metrics[(resource, name)] = sm.metrics.add()
                m.name = name
                m.unit, m.description = units[name]
                m.sum.is_monotonic = True
                m.sum.aggregation_temporality = temporality
            p = m.sum.data_points.add()
            p.start_time_unix_nano = cnt.start_ns
            p.time_unix_nano = now_ns
            p.as_int = cnt.value
            for k, v in attrs:
                kv = p.attributes.add()
                kv.key = k
                set_any_value(kv.value, v)
            points += 1
            if self.config.delta:
                cnt.start_ns = now_ns
                cnt.value = 0
        if self.config.delta:
            # Counters that stayed at zero for a whole interval are forgotten (bounded memory).
            self._forget([key for key, cnt in self._counts.items() if cnt.value == 0 and cnt.start_ns != now_ns])
        return Metrics(req, count=points) if points else None

    async def _send(self, signal: Signal, data: Logs | Metrics | None) -> None:
        nxt = self._logs_next if signal is Signal.LOGS else self._metrics_next
        if data is None or nxt is None:
            return
        try:
            await nxt(data)
        except ConsumerError as e:
            n = data.item_count
            self._dropped[signal].inc(n)
            self._failures += 1
            now = self._clock()
            if now - self._last_report >= _REPORT_INTERVAL:
                self._log.warning("Next consumer refused span detector %s; dropping %d items (%d refusals since "
                                  "the last report): %s.", signal.value, n, self._failures, e,
                                  extra={"dropped_items": n})
                self._last_report = now
                self._failures = 0

    async def tick(self, *, force_metrics: bool = False) -> None:
        """Evaluate due traces, send pending findings, and the counters when their interval is over."""
        self.evaluate_due()
        await self._send(Signal.LOGS, self.collect_logs())
        now = self._clock()
        if force_metrics or now - self._last_metrics >= self.config.metrics_flush_interval:
            self._last_metrics = now
            await self._send(Signal.METRICS, self.collect_metrics())

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self, host: Host) -> None:
        if self._task is None and not self._stopped:
            self._last_metrics = self._clock()
            self._task = asyncio.create_task(self._run(), name=f"span_detectors {self.id} ticker")

    async def _run(self) -> None:
        while True:
            await self._sleep(self.tick_interval)
            try:
                await self.tick()
            except Exception:  # never let the ticker die
                self._log.exception("Span detectors tick failed.")

    async def shutdown(self) -> None:
        """Stop the ticker, evaluate every buffered trace and send what is left (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.evaluate_all()
            await self.tick(force_metrics=True)
