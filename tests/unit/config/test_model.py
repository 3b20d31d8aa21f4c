"""Config validation: every problem reported with its YAML path, collector names accepted."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from agent.component import ComponentID, Signal
from agent.config.loader import default_config_text, load
from agent.config.model import PipelineID, build
from agent.errors import ConfigErrors


def _build_errors(doc: str) -> list[str]:
    with pytest.raises(ConfigErrors) as e:
        build(yaml.safe_load(doc))
    return [str(x) for x in e.value.errors]


MINIMAL = """
receivers: {otlp: {protocols: {grpc: null}}}
exporters: {debug: {}}
service: {pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}
"""
#: A traces pipeline exporting to the ``forward`` connector (append pipelines that receive from it).
FORWARD_FROM_TRACES = """
receivers: {otlp: {protocols: {grpc: null}}}
exporters: {debug: {}}
connectors: {forward: {}}
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [forward]}
"""


def test_minimal_config() -> None:
    cfg = build(yaml.safe_load(MINIMAL))
    p = cfg.pipelines[PipelineID(Signal.TRACES)]
    assert p.receivers == (ComponentID("otlp"),)
    # a protocol key present as null is enabled with its defaults
    assert cfg.receivers[ComponentID("otlp")].config.protocols.grpc.endpoint == "127.0.0.1:4317"
    assert cfg.receivers[ComponentID("otlp")].config.protocols.http is None


def test_default_config_is_valid() -> None:
    assert "${env:OTEL_SIDECAR_DATA_DIR:-./data}" in default_config_text()
    cfg = build(load([], env={}))  # no --config: the embedded default, expanded
    assert {str(p) for p in cfg.pipelines} == {"traces", "metrics", "logs"}


def test_every_problem_is_reported_with_its_path() -> None:
    errors = _build_errors("""
receivers:
  otlp: {protocols: {grpc: {endpoint: "127.0.0.1:4317", max_recv_msg_size_mib: lots}}}
  kafka: {}
  nosuch: {}
processors:
  batch: {timeout: 5}
exporters:
  file: {pth: /tmp/x}
bogus_section: {}
service:
  pipelines:
    traces: {receivers: [otlp], processors: [batch, batch], exporters: [file, missing]}
    spans: {receivers: [otlp], exporters: [file]}
    logs: {receivers: [], exporters: [file]}
""")
    text = "\n".join(errors)
    assert "bogus_section: unknown top-level key" in text
    assert "receivers.otlp.protocols.grpc.max_recv_msg_size_mib: expected an integer" in text
    assert "receivers.kafka: receiver type 'kafka' is an OpenTelemetry Collector component not implemented by otel-sidecar" in text
    assert "receivers.nosuch: unknown receiver type 'nosuch'; valid types: otlp" in text
    assert "processors.batch.timeout: expected a duration with a unit" in text
    assert "exporters.file.pth: unknown key; valid keys:" in text
    assert "exporters.file.path: required" in text
    assert "service.pipelines.traces.processors: a processor may appear only once per pipeline" in text
    assert "service.pipelines.traces.exporters[1]: references exporter 'missing' which is not configured" in text
    assert "service.pipelines.spans: unknown signal 'spans'" in text
    assert "service.pipelines.logs.receivers: at least one receiver is required" in text


def test_ids_with_names_and_both_spellings() -> None:
    cfg = build(yaml.safe_load("""
receivers: {otlp/app: {protocols: {http: {}}}}
exporters: {debug/a: {verbosity: detailed}, debug/b: {}}
service:
  pipelines:
    logs/x: {receivers: [otlp/app], exporters: [debug/a, debug/b]}
"""))
    assert set(cfg.exporters) == {ComponentID("debug", "a"), ComponentID("debug", "b")}
    assert PipelineID(Signal.LOGS, "x") in cfg.pipelines


def test_invalid_ids() -> None:
    text = "\n".join(_build_errors("""
receivers: {"otlp/": {protocols: {grpc: null}}, "9otlp": {}}
exporters: {debug: {}}
service: {pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}
"""))
    assert "empty name after '/'" in text
    assert "invalid component type '9otlp'" in text


def test_at_least_one_protocol() -> None:
    text = "\n".join(_build_errors("""
receivers: {otlp: {protocols: {}}}
exporters: {debug: {}}
service: {pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}
"""))
    assert "receivers.otlp.protocols" in text


def test_service_extensions_must_be_configured() -> None:
    text = "\n".join(_build_errors(MINIMAL.replace("service: {", "service: {extensions: [health_check], ")))
    assert "service.extensions[0]: references extension 'health_check' which is not configured" in text


def test_connectors_must_be_used_on_both_sides_and_acyclic() -> None:
    text = "\n".join(_build_errors(FORWARD_FROM_TRACES))
    assert "connectors.forward: a connector must be used as an exporter in one pipeline and as a receiver in another" in text

    from agent.errors import ConfigError
    from agent.pipeline.graph import Graph
    from agent.telemetry.metrics import SelfMetrics

    cyclic = build(yaml.safe_load("""
receivers: {otlp: {protocols: {grpc: null}}}
exporters: {debug: {}}
connectors: {forward/a: {}, forward/b: {}}
service:
  pipelines:
    traces/1: {receivers: [otlp, forward/b], exporters: [forward/a]}
    traces/2: {receivers: [forward/a], exporters: [forward/b, debug]}
"""))
    with pytest.raises(ConfigError, match="cycle through connectors"):
        Graph(cyclic, SelfMetrics(process_metrics=False))


def test_signal_mismatch_for_connector() -> None:
    text = "\n".join(_build_errors(FORWARD_FROM_TRACES + "    logs: {receivers: [forward], exporters: [debug]}\n"))
    assert "connectors.forward: connector does not connect traces->logs" in text


def test_telemetry_readers_form() -> None:
    doc: dict[str, Any] = yaml.safe_load(MINIMAL)
    doc["service"]["telemetry"] = {
        "metrics": {"level": "detailed", "readers": [{"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": 9999}}}}]},
        "logs": {"level": "debug", "encoding": "console"},
    }
    cfg = build(doc)
    assert cfg.telemetry.metrics_endpoint == ("127.0.0.1", 9999)
    doc["service"]["telemetry"] = {"metrics": {"level": "none"}}
    assert build(doc).telemetry.metrics_endpoint is None
