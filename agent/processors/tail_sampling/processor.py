"""The ``tail_sampling`` processor: buffer spans per trace, decide once the trace is complete.

Behaviour (the collector's ``tailsamplingprocessor``, subset in ``config.py``):

* Spans are grouped by trace id. A trace is decided ``decision_wait`` after
  its **first** span arrived; it is sampled when **any** top-level policy
  samples it (an ``invert_match`` veto wins; see
  :func:`~agent.processors.tail_sampling.policies.final_decision`).
* Sampled traces go downstream as new Traces requests (one per tick, merging
  every trace decided in it) that keep the resource/scope grouping; spans are
  forwarded **byte-identical** (stored and re-framed as serialized bytes, never
  re-encoded). Non-sampled spans are dropped and counted
  (``otelcol_processor_dropped_spans``).
* **Late spans** of a decided trace follow the decision: remembered trace ids
  (``decision_cache``; a size of 0 means ``num_traces``) forward late spans
  of sampled traces at once and drop those of non-sampled ones.
* **Bounded memory**: at most ``num_traces`` traces are pending. When a new
  trace arrives at a full buffer, the oldest pending trace is **decided early**
  with the spans it has (rather than dropped: an early decision still keeps
  error traces), and counted in
  ``otelcol_processor_tail_sampling_traces_evicted_total``; its later spans
  follow that decision.
* **Shutdown** decides every pending trace at once and forwards the sampled
  ones (or drops them all with ``drop_pending_traces_on_shutdown``).
* A failure of the next consumer while forwarding is logged (at most every
  10 s) and its spans counted as dropped: buffered spans have no client left
  to retry them.

Timing: a background task calls :meth:`TailSamplingProcessor.tick` every
``min(1s, decision_wait / 10)``. Time is read from an injectable ``clock``
(monotonic seconds) and waits use an injectable ``sleep``, so tests drive
decisions deterministically by advancing a fake clock and calling ``tick``.

Capabilities: the input is only read (``mutates_data=False``); output
requests are new objects built from bytes.

Self-metrics (label ``processor``; collector names where one exists):
``otelcol_processor_tail_sampling_count_traces_sampled{policy,sampled}``,
``..._global_count_traces_sampled{sampled}``, ``..._new_trace_id_received``,
``..._traces_evicted``, ``..._late_spans{sampled}`` and the gauge
``..._sampling_traces_on_memory``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Final

from agent.component import Host, Settings, Signal
from agent.errors import ConsumerError
from agent.pdata import PData, Traces, proto
from agent.processors.base import ProcessorBase
from agent.processors.tail_sampling.config import Config
from agent.processors.tail_sampling.policies import Decision, Policy, TraceData, build_policy, final_decision
from agent.processors.tail_sampling.wire import GroupKey, TracesView, encode_request, trace_id_of

__all__ = ["TailSamplingProcessor"]

_REPORT_INTERVAL: Final = 10.0
_PREFIX: Final = "otelcol_processor_tail_sampling_"


class _Trace:
    """A pending trace: when its first span arrived and its spans by (resource, scope)."""

    __slots__ = ("first_seen", "parts", "spans")

    def __init__(self, first_seen: float) -> None:
        self.first_seen = first_seen
        self.parts: dict[GroupKey, list[bytes]] = {}
        self.spans = 0


class _IdCache:
    """A bounded LRU set of trace ids."""

    __slots__ = ("_ids", "_size")

    def __init__(self, size: int) -> None:
        self._ids: OrderedDict[bytes, None] = OrderedDict()
        self._size = size

    def add(self, tid: bytes) -> None:
        self._ids[tid] = None
        self._ids.move_to_end(tid)
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)

    def __contains__(self, tid: object) -> bool:
        return tid in self._ids

    def __len__(self) -> int:
        return len(self._ids)


class TailSamplingProcessor(ProcessorBase):
    """Tail sampling for one traces pipeline.

    Args:
        settings: component settings.
        config: the decoded config.
        signal: must be traces.
        next_consumer: the pipeline's next consumer.
        clock: monotonic seconds (inject a fake one in tests).
        sleep: the wait between ticks.

    Raises:
        TypeError: ``signal`` is not traces.
    """

    mutates_data = False

    def __init__(self, settings: Settings, config: Config, signal: Signal, next_consumer: object, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if signal is not Signal.TRACES:
            raise TypeError(f"tail_sampling processes traces only, not {signal.value}")
        super().__init__(settings, signal, next_consumer)
        self.config = config
        self._clock = clock
        self._sleep = sleep
        self._wait = config.decision_wait
        self.tick_interval = min(1.0, config.decision_wait / 10)
        self._pending: OrderedDict[bytes, _Trace] = OrderedDict()
        dc = config.decision_cache
        self._sampled = _IdCache(dc.sampled_cache_size or config.num_traces)
        self._not_sampled = _IdCache(dc.non_sampled_cache_size or config.num_traces)
        self._policies: list[Policy] = [build_policy(p, clock) for p in config.policies]
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._last_report = -_REPORT_INTERVAL
        self._failed_forwards = 0
        t = settings.telemetry
        p, pl = str(settings.id), self.pipeline
        labels = ("processor", "pipeline")
        per_policy = t.counter(_PREFIX + "count_traces_sampled", "Traces sampled or not, per policy.",
                               (*labels, "policy", "sampled"))
        self._policy_counts = {(pol.name, s): per_policy.labels(p, pl, pol.name, s)
                               for pol in self._policies for s in ("true", "false")}
        glob = t.counter(_PREFIX + "global_count_traces_sampled", "Traces sampled or not, after all policies.",
                         (*labels, "sampled"))
        self._sampled_count = glob.labels(p, pl, "true")
        self._not_sampled_count = glob.labels(p, pl, "false")
        self._new_traces = t.counter(_PREFIX + "new_trace_id_received", "Trace ids seen for the first time.",
                                     labels).labels(p, pl)
        self._evicted = t.counter(_PREFIX + "traces_evicted",
                                  "Pending traces decided early because num_traces was reached.", labels).labels(p, pl)
        late = t.counter(_PREFIX + "late_spans", "Spans that arrived after their trace was decided.",
                         (*labels, "sampled"))
        self._late_sampled = late.labels(p, pl, "true")
        self._late_dropped = late.labels(p, pl, "false")
        t.gauge(_PREFIX + "sampling_traces_on_memory", "Traces pending a decision.",
                labels).labels(p, pl).set_function(lambda: float(len(self._pending)))

    # -- lifecycle ----------------------------------------------------------------------
    @property
    def pending_traces(self) -> int:
        """Traces waiting for their decision."""
        return len(self._pending)

    async def start(self, host: Host) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name=f"tail_sampling {self.id} ticker")

    async def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        traces = list(self._pending.items())
        self._pending.clear()
        if self.config.drop_pending_traces_on_shutdown:
            self._obs.dropped(self.signal, sum(t.spans for _, t in traces))
            return
        await self._forward(self._decide_all(traces))

    async def _run(self) -> None:
        while True:
            await self._sleep(self.tick_interval)
            try:
                await self.tick()
            except Exception:
                self._logger.exception("Tail sampling tick failed.")

    async def tick(self) -> None:
        """Decide every trace whose ``decision_wait`` has passed and forward the sampled ones."""
        deadline = self._clock() - self._wait
        due: list[tuple[bytes, _Trace]] = []
        pending = self._pending
        while pending:
            tid, tr = next(iter(pending.items()))
            if tr.first_seen > deadline:
                break
            pending.popitem(last=False)
            due.append((tid, tr))
        if due:
            await self._forward(self._decide_all(due))

    # -- ingestion ----------------------------------------------------------------------
    async def _consume(self, data: PData) -> None:
        self._obs.incoming(self.signal, data.item_count)
        view = TracesView()
        view.ParseFromString(data.to_bytes())
        now = self._clock()
        late: dict[GroupKey, list[bytes]] = {}
        late_n = dropped = 0
        early: list[tuple[bytes, _Trace]] = []
        pending, sampled, not_sampled = self._pending, self._sampled, self._not_sampled
        for rs in view.resource_spans:
            resource, rschema = bytes(rs.resource), rs.schema_url
            for ss in rs.scope_spans:
                key: GroupKey = (resource, rschema, bytes(ss.scope), ss.schema_url)
                for span in ss.spans:
                    tid = trace_id_of(span)
                    tr = pending.get(tid)
                    if tr is None:
                        if tid in sampled:
                            late.setdefault(key, []).append(span)
                            late_n += 1
                            continue
                        if tid in not_sampled:
                            dropped += 1
                            continue
                        if self._closed:
                            tr = _Trace(now)  # after shutdown: decided below, at once
                            early.append((tid, tr))
                        else:
                            if len(pending) >= self.config.num_traces:
                                early.append(pending.popitem(last=False))
                                self._evicted.inc()
                            tr = pending[tid] = _Trace(now)
                        self._new_traces.inc()
                    tr.parts.setdefault(key, []).append(span)
                    tr.spans += 1
        if dropped:
            self._late_dropped.inc(dropped)
            self._obs.dropped(self.signal, dropped)
        out: dict[GroupKey, list[bytes]] = {}
        if early:
            out = self._decide_all(early)
        if late:
            self._late_sampled.inc(late_n)
            for key, spans in late.items():
                out.setdefault(key, []).extend(spans)
        if out:
            await self._forward(out)

    # -- decisions ----------------------------------------------------------------------
    def _decide_all(self, traces: list[tuple[bytes, _Trace]]) -> dict[GroupKey, list[bytes]]:
        """Decide ``traces`` (recording the decisions) and return the sampled spans, grouped."""
        out: dict[GroupKey, list[bytes]] = {}
        dropped = 0
        resources: dict[bytes, Any] = {}
        for tid, tr in traces:
            if self._decide(tid, tr, resources):
                self._sampled.add(tid)
                self._sampled_count.inc()
                for key, spans in tr.parts.items():
                    out.setdefault(key, []).extend(spans)
            else:
                self._not_sampled.add(tid)
                self._not_sampled_count.inc()
                dropped += tr.spans
        if dropped:
            self._obs.dropped(self.signal, dropped)
        return out

    def _decide(self, tid: bytes, tr: _Trace, resources: dict[bytes, Any]) -> bool:
        spans: list[tuple[Any, Any]] = []
        for (resource, _, _, _), raw_spans in tr.parts.items():
            res = resources.get(resource)
            if res is None:
                res = resources[resource] = proto.Resource.FromString(resource)
            for raw in raw_spans:
                spans.append((res, proto.Span.FromString(raw)))
        trace = TraceData(tid, spans)
        decisions: list[Decision] = []
        first_match = self.config.sample_on_first_match
        for policy in self._policies:
            d = policy.evaluate(trace)
            decisions.append(d)
            self._policy_counts[(policy.name, "true" if d in (Decision.SAMPLED, Decision.INVERT_SAMPLED)
                                 else "false")].inc()
            if first_match and d is Decision.SAMPLED:
                break
        return final_decision(decisions)

    async def _forward(self, groups: dict[GroupKey, list[bytes]]) -> None:
        if not groups:
            return
        n = sum(len(s) for s in groups.values())
        td = Traces(raw=encode_request(groups), count=n)
        self._obs.outgoing(self.signal, n)
        try:
            await self._next(td)
        except ConsumerError as e:
            self._obs.dropped(self.signal, n)
            self._failed_forwards += 1
            now = self._clock()
            if now - self._last_report >= _REPORT_INTERVAL:
                self._logger.warning("Next consumer refused sampled spans; dropping %d spans (%d refusals since "
                                     "the last report): %s.", n, self._failed_forwards, e,
                                     extra={"dropped_items": n})
                self._last_report = now
                self._failed_forwards = 0
