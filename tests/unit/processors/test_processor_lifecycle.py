"""Lifecycle conformance of every processor of this package, for every signal:
registry lookup, create, start, consume, shutdown twice; shutdown without start."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agent import components
from agent.component import Kind, Settings, Signal
from agent.config.decode import decode
from agent.consumer import LogsConsumer, MetricsConsumer, TracesConsumer, capabilities_of
from agent.testing import SinkConsumer

from .helpers import MAKERS

SettingsFn = Callable[..., Settings]

CONFIGS: dict[str, dict[str, Any]] = {
    "batch": {"timeout": "10ms"},
    "memory_limiter": {"check_interval": "10ms", "limit_mib": 1 << 20},
    "resource": {"attributes": [{"key": "deployment.environment", "action": "upsert", "value": "test"}]},
    "attributes": {"actions": [{"key": "tag", "action": "insert", "value": 1}]},
}
MUTATES = {"batch": False, "memory_limiter": False, "resource": True, "attributes": True}
PROTOCOLS = {Signal.TRACES: TracesConsumer, Signal.METRICS: MetricsConsumer, Signal.LOGS: LogsConsumer}


def _create(settings_fn: SettingsFn, name: str, signal: Signal, sink: object) -> Any:
    factory = components.lookup(Kind.PROCESSOR, name, f"processors.{name}")
    assert factory.type == name and factory.kind is Kind.PROCESSOR
    assert factory.signals == frozenset(Signal)
    assert factory.capabilities.mutates_data is MUTATES[name]
    config = decode(factory.config_class, CONFIGS[name], f"processors.{name}")
    return factory.create(settings_fn(name, pipeline=signal.value), config, signal, sink)


@pytest.mark.parametrize("signal", list(Signal))
@pytest.mark.parametrize("name", sorted(CONFIGS))
async def test_create_start_consume_shutdown(proc_settings: SettingsFn, name: str, signal: Signal) -> None:
    sink = SinkConsumer()
    proc = _create(proc_settings, name, signal, sink)
    for s, proto in PROTOCOLS.items():
        assert isinstance(proc, proto), s
    assert capabilities_of(proc).mutates_data is MUTATES[name]
    await proc.start(None)
    await getattr(proc, "consume_" + signal.value)(MAKERS[signal](7))
    await sink.wait_for(signal, 7)
    await proc.shutdown()
    await proc.shutdown()
    assert sink.count(signal) == 7


@pytest.mark.parametrize("name", sorted(CONFIGS))
async def test_shutdown_without_start(proc_settings: SettingsFn, name: str) -> None:
    proc = _create(proc_settings, name, Signal.LOGS, SinkConsumer())
    await proc.shutdown()
    await proc.shutdown()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_next_consumer_must_take_the_signal(proc_settings: SettingsFn, name: str) -> None:
    class TracesOnly:
        async def consume_traces(self, td: object) -> None:
            """Accepts traces only."""

    with pytest.raises(TypeError):
        _create(proc_settings, name, Signal.LOGS, TracesOnly())


async def test_a_chain_reports_whether_anything_in_it_mutates(proc_settings: SettingsFn) -> None:
    sink = SinkConsumer()
    attributes = _create(proc_settings, "attributes", Signal.TRACES, sink)
    batch = _create(proc_settings, "batch", Signal.TRACES, attributes)
    limiter = _create(proc_settings, "memory_limiter", Signal.TRACES, batch)
    assert capabilities_of(limiter).mutates_data and capabilities_of(batch).mutates_data
    assert not capabilities_of(_create(proc_settings, "batch", Signal.TRACES, SinkConsumer(mutates=False))).mutates_data
    assert capabilities_of(_create(proc_settings, "batch", Signal.TRACES, SinkConsumer(mutates=True))).mutates_data
