"""memory_limiter: refusal above the soft limit with a retry hint, recovery below it,
forced collections, logging once per state change, shared monitor lifecycle."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from agent.component import Settings, Signal
from agent.config.decode import decode
from agent.errors import MemoryLimitError
from agent.processors.memory_limiter import (
    FACTORY,
    Config,
    Limits,
    MemoryLimiterProcessor,
    MemoryMonitor,
    process_rss,
    total_memory,
)
from agent.processors.memory_limiter.processor import MIB, release_memory
from agent.telemetry.metrics import SelfMetrics
from agent.testing import SinkConsumer, make_traces

from .helpers import MAKERS

SettingsFn = Callable[..., Settings]


class FakeMemory:
    """An injectable RSS reader, collector and clock."""

    def __init__(self, rss_mib: int) -> None:
        self.rss = rss_mib * MIB
        self.after_gc: int | None = None
        self.collections = 0
        self.now = 1000.0

    def read(self) -> int:
        return self.rss

    def collect(self) -> None:
        self.collections += 1
        if self.after_gc is not None:
            self.rss = self.after_gc

    def clock(self) -> float:
        return self.now


def _config(**kw: object) -> Config:
    return decode(Config, {"check_interval": "1s", "limit_mib": 100, **kw}, "processors.memory_limiter")


def _monitor(mem: FakeMemory, **kw: object) -> MemoryMonitor:
    return MemoryMonitor.from_config(_config(**kw), logging.getLogger("test.memory_limiter"),
                                     read_rss=mem.read, collect=mem.collect, clock=mem.clock)


@pytest.mark.parametrize("signal", list(Signal))
async def test_refuses_above_soft_limit_and_accepts_again_below(
        proc_settings: SettingsFn, telemetry: SelfMetrics, signal: Signal) -> None:
    mem = FakeMemory(50)
    monitor = _monitor(mem)  # hard 100 MiB, spike 20 MiB, soft 80 MiB
    assert (monitor.limits.hard, monitor.limits.soft) == (100 * MIB, 80 * MIB)
    sink = SinkConsumer()
    proc = MemoryLimiterProcessor(proc_settings("memory_limiter", pipeline=signal.value), _config(), signal, sink,
                                  monitor=monitor)
    consume = getattr(proc, "consume_" + signal.value)
    make = MAKERS[signal]
    await proc.start(None)  # type: ignore[arg-type]
    await consume(make(3))
    assert sink.count(signal) == 3

    mem.rss = 85 * MIB
    monitor.check()
    assert monitor.must_refuse
    with pytest.raises(MemoryLimitError) as info:
        await consume(make(4))
    assert info.value.retry_after == 1.0
    assert sink.count(signal) == 3
    refused = f"otelcol_processor_refused_{signal.item_name}_total"
    assert telemetry.value(refused, {"processor": "memory_limiter"}) == 4

    mem.rss = 79 * MIB
    monitor.check()
    assert not monitor.must_refuse
    await consume(make(2))
    assert sink.count(signal) == 5
    labels = {"processor": "memory_limiter", "pipeline": signal.value, "otel_signal": signal.value}
    assert telemetry.value("otelcol_processor_incoming_items_total", labels) == 9
    assert telemetry.value("otelcol_processor_outgoing_items_total", labels) == 5
    await proc.shutdown()


async def test_periodic_check_drives_the_decision(proc_settings: SettingsFn) -> None:
    mem = FakeMemory(10)
    cfg = decode(Config, {"check_interval": "5ms", "limit_mib": 100}, "")
    monitor = MemoryMonitor.from_config(cfg, logging.getLogger("t"), read_rss=mem.read, collect=mem.collect)
    sink = SinkConsumer()
    proc = MemoryLimiterProcessor(proc_settings("memory_limiter"), cfg, Signal.TRACES, sink, monitor=monitor)
    await proc.start(None)  # type: ignore[arg-type]
    assert monitor.running
    mem.rss = 95 * MIB
    async with asyncio.timeout(5):
        while not monitor.must_refuse:
            await asyncio.sleep(0.005)
    with pytest.raises(MemoryLimitError) as info:
        await proc.consume_traces(make_traces(1))
    assert info.value.retry_after == 1.0  # max(1s, check_interval)
    mem.rss = 20 * MIB
    async with asyncio.timeout(5):
        while monitor.must_refuse:
            await asyncio.sleep(0.005)
    await proc.consume_traces(make_traces(1))
    await proc.shutdown()
    assert not monitor.running


async def test_retry_hint_follows_a_long_check_interval(proc_settings: SettingsFn) -> None:
    mem = FakeMemory(99)
    cfg = _config(check_interval="5s")
    monitor = MemoryMonitor.from_config(cfg, logging.getLogger("t"), read_rss=mem.read, collect=mem.collect)
    monitor.check()
    proc = MemoryLimiterProcessor(proc_settings("memory_limiter"), cfg, Signal.TRACES, SinkConsumer(),
                                  monitor=monitor)
    with pytest.raises(MemoryLimitError) as info:
        await proc.consume_traces(make_traces(1))
    assert info.value.retry_after == 5.0


def test_hard_limit_forces_a_collection_every_check() -> None:
    mem = FakeMemory(120)
    monitor = _monitor(mem)
    monitor.check()
    assert mem.collections == 1 and monitor.must_refuse
    monitor.check()
    assert mem.collections == 2  # min_gc_interval_when_hard_limited defaults to 0
    mem.after_gc = 30 * MIB  # collecting helps: accepted again right away
    monitor.check()
    assert mem.collections == 3 and not monitor.must_refuse


def test_soft_limit_collections_respect_their_minimum_interval() -> None:
    mem = FakeMemory(85)
    monitor = _monitor(mem)  # min_gc_interval_when_soft_limited: 10s
    monitor.check()
    assert mem.collections == 0  # less than 10s since start
    mem.now += 11
    monitor.check()
    assert mem.collections == 1
    mem.now += 5
    monitor.check()
    assert mem.collections == 1
    mem.now += 6
    mem.after_gc = 10 * MIB
    monitor.check()
    assert mem.collections == 2 and not monitor.must_refuse
    assert monitor.collections == 2


def test_state_changes_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    mem = FakeMemory(85)
    monitor = _monitor(mem, min_gc_interval_when_soft_limited="1h")
    with caplog.at_level(logging.INFO, logger="test.memory_limiter"):
        for _ in range(5):
            monitor.check()
        mem.rss = 110 * MIB
        for _ in range(3):
            monitor.check()
        mem.rss = 10 * MIB
        for _ in range(3):
            monitor.check()
    messages = [r.getMessage() for r in caplog.records if "configured" not in r.getMessage()]
    assert sum("above the soft limit" in m for m in messages) == 1
    assert sum("above the hard limit" in m for m in messages) == 1
    assert sum("back within limits" in m for m in messages) == 1
    assert len(messages) == 3


def test_failing_measurement_keeps_the_decision_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    mem = FakeMemory(90)
    calls = {"n": 0}

    def flaky() -> int:
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError("proc gone")
        return mem.read()

    monitor = MemoryMonitor(Limits(100 * MIB, 20 * MIB), 1.0, logging.getLogger("test.memory_limiter"),
                            read_rss=flaky, collect=mem.collect, clock=mem.clock)
    with caplog.at_level(logging.INFO, logger="test.memory_limiter"):
        for _ in range(4):
            monitor._safe_check()
    assert monitor.must_refuse
    assert sum("Memory check failed" in r.getMessage() for r in caplog.records) == 1


def test_limits_from_percentages_and_default_spike() -> None:
    total = 1000 * MIB
    cfg = decode(Config, {"check_interval": "1s", "limit_percentage": 50}, "")
    assert Limits.from_config(cfg, lambda: total) == Limits(500 * MIB, 100 * MIB)
    cfg = decode(Config, {"check_interval": "1s", "limit_percentage": 80, "spike_limit_percentage": 25}, "")
    limits = Limits.from_config(cfg, lambda: total)
    assert (limits.hard, limits.spike, limits.soft) == (800 * MIB, 250 * MIB, 550 * MIB)
    cfg = _config(spike_limit_mib=30)

    def unused() -> int:
        raise AssertionError("total memory is not needed for MiB limits")

    assert Limits.from_config(cfg, unused).soft == 70 * MIB


def test_real_readers_work() -> None:
    assert process_rss() > 1 * MIB
    assert total_memory() >= process_rss()
    release_memory()


async def test_pipelines_of_one_id_share_a_monitor(proc_settings: SettingsFn) -> None:
    cfg = _config(limit_mib=1 << 20, spike_limit_mib=1)  # 1 TiB: never refuses here
    procs = [FACTORY.create(proc_settings("memory_limiter", pipeline=s.value), cfg, s, SinkConsumer())
             for s in Signal]
    other = FACTORY.create(proc_settings("memory_limiter/other"), cfg, Signal.TRACES, SinkConsumer())
    assert all(isinstance(p, MemoryLimiterProcessor) for p in [*procs, other])
    monitor = procs[0].monitor
    assert all(p.monitor is monitor for p in procs)
    assert other.monitor is not monitor
    for p in procs:
        await p.start(None)
    assert monitor.running and monitor.last_rss > 0
    await procs[0].shutdown()
    await procs[0].shutdown()  # twice: released only once
    assert monitor.running
    await procs[1].shutdown()
    await procs[2].shutdown()
    assert not monitor.running
    await other.shutdown()  # never started
    assert not procs[0].capabilities().mutates_data


def test_monitor_rejects_a_zero_interval() -> None:
    with pytest.raises(ValueError):
        MemoryMonitor(Limits(1, 0), 0, logging.getLogger("t"))
