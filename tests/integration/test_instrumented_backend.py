"""The example backend under ``opentelemetry-instrument`` with the sidecar distro, exporting to a collector double.

One subprocess run, many assertions: the distro and configurator are picked up through their
entry points, server spans carry route templates and request ids, SQLAlchemy produces database
client spans, logs arrive with trace ids, business/HTTP/DB metrics arrive with delta temporality,
stdout is JSON lines, and the registration password appears nowhere.

Export intervals are set far beyond the test's duration, so everything the collector double
receives was flushed when SIGTERM stopped the server: this also proves the SIGTERM flush.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.example_backend import BACKEND_DIR, ExampleBackend
from tests.otlp_collector_double import CollectorDouble, attributes

pytestmark = pytest.mark.integration

SENTINEL = "Sentinel-Pa55word-Never-Exported!"
ROUTES = {"/register", "/login", "/users/me", "/users/{user_id}/cached", "/users/posts-n-plus-one", "/slow"}
JSON_FIELDS = {
    "timestamp",
    "level",
    "logger",
    "message",
    "trace_id",
    "span_id",
    "request_id",
    "correlation_id",
    "user_id",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Start the collector double and the backend, drive traffic, stop the backend (flushing the SDK)."""
    from importlib.metadata import entry_points

    if "sidecar" not in {ep.name for ep in entry_points(group="opentelemetry_distro")}:
        pytest.fail(
            "the 'sidecar' opentelemetry_distro entry point is not installed: reinstall otel-sidecar (pip install -e .)"
        )
    workdir = tmp_path_factory.mktemp("backend")
    with CollectorDouble() as collector:
        backend = ExampleBackend(
            workdir,
            collector.endpoint,
            extra_env={
                "K8S_POD_NAME": "auth-api-7f9c-abcde",
                "K8S_NAMESPACE": "shop",
                "K8S_NODE_NAME": "node-1",
                # Nothing is exported before shutdown: the SIGTERM flush must deliver it all.
                "OTEL_BSP_SCHEDULE_DELAY": "120000",
                "OTEL_BLRP_SCHEDULE_DELAY": "120000",
                "OTEL_METRIC_EXPORT_INTERVAL": "120000",
            },
        )
        with backend, httpx.Client(base_url=backend.base_url, timeout=10.0) as client:
            registered = client.post(
                "/register", json={"email": "erin@example.com", "password": SENTINEL, "full_name": "Erin"}
            )
            assert registered.status_code == 201, registered.text
            user_id = registered.json()["id"]
            assert client.post("/login", json={"email": "erin@example.com", "password": "wrong"}).status_code == 401
            login = client.post(
                "/login",
                json={"email": "erin@example.com", "password": SENTINEL},
                headers={"X-Request-ID": "it-login-1", "X-Correlation-ID": "it-corr-1"},
            )
            assert login.status_code == 200
            assert login.headers["x-request-id"] == "it-login-1"
            assert login.headers["x-correlation-id"] == "it-corr-1"
            token = login.json()["access_token"]
            me = client.get("/users/me", headers={"Authorization": f"Bearer {token}", "X-Request-ID": "it-me-1"})
            assert me.status_code == 200
            for _ in range(2):
                assert client.get(f"/users/{user_id}/cached").status_code == 200
            assert client.get("/users/posts-n-plus-one").status_code == 200
            assert client.get("/slow").status_code == 200
            health = client.get("/healthz")
            assert health.status_code == 200 and len(health.headers["x-request-id"]) == 32
            traffic = subprocess.run(
                [sys.executable, "traffic.py", "--base-url", backend.base_url, "-n", "30", "-c", "3", "--seed", "1"],
                cwd=BACKEND_DIR,
                capture_output=True,
                text=True,
                timeout=60,
            )
            exported_before_stop = len(collector.raw)
        exit_status = backend.process.returncode if backend.process else None
        collector.wait_for(lambda: bool(collector.spans() and collector.log_records() and collector.metric_list()))
        yield {
            "collector": collector,
            "backend": backend,
            "user_id": user_id,
            "traffic": traffic,
            "exit_status": exit_status,
            "exported_before_stop": exported_before_stop,
        }


def server_spans(collector: CollectorDouble) -> list[Span]:
    return [s for s in collector.spans() if s.kind == Span.SPAN_KIND_SERVER]


def test_backend_exits_cleanly_and_logs_json(run: dict[str, Any]) -> None:
    backend: ExampleBackend = run["backend"]
    # uvicorn shuts down gracefully, then re-raises SIGTERM: dying of it is the normal exit.
    assert run["exit_status"] in (0, -signal.SIGTERM), backend.stderr()
    assert "Traceback" not in backend.stderr()
    assert "otel-sidecar: WARNING" not in backend.stderr()  # SQLAlchemy is within the instrumentor's range
    lines = [json.loads(line) for line in backend.stdout().splitlines() if line.strip()]
    assert lines and all(set(line) >= JSON_FIELDS for line in lines)
    problems = [line for line in lines if line["level"] in ("WARNING", "ERROR", "CRITICAL")]
    # Only the example's own warnings (failed logins): none from OpenTelemetry or the sidecar distro.
    assert {line["logger"] for line in problems} <= {"auth_api"}, problems
    loggers = {line["logger"] for line in lines}
    assert {"auth_api", "uvicorn.error", "uvicorn.access"} <= loggers  # uvicorn's logs are JSON too
    login_lines = [line for line in lines if line["request_id"] == "it-login-1"]
    assert login_lines and all(line["correlation_id"] == "it-corr-1" and line["trace_id"] for line in login_lines)


def test_traffic_generator_ran(run: dict[str, Any]) -> None:
    traffic = run["traffic"]
    assert traffic.returncode == 0, traffic.stderr
    assert "total 30 requests" in traffic.stdout
    assert traffic.stderr.strip().splitlines()[-1].startswith("requests 30/30 |")


def test_resource_identifies_the_service_and_pod(run: dict[str, Any]) -> None:
    resource, _ = next(iter(run["collector"].resource_spans()))
    assert resource["service.name"] == "auth-api"
    assert resource["k8s.pod.name"] == "auth-api-7f9c-abcde"
    assert resource["k8s.namespace.name"] == "shop"
    assert resource["k8s.node.name"] == "node-1"
    assert str(resource["service.instance.id"]).startswith("auth-api-7f9c-abcde-")
    assert resource["telemetry.distro.name"] == "otel-sidecar"
    assert "telemetry.auto.version" in resource


def test_server_spans_have_route_templates_and_request_ids(run: dict[str, Any]) -> None:
    spans = server_spans(run["collector"])
    routes = {attributes(s.attributes).get("http.route") for s in spans}
    assert routes >= ROUTES
    assert None not in routes
    assert not [s for s in spans if "healthz" in s.name]  # health checks are not traced
    [login] = [s for s in spans if attributes(s.attributes).get("request.id") == "it-login-1"]
    login_attrs = attributes(login.attributes)
    assert login_attrs["correlation.id"] == "it-corr-1"
    assert login_attrs["http.route"] == "/login"
    assert login_attrs["http.request.method"] == "POST"  # stable HTTP semantic conventions
    [me] = [s for s in spans if attributes(s.attributes).get("request.id") == "it-me-1"]
    assert attributes(me.attributes)["enduser.id"] == str(run["user_id"])


def test_database_client_spans(run: dict[str, Any]) -> None:
    collector: CollectorDouble = run["collector"]
    db_spans = [s for s in collector.spans() if s.kind == Span.SPAN_KIND_CLIENT]
    statements = [attributes(s.attributes) for s in db_spans]
    assert any(a.get("db.system") == "sqlite" and "SELECT" in str(a.get("db.statement")) for a in statements)
    [n_plus_one] = [
        s for s in server_spans(collector) if attributes(s.attributes).get("http.route") == "/users/posts-n-plus-one"
    ][:1]
    children = [s for s in db_spans if s.trace_id == n_plus_one.trace_id and str(s.name).startswith("SELECT")]
    assert len(children) >= 3  # the user list, then one query per user


def test_logs_arrive_with_trace_context_and_request_ids(run: dict[str, Any]) -> None:
    records = run["collector"].log_records()
    failed = [r for r in records if "Login failed" in str(r.body.string_value)]
    assert failed
    assert failed[0].body.string_value == "Login failed for [REDACTED_EMAIL]: wrong password"
    assert len(failed[0].trace_id) == 16 and any(failed[0].trace_id)
    assert len(failed[0].span_id) == 8 and any(failed[0].span_id)
    assert attributes(failed[0].attributes)["request.id"]
    login = [r for r in records if attributes(r.attributes).get("request.id") == "it-login-1"]
    assert login and all(attributes(r.attributes)["enduser.id"] == str(run["user_id"]) for r in login)
    [registration] = [r for r in records if r.body.string_value == "Registration request received"][:1]
    assert attributes(registration.attributes)["payload"]["password"] == "[REDACTED]"
    assert not [r for r in records if attributes(r.attributes).get("color_message")]


def test_metrics_arrive_with_delta_temporality(run: dict[str, Any]) -> None:
    collector: CollectorDouble = run["collector"]
    metrics = {}
    for metric in collector.metric_list():
        metrics.setdefault(metric.name, metric)
    for name in (
        "http.server.request.duration",
        "http.server.active_requests",
        "http.server.response.body.size",
        "auth.login.attempts",
        "auth.registrations",
        "cache.requests",
        "db.client.connection.count",
        "db.client.operation.duration",
    ):
        assert name in metrics, sorted(metrics)
    assert (
        metrics["auth.login.attempts"].sum.aggregation_temporality
        == AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    )
    assert (
        metrics["http.server.request.duration"].histogram.aggregation_temporality
        == AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    )
    routes = {
        attributes(p.attributes).get("http.route")
        for m in collector.metric_list()
        if m.name == "http.server.request.duration"
        for p in m.histogram.data_points
    }
    assert "/users/{user_id}/cached" in routes
    outcomes = {
        attributes(p.attributes)["auth.outcome"]
        for m in collector.metric_list()
        if m.name == "auth.login.attempts"
        for p in m.sum.data_points
    }
    assert outcomes == {"success", "failure"}


def test_sigterm_flushes_everything(run: dict[str, Any]) -> None:
    assert run["exported_before_stop"] == 0  # the export intervals never elapsed...
    collector: CollectorDouble = run["collector"]
    assert collector.traces and collector.logs and collector.metrics  # ...yet all three signals arrived


def test_password_never_leaves_the_process(run: dict[str, Any]) -> None:
    collector: CollectorDouble = run["collector"]
    backend: ExampleBackend = run["backend"]
    assert collector.raw
    needle = SENTINEL.encode()
    assert not [raw for raw in collector.raw if needle in raw]
    assert SENTINEL not in backend.stdout()
    assert SENTINEL not in backend.stderr()


def test_working_directory_is_the_backend(run: dict[str, Any]) -> None:
    """The command documented in deploy/example-backend/README.md is the one tested."""
    backend: ExampleBackend = run["backend"]
    assert backend.command[1:3] == ["uvicorn", "auth_api.main:app"]
    assert Path(BACKEND_DIR / "auth_api" / "main.py").exists()
