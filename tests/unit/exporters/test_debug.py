"""The debug exporter: config, the three verbosities, sampling, output filters, lifecycle."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.component import Capabilities, Settings, Signal
from agent.components import lookup
from agent.config.decode import decode
from agent.errors import ConfigErrors
from agent.exporters.debug import FACTORY, Config, DebugExporter
from agent.exporters.debug.exporter import Sampler
from agent.exporters.debug.text import detailed, normal
from agent.pdata import Metrics, proto
from agent.telemetry.metrics import SelfMetrics
from agent.testing import make_logs, make_metrics, make_traces
from tests.unit.exporters.conftest import NoHost, metric

MakeSettings = Callable[..., Settings]


def exporter(make_settings: MakeSettings, **cfg: object) -> DebugExporter:
    config = decode(Config, cfg, "exporters.debug")
    return FACTORY.create(make_settings("debug"), config, frozenset(Signal))  # type: ignore[no-any-return]


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "test.debug"]


def all_metric_types() -> Metrics:
    req = proto.ExportMetricsServiceRequest()
    sm = req.resource_metrics.add().scope_metrics.add()
    sm.scope.name = "lib"
    sm.scope.version = "1.0"
    g = sm.metrics.add(name="gauge-double", unit="1")
    p = g.gauge.data_points.add(as_double=1.23, time_unix_nano=1_581_452_773_000_000_789)
    p.attributes.add(key="label", value=proto.AnyValue(string_value="v"))
    h = sm.metrics.add(name="histogram")
    h.histogram.aggregation_temporality = proto.AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    hp = h.histogram.data_points.add(count=3, sum=15.0, min=1.0, max=10.0)
    hp.explicit_bounds.extend([1.0, 5.0])
    hp.bucket_counts.extend([1, 1, 1])
    hp.exemplars.add(as_double=10.0, trace_id=bytes(range(16)), span_id=bytes(range(8)))
    e = sm.metrics.add(name="exp-histogram")
    ep = e.exponential_histogram.data_points.add(count=4, scale=1, zero_count=1)
    ep.positive.offset = 0
    ep.positive.bucket_counts.extend([1, 1])
    ep.negative.bucket_counts.extend([1])
    s = sm.metrics.add(name="summary")
    sp = s.summary.data_points.add(count=2, sum=3.0)
    sp.quantile_values.add(quantile=0.5, value=1.5)
    return Metrics(req)


def test_defaults_and_validation() -> None:
    cfg = decode(Config, None)
    assert (cfg.verbosity, cfg.sampling_initial, cfg.sampling_thereafter) == ("basic", 2, 1)
    assert cfg.sending_queue is None and cfg.retry_on_failure is None and cfg.timeout == 0
    assert decode(Config, {"verbosity": "Detailed"}).verbosity == "detailed"
    assert decode(Config, {"sending_queue": None}).sending_queue is not None  # present: queue on
    with pytest.raises(ConfigErrors, match="verbosity: invalid value 'none'"):
        decode(Config, {"verbosity": "none"}, "exporters.debug")
    with pytest.raises(ConfigErrors, match="cannot specify both include and exclude attributes for record"):
        decode(Config, {"output": {"record": {"attributes": {"include": ["a"], "exclude": ["b"]}}}})
    assert lookup(FACTORY.kind, "debug") is FACTORY


async def test_basic_logs_one_count_line_per_request(make_settings: MakeSettings, telemetry: SelfMetrics,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    exp = exporter(make_settings)
    assert exp.capabilities() == Capabilities(mutates_data=False)
    await exp.start(NoHost())
    with caplog.at_level(logging.INFO):
        await exp.consume_traces(make_traces(3))
        await exp.consume_metrics(make_metrics(4))
        await exp.consume_logs(make_logs(5))
    assert messages(caplog) == [
        "Traces resource spans: 1, spans: 3",
        "Metrics resource metrics: 1, metrics: 1, data points: 4",
        "Logs resource logs: 1, log records: 5",
    ]
    assert caplog.records[0].spans == 3  # type: ignore[attr-defined]
    await exp.shutdown()
    await exp.shutdown()
    assert metric(telemetry, "otelcol_exporter_sent_spans_total", exporter="debug") == 3


async def test_basic_skips_rendering_when_info_is_disabled(make_settings: MakeSettings,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    exp = exporter(make_settings, verbosity="detailed")
    with caplog.at_level(logging.WARNING):
        await exp.consume_traces(make_traces(2))
    assert messages(caplog) == []
    await exp.shutdown()


async def test_normal_adds_one_line_per_item(make_settings: MakeSettings, caplog: pytest.LogCaptureFixture) -> None:
    exp = exporter(make_settings, verbosity="normal")
    td = make_traces(2)
    with caplog.at_level(logging.INFO):
        await exp.consume_traces(td)
        await exp.consume_logs(make_logs(1))
        await exp.consume_metrics(make_metrics(2))
    msgs = messages(caplog)
    assert len(msgs) == 6
    span = td.proto.resource_spans[0].scope_spans[0].spans[1]
    lines = msgs[1].splitlines()
    assert lines[0] == "ResourceTraces #0 service.name=test-service"
    assert lines[1] == "ScopeTraces #0 agent.testing"
    assert lines[3].startswith(f"span-1 {span.trace_id.hex()} {span.span_id.hex()} batch_index=0 item_index=1")
    assert msgs[3].splitlines()[2] == "log message 0-0 batch_index=0 item_index=0"
    assert msgs[5].splitlines()[2:] == ["test.requests{batch_index=0,item_index=0} 1",
                                        "test.requests{batch_index=0,item_index=1} 2"]
    await exp.shutdown()


async def test_detailed_dumps_every_field(make_settings: MakeSettings, caplog: pytest.LogCaptureFixture) -> None:
    exp = exporter(make_settings, verbosity="detailed")
    with caplog.at_level(logging.INFO):
        await exp.consume_traces(make_traces(1))
        await exp.consume_logs(make_logs(1))
    traces, logs = messages(caplog)[1], messages(caplog)[3]
    for expected in ("ResourceSpans #0", "Resource attributes:", "     -> service.name: Str(test-service)",
                     "ScopeSpans #0", "InstrumentationScope agent.testing ", "Span #0",
                     "    Kind           : Server", "    Start time     : 2023-11-14 22:13:20 +0000 UTC",
                     "    End time       : 2023-11-14 22:13:20.0005 +0000 UTC",
                     "     -> batch_index: Int(0)", "     -> attr.0: Str(value-0)"):
        assert expected in traces.splitlines(), expected
    for expected in ("LogRecord #0", "SeverityNumber: Info(9)", "SeverityText: INFO",
                     "Body: Str(log message 0-0)", "     -> item_index: Int(0)"):
        assert expected in logs.splitlines(), expected
    await exp.shutdown()


def test_metric_renderings_cover_every_type() -> None:
    md = all_metric_types()
    dump = detailed(md).splitlines()
    for expected in ("     -> DataType: Gauge", "Value: 1.230000", "     -> label: Str(v)",
                     "Timestamp: 2020-02-11 20:26:13.000000789 +0000 UTC",
                     "     -> DataType: Histogram", "     -> AggregationTemporality: Delta", "Count: 3",
                     "Sum: 15.000000", "Min: 1.000000", "ExplicitBounds #1: 5.000000", "Buckets #2, Count: 1",
                     "Exemplar #0", "     -> DataType: ExponentialHistogram", "Bucket [0, 0], Count: 1",
                     "Bucket (1.000000, 1.414214], Count: 1", "Bucket [-1.414214, -1.000000), Count: 1",
                     "     -> DataType: Summary", "QuantileValue #0: Quantile 0.500000, Value 1.500000"):
        assert expected in dump, expected
    lines = normal(md).splitlines()
    assert lines[1] == "ScopeMetrics #0 lib@1.0"
    assert "gauge-double{label=v} 1.23" in lines
    assert "histogram{} count=3 sum=15 min=1 max=10 le1=1 le5=1 1" in lines
    assert "summary{} count=2 sum=3.000000 q0.5=1.5" in lines


def test_output_filters() -> None:
    cfg = decode(Config, {"output": {"resource": {"enabled": False},
                                     "record": {"attributes": {"include": ["item_index"]}}}})
    dump = detailed(make_traces(1), cfg.output)
    assert "Resource attributes:" not in dump and "item_index: Int(0)" in dump and "batch_index" not in dump
    assert "ResourceTraces" not in normal(make_traces(1), cfg.output)


def test_sampler_per_key_per_second() -> None:
    now = [0.0]
    s = Sampler(2, 3, clock=lambda: now[0])
    assert [s.allow("t") for _ in range(8)] == [True, True, False, False, True, False, False, True]
    assert s.allow("m")  # another key has its own count
    now[0] = 1.0
    assert s.allow("t") and s.allow("t") and not s.allow("t")
    never = Sampler(1, 0, clock=lambda: 0.0)
    assert [never.allow("x") for _ in range(3)] == [True, False, False]


async def test_sampling_applies_to_requests(make_settings: MakeSettings, caplog: pytest.LogCaptureFixture) -> None:
    exp = exporter(make_settings, sampling_initial=2, sampling_thereafter=0)
    exp._sampler = Sampler(2, 0, clock=lambda: 0.0)
    with caplog.at_level(logging.INFO):
        for _ in range(5):
            await exp.consume_traces(make_traces(1))
    assert len(messages(caplog)) == 2
    await exp.shutdown()


async def test_private_output_to_file(make_settings: MakeSettings, tmp_path: Path,
                                      caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "debug.txt"
    exp = exporter(make_settings, use_internal_logger=False, output_paths=[str(out)], verbosity="normal")
    await exp.start(NoHost())
    with caplog.at_level(logging.INFO):
        await exp.consume_logs(make_logs(2))
    await exp.shutdown()
    assert messages(caplog) == []  # not through the sidecar's logger
    text = out.read_text().splitlines()
    assert text[0] == "Logs resource logs: 1, log records: 2"
    assert "log message 0-1 batch_index=0 item_index=1" in text


async def test_queue_can_be_enabled(make_settings: MakeSettings, telemetry: SelfMetrics) -> None:
    exp = exporter(make_settings, sending_queue={"num_consumers": 1})
    assert exp.helper.queued
    await exp.start(NoHost())
    await exp.consume_traces(make_traces(2))
    await exp.shutdown()
    assert metric(telemetry, "otelcol_exporter_sent_spans_total", exporter="debug") == 2
