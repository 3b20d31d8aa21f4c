"""The sidecar configurator, run in a fresh interpreter (it sets process-wide SDK and logging state)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = r"""
import json, logging, sys
from opentelemetry import propagate, trace, _logs
from instrumentation.configurator import SidecarConfigurator
from instrumentation import set_user_id, request_context

SidecarConfigurator().configure(auto_instrumentation_version="test")
provider = trace.get_tracer_provider()
root = logging.getLogger()
with request_context("req-1", "corr-1"), trace.get_tracer("t").start_as_current_span("s"):
    set_user_id(7)
    logging.getLogger("app").info("login with password=%s", "Sentinel-Pa55word!")
logging.basicConfig(level=logging.DEBUG)  # an application's own logging set-up
processors = _logs.get_logger_provider()._multi_log_record_processor._log_record_processors
print(json.dumps({
    "resource": dict(provider.resource.attributes),
    "handlers": [h.get_name() for h in root.handlers],
    "level": logging.getLevelName(root.level),
    "propagator": type(propagate.get_global_textmap()).__name__,
    "log_processors": [type(p).__name__ for p in processors],
}), file=sys.stderr)
"""


def run_configurator(env: dict[str, str]) -> tuple[dict[str, object], list[dict[str, object]]]:
    base = {
        "PATH": "/usr/bin:/bin",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    state = json.loads(proc.stderr.strip().splitlines()[-1])
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return state, lines


def test_configurator_sets_resource_logging_and_propagation() -> None:
    state, lines = run_configurator(
        {
            "OTEL_SERVICE_NAME": "auth-api",
            "K8S_POD_NAME": "auth-api-5c9-abc",
            "K8S_POD_UID": "uid-1",
            "K8S_NAMESPACE": "shop",
            "K8S_NODE_NAME": "node-7",
            "SERVICE_VERSION": "3.1.0",
            "DEPLOYMENT_ENVIRONMENT": "prod",
        }
    )
    resource = state["resource"]
    assert isinstance(resource, dict)
    assert resource["service.name"] == "auth-api"
    assert resource["service.version"] == "3.1.0"
    assert resource["deployment.environment.name"] == "prod"
    assert resource["k8s.pod.name"] == "auth-api-5c9-abc"
    assert resource["k8s.pod.uid"] == "uid-1"
    assert resource["k8s.namespace.name"] == "shop"
    assert resource["k8s.node.name"] == "node-7"
    assert str(resource["service.instance.id"]).startswith("auth-api-5c9-abc-")
    assert resource["telemetry.auto.version"] == "test"
    assert resource["telemetry.distro.name"] == "otel-sidecar"
    assert sorted(state["handlers"]) == ["otel-sidecar-json", "otel-sidecar-otlp"]  # type: ignore[arg-type]
    assert state["level"] == "DEBUG"  # basicConfig(level=...) still applies
    assert state["propagator"] == "RequestContextPropagator"
    assert state["log_processors"][0] == "SidecarLogRecordProcessor"
    [line] = lines
    assert line["message"] == "login with password=[REDACTED]"
    assert (line["request_id"], line["correlation_id"], line["user_id"]) == ("req-1", "corr-1", "7")
    assert line["trace_id"] and line["span_id"]


def test_logging_opt_outs() -> None:
    state, lines = run_configurator(
        {"OTEL_SIDECAR_JSON_LOGS": "false", "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "false"}
    )
    assert "otel-sidecar-json" not in state["handlers"]  # type: ignore[operator]
    assert "otel-sidecar-otlp" not in state["handlers"]  # type: ignore[operator]
    assert lines == []


SIGTERM_SCRIPT = r"""
import os, signal, sys, time
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor
from instrumentation.configurator import SidecarConfigurator

class Flushed(SpanProcessor):
    def shutdown(self):
        print("FLUSHED", flush=True)

SidecarConfigurator().configure()
trace.get_tracer_provider().add_span_processor(Flushed())
print("READY", flush=True)
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(10)
print("NOT KILLED", flush=True)
"""


def run_sigterm_script(extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SIDECAR_JSON_LOGS": "false",
        **extra_env,
    }
    return subprocess.run(
        [sys.executable, "-c", SIGTERM_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_sigterm_flushes_the_sdk_then_still_terminates() -> None:
    proc = run_sigterm_script({})
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    assert proc.stdout.split() == ["READY", "FLUSHED"]


def test_sigterm_flush_can_be_turned_off() -> None:
    proc = run_sigterm_script({"OTEL_SIDECAR_FLUSH_ON_SIGTERM": "false"})
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    assert proc.stdout.split() == ["READY"]


def test_selected_without_any_selection_variable() -> None:
    """With no other distro installed, opentelemetry-instrument's loader picks the sidecar pair unaided."""
    script = (
        "import json, os, sys\n"
        "from opentelemetry import trace\n"
        "from opentelemetry.instrumentation.auto_instrumentation import _load\n"
        "distro = _load._load_distro()\n"
        "distro.configure()\n"
        "_load._load_configurators()\n"
        "print(json.dumps([type(distro).__name__, os.environ['OTEL_PYTHON_CONFIGURATOR'],\n"
        "    trace.get_tracer_provider().resource.attributes.get('telemetry.distro.name')]))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SIDECAR_JSON_LOGS": "false",
    }
    if {ep.name for ep in entry_points(group="opentelemetry_distro")} != {"sidecar"}:
        env["OTEL_PYTHON_DISTRO"] = "sidecar"  # another distro is installed: choose ours, the rest is unaided
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == ["SidecarDistro", "sidecar", "otel-sidecar"]
