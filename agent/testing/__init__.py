"""Test doubles and data builders, shipped so every component's tests (and
users' own) can use them: sink and failing consumers, and OTLP request makers
with unique ids per item (as the collector's testbed does)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from agent.component import Capabilities, Signal
from agent.pdata import Logs, Metrics, PData, Traces, proto

__all__ = ["ErrorConsumer", "FakeClock", "SinkConsumer", "make_logs", "make_metrics", "make_traces"]


class FakeClock:
    """A monotonic clock that only moves when :meth:`sleep` is awaited.

    Pass ``clock=fake, sleep=fake.sleep`` to components that take an injectable
    clock (``ExporterHelper``, ``BaseExporter``): backoff waits then cost no real
    time and tests can assert the exact waits in :attr:`sleeps`.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class SinkConsumer:
    """Stores everything it is given, for every signal."""

    def __init__(self, mutates: bool = False) -> None:
        self.received: dict[Signal, list[PData]] = {s: [] for s in Signal}
        self._caps = Capabilities(mutates_data=mutates)
        self._event = asyncio.Event()

    def capabilities(self) -> Capabilities:
        return self._caps

    async def _take(self, signal: Signal, data: PData) -> None:
        self.received[signal].append(data)
        self._event.set()

    async def consume_traces(self, td: Traces) -> None:
        await self._take(Signal.TRACES, td)

    async def consume_metrics(self, md: Metrics) -> None:
        await self._take(Signal.METRICS, md)

    async def consume_logs(self, ld: Logs) -> None:
        await self._take(Signal.LOGS, ld)

    def count(self, signal: Signal) -> int:
        return sum(d.item_count for d in self.received[signal])

    async def wait_for(self, signal: Signal, n: int, timeout: float = 5.0) -> None:
        """Wait until at least ``n`` items of ``signal`` arrived."""
        async def _loop() -> None:
            while self.count(signal) < n:
                self._event.clear()
                await self._event.wait()
        await asyncio.wait_for(_loop(), timeout)


class ErrorConsumer(SinkConsumer):
    """Raises ``error_factory()`` for every call (counting calls)."""

    def __init__(self, error_factory: Callable[[], BaseException]) -> None:
        super().__init__()
        self.calls = 0
        self._error_factory = error_factory

    async def _take(self, signal: Signal, data: PData) -> None:
        self.calls += 1
        raise self._error_factory()


def _kv(attrs: Any, key: str, value: Any) -> None:
    kv = attrs.add()
    kv.key = key
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.string_value = str(value)


def make_traces(n: int, *, batch_index: int = 0, service: str = "test-service", attrs: int = 2) -> Traces:
    """``n`` spans in one resource and scope; each span has a unique id and
    ``batch_index``/``item_index`` attributes."""
    req = proto.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    _kv(rs.resource.attributes, "service.name", service)
    ss = rs.scope_spans.add()
    ss.scope.name = "agent.testing"
    base = 1_700_000_000_000_000_000
    for i in range(n):
        s = ss.spans.add()
        s.trace_id = (batch_index * 1_000_003 + i + 1).to_bytes(16, "big")
        s.span_id = (i + 1).to_bytes(8, "big")
        s.name = f"span-{i}"
        s.kind = proto.Span.SPAN_KIND_SERVER
        s.start_time_unix_nano = base + i * 1000
        s.end_time_unix_nano = base + i * 1000 + 500_000
        _kv(s.attributes, "batch_index", batch_index)
        _kv(s.attributes, "item_index", i)
        for a in range(attrs):
            _kv(s.attributes, f"attr.{a}", f"value-{a}")
    return Traces(req)


def make_logs(n: int, *, batch_index: int = 0, service: str = "test-service") -> Logs:
    req = proto.ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    _kv(rl.resource.attributes, "service.name", service)
    sl = rl.scope_logs.add()
    sl.scope.name = "agent.testing"
    base = 1_700_000_000_000_000_000
    for i in range(n):
        r = sl.log_records.add()
        r.time_unix_nano = base + i
        r.observed_time_unix_nano = base + i
        r.severity_number = proto.SeverityNumber.Value("SEVERITY_NUMBER_INFO")
        r.severity_text = "INFO"
        r.body.string_value = f"log message {batch_index}-{i}"
        _kv(r.attributes, "batch_index", batch_index)
        _kv(r.attributes, "item_index", i)
    return Logs(req)


def make_metrics(n: int, *, batch_index: int = 0, service: str = "test-service") -> Metrics:
    """``n`` cumulative monotonic sum points of one metric, one per ``item_index``."""
    req = proto.ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    _kv(rm.resource.attributes, "service.name", service)
    sm = rm.scope_metrics.add()
    sm.scope.name = "agent.testing"
    m = sm.metrics.add()
    m.name = "test.requests"
    m.unit = "{request}"
    m.sum.aggregation_temporality = proto.AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    m.sum.is_monotonic = True
    base = 1_700_000_000_000_000_000
    for i in range(n):
        p = m.sum.data_points.add()
        p.start_time_unix_nano = base
        p.time_unix_nano = base + 1_000_000_000
        p.as_int = i + 1
        _kv(p.attributes, "batch_index", batch_index)
        _kv(p.attributes, "item_index", i)
    return Metrics(req)
