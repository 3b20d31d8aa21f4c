"""The resource processor edits the resource attributes of every resource, on every signal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agent.component import Settings, Signal
from agent.config.decode import decode
from agent.pdata import PData
from agent.processors.resource import FACTORY, Config, ResourceProcessor
from agent.testing import SinkConsumer

from .helpers import MAKERS, attrs_of, items_of

SettingsFn = Callable[..., Settings]


def _wire_multi(signal: Signal) -> PData:
    parts = [MAKERS[signal](2, batch_index=b, service=f"svc-{b}") for b in range(3)]
    merged = type(parts[0]).merge(parts)
    return type(merged).parse(merged.to_bytes())


RESOURCE_ACTIONS: list[dict[str, Any]] = [
    {"key": "deployment.environment", "action": "upsert", "value": "staging"},
    {"key": "service.namespace", "action": "insert", "from_attribute": "service.name"},
    {"key": "service.name", "action": "extract", "pattern": r"^(?P<svc_kind>[a-z]+)-(?P<svc_num>\d+)$"},
    {"key": "svc_num", "action": "convert", "converted_type": "int"},
    {"key": "service.name", "action": "hash"},
    {"action": "delete", "pattern": "^svc_kind$"},
]


@pytest.mark.parametrize("signal", list(Signal))
async def test_every_resource_is_processed(proc_settings: SettingsFn, signal: Signal) -> None:
    data = _wire_multi(signal)
    before_items = [attrs_of(i) for i in items_of(data)]
    config = decode(Config, {"attributes": RESOURCE_ACTIONS}, "processors.resource")
    sink = SinkConsumer()
    proc = FACTORY.create(proc_settings("resource/env", pipeline=signal.value), config, signal, sink)
    assert isinstance(proc, ResourceProcessor) and proc.capabilities().mutates_data
    await proc.start(None)  # type: ignore[arg-type]
    await getattr(proc, "consume_" + signal.value)(data)
    await proc.shutdown()
    await proc.shutdown()
    (out,) = sink.received[signal]
    assert not out.has_original_bytes
    resources = [attrs_of(r.resource) for r in out.resources()]
    assert len(resources) == 3
    for b, attrs in enumerate(resources):
        assert attrs["deployment.environment"] == "staging"
        assert attrs["service.namespace"] == f"svc-{b}"
        assert attrs["svc_num"] == b
        assert "svc_kind" not in attrs
        assert len(attrs["service.name"]) == 64
    assert [attrs_of(i) for i in items_of(out)] == before_items  # items untouched
    again = type(out).parse(out.to_bytes())
    assert again.proto == out.proto
