"""The attributes processor on each signal: every item touched, bytes dropped, re-serializes,
include/exclude matching with strict and regexp."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agent.component import Settings, Signal
from agent.config.decode import decode
from agent.errors import ConfigErrors
from agent.pdata import Logs, Metrics, PData, Traces, proto
from agent.processors.attributes import FACTORY, AttributesProcessor, Config
from agent.testing import SinkConsumer, make_logs, make_metrics, make_traces

from .helpers import MAKERS, attrs_of, items_of

SettingsFn = Callable[..., Settings]


def _processor(settings: Settings, signal: Signal, cfg: dict[str, Any], sink: object) -> AttributesProcessor:
    config = decode(Config, cfg, "processors.attributes")
    proc = FACTORY.create(settings, config, signal, sink)
    assert isinstance(proc, AttributesProcessor)
    return proc


async def _process(settings: Settings, data: PData, cfg: dict[str, Any]) -> PData:
    sink = SinkConsumer()
    proc = _processor(settings, data.signal, cfg, sink)
    await proc.start(None)  # type: ignore[arg-type]
    await getattr(proc, "consume_" + data.signal.value)(data)
    await proc.shutdown()
    (out,) = sink.received[data.signal]
    return out


def _wire(data: PData) -> PData:
    """Data as a receiver hands it over: parsed from bytes, bytes kept."""
    return type(data).parse(data.to_bytes())


def _all_metric_types(points: int = 2) -> Metrics:
    req = proto.ExportMetricsServiceRequest()
    sm = req.resource_metrics.add().scope_metrics.add()
    for kind in proto.METRIC_DATA_FIELDS:
        m = sm.metrics.add()
        m.name = f"m.{kind}"
        container = getattr(m, kind)
        for i in range(points):
            p = container.data_points.add()
            kv = p.attributes.add()
            kv.key = "item_index"
            kv.value.int_value = i
    return Metrics(req)


ACTIONS = [
    {"key": "env", "action": "insert", "value": "prod"},
    {"key": "item_index", "action": "convert", "converted_type": "string"},
    {"key": "copy", "action": "upsert", "from_attribute": "item_index"},
    {"key": "batch_index", "action": "delete"},
    {"key": "copy", "action": "hash"},
]


@pytest.mark.parametrize("signal", list(Signal))
async def test_actions_apply_to_every_item_and_drop_original_bytes(proc_settings: SettingsFn,
                                                                   signal: Signal) -> None:
    data = _wire(MAKERS[signal](5))
    assert data.has_original_bytes
    out = await _process(proc_settings("attributes", pipeline=signal.value), data, {"actions": ACTIONS})
    assert out is data
    assert not out.has_original_bytes
    items = items_of(out)
    assert len(items) == 5
    for i, item in enumerate(items):
        a = attrs_of(item)
        assert a["env"] == "prod" and a["item_index"] == str(i) and "batch_index" not in a
        assert len(a["copy"]) == 64
    again = type(out).parse(out.to_bytes())
    assert again.proto == out.proto and again.item_count == 5


async def test_every_metric_type_has_its_points_processed(proc_settings: SettingsFn) -> None:
    out = await _process(proc_settings("attributes", pipeline="metrics"), _all_metric_types(),
                         {"actions": [{"key": "env", "action": "upsert", "value": "dev"}]})
    points = items_of(out)
    assert len(points) == 10
    assert all(attrs_of(p)["env"] == "dev" for p in points)


def _multi_traces() -> Traces:
    a = make_traces(3, batch_index=0, service="checkout")
    b = make_traces(3, batch_index=1, service="cart")
    merged = Traces.merge([a, b])
    data = Traces.parse(merged.to_bytes())
    req = data.mutable()
    req.resource_spans[1].scope_spans[0].scope.name = "io.opentelemetry.sqlalchemy"
    req.resource_spans[1].scope_spans[0].scope.version = "0.48b0"
    req.resource_spans[0].scope_spans[0].spans[1].kind = proto.Span.SPAN_KIND_CLIENT
    return data


def _tagged(out: PData) -> list[tuple[int, int]]:
    return sorted((attrs_of(i)["batch_index"], attrs_of(i)["item_index"]) for i in items_of(out)
                  if "tag" in attrs_of(i))


TAG = [{"key": "tag", "action": "insert", "value": True}]


@pytest.mark.parametrize(("match", "expected"), [
    ({"include": {"match_type": "strict", "services": ["cart"]}}, [(1, 0), (1, 1), (1, 2)]),
    ({"exclude": {"match_type": "strict", "services": ["cart"]}}, [(0, 0), (0, 1), (0, 2)]),
    ({"include": {"match_type": "regexp", "services": ["^ch"]}}, [(0, 0), (0, 1), (0, 2)]),
    ({"include": {"match_type": "strict", "span_names": ["span-1", "span-2"]}}, [(0, 1), (0, 2), (1, 1), (1, 2)]),
    ({"include": {"match_type": "regexp", "span_names": ["-0$"]},
      "exclude": {"match_type": "strict", "services": ["checkout"]}}, [(1, 0)]),
    ({"include": {"match_type": "strict", "span_kinds": ["SPAN_KIND_CLIENT"]}}, [(0, 1)]),
    ({"include": {"match_type": "regexp", "span_kinds": ["SERVER"]}}, [(0, 0), (0, 2), (1, 0), (1, 1), (1, 2)]),
    ({"include": {"match_type": "strict", "attributes": [{"key": "item_index", "value": 2}]}}, [(0, 2), (1, 2)]),
    ({"include": {"match_type": "strict", "attributes": [{"key": "item_index", "value": "2"}]}}, []),
    ({"include": {"match_type": "regexp", "attributes": [{"key": "item_index", "value": "^[01]$"}]}},
     [(0, 0), (0, 1), (1, 0), (1, 1)]),
    ({"include": {"match_type": "strict", "attributes": [{"key": "attr.0"}, {"key": "batch_index", "value": 1}]}},
     [(1, 0), (1, 1), (1, 2)]),
    ({"include": {"match_type": "strict", "attributes": [{"key": "nope"}]}}, []),
    ({"include": {"match_type": "strict", "resources": [{"key": "service.name", "value": "cart"}]}},
     [(1, 0), (1, 1), (1, 2)]),
    ({"include": {"match_type": "strict", "libraries": [{"name": "io.opentelemetry.sqlalchemy"}]}},
     [(1, 0), (1, 1), (1, 2)]),
    ({"include": {"match_type": "strict", "libraries": [{"name": "io.opentelemetry.sqlalchemy", "version": "1"}]}},
     []),
    ({"include": {"match_type": "regexp", "libraries": [{"name": "sqlalchemy", "version": "^0\\."}]}},
     [(1, 0), (1, 1), (1, 2)]),
    ({"exclude": {"match_type": "strict", "libraries": [{"name": "agent.testing", "version": ""}]},
      "include": {"match_type": "strict", "span_names": ["span-0"]}}, [(1, 0)]),
    ({"include": {"match_type": "regexp", "regexp": {"cacheenabled": True, "cachemaxnumentries": 1},
                  "span_names": ["span-[02]"]}}, [(0, 0), (0, 2), (1, 0), (1, 2)]),
])
async def test_include_exclude_on_spans(proc_settings: SettingsFn, match: dict[str, Any],
                                        expected: list[tuple[int, int]]) -> None:
    out = await _process(proc_settings("attributes"), _multi_traces(), {"actions": TAG, **match})
    assert _tagged(out) == expected


def _multi_logs() -> Logs:
    data = Logs.parse(Logs.merge([make_logs(3, batch_index=0), make_logs(3, batch_index=1, service="b")]).to_bytes())
    recs = data.mutable().resource_logs[0].scope_logs[0].log_records
    recs[0].severity_number, recs[0].severity_text = 17, "ERROR"
    recs[1].severity_number, recs[1].severity_text = 0, ""
    recs[2].body.int_value = 12
    return data


@pytest.mark.parametrize(("match", "expected"), [
    ({"include": {"match_type": "strict", "log_bodies": ["log message 1-2"]}}, [(1, 2)]),
    ({"include": {"match_type": "regexp", "log_bodies": ["^log message 0-"]}}, [(0, 0), (0, 1)]),
    ({"include": {"match_type": "strict", "log_bodies": ["12"]}}, [(0, 2)]),
    ({"include": {"match_type": "strict", "log_severity_texts": ["ERROR"]}}, [(0, 0)]),
    ({"include": {"match_type": "strict", "log_severity_number": {"min": "WARN"}}}, [(0, 0)]),
    ({"include": {"match_type": "strict", "log_severity_number": {"min": 9, "match_undefined": True}}},
     [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]),
    ({"exclude": {"match_type": "strict", "log_severity_number": {"min": "info2"}}},
     [(0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]),
    ({"include": {"match_type": "strict", "attributes": [{"key": "batch_index", "value": 1}]}},
     [(1, 0), (1, 1), (1, 2)]),
    ({"include": {"match_type": "regexp", "resources": [{"key": "service.name", "value": "^b$"}]}},
     [(1, 0), (1, 1), (1, 2)]),
])
async def test_include_exclude_on_logs(proc_settings: SettingsFn, match: dict[str, Any],
                                       expected: list[tuple[int, int]]) -> None:
    out = await _process(proc_settings("attributes", pipeline="logs"), _multi_logs(), {"actions": TAG, **match})
    assert _tagged(out) == expected


@pytest.mark.parametrize(("match", "tagged_metrics"), [
    ({"include": {"match_type": "strict", "metric_names": ["test.requests"]}}, {"test.requests"}),
    ({"include": {"match_type": "regexp", "metric_names": ["^other"]}}, {"other.size"}),
    ({"exclude": {"match_type": "strict", "metric_names": ["test.requests"]}}, {"other.size"}),
    ({"include": {"match_type": "strict", "resources": [{"key": "service.name", "value": "nope"}]}}, set()),
])
async def test_include_exclude_on_metrics(proc_settings: SettingsFn, match: dict[str, Any],
                                          tagged_metrics: set[str]) -> None:
    data = make_metrics(2)
    sm = data.mutable().resource_metrics[0].scope_metrics[0]
    other = sm.metrics.add()
    other.CopyFrom(sm.metrics[0])
    other.name = "other.size"
    out = await _process(proc_settings("attributes", pipeline="metrics"), data, {"actions": TAG, **match})
    seen = set()
    for m in out.proto.resource_metrics[0].scope_metrics[0].metrics:
        flags = {any(kv.key == "tag" for kv in p.attributes) for p in m.sum.data_points}
        assert len(flags) == 1  # all points of a metric or none
        if flags == {True}:
            seen.add(m.name)
    assert seen == tagged_metrics


@pytest.mark.parametrize(("signal", "match", "path"), [
    (Signal.TRACES, {"include": {"match_type": "strict", "log_bodies": ["x"]}},
     "processors.attributes.include.log_bodies"),
    (Signal.LOGS, {"exclude": {"match_type": "strict", "services": ["x"]}}, "processors.attributes.exclude.services"),
    (Signal.METRICS, {"include": {"match_type": "strict", "attributes": [{"key": "x"}]}},
     "processors.attributes.include.attributes"),
    (Signal.METRICS, {"include": {"match_type": "strict", "span_names": ["x"]}},
     "processors.attributes.include.span_names"),
])
def test_properties_that_do_not_apply_to_the_signal_fail_creation(
        proc_settings: SettingsFn, signal: Signal, match: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigErrors) as info:
        _processor(proc_settings("attributes", pipeline=signal.value), signal, {"actions": TAG, **match},
                   SinkConsumer())
    assert info.value.errors[0].path == path
    assert f"not valid for {signal.value}" in str(info.value)


async def test_processor_declares_it_mutates(proc_settings: SettingsFn) -> None:
    proc = _processor(proc_settings("attributes"), Signal.TRACES, {"actions": TAG}, SinkConsumer())
    assert proc.capabilities().mutates_data
    assert FACTORY.capabilities.mutates_data


async def test_empty_request_is_forwarded_untouched(proc_settings: SettingsFn) -> None:
    data = _wire(make_traces(0))
    out = await _process(proc_settings("attributes"), data, {"actions": TAG})
    assert out.item_count == 0
