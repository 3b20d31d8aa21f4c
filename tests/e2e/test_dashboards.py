"""End to end: every PromQL expression of the Grafana dashboards and of the alert rules parses and
returns data from a real Prometheus scraping the example backend through otel-sidecar.

The stack, all on loopback:

* otel-sidecar runs as a subprocess with the deployments' own config
  (collector-config/examples/stack.yaml; addresses through its environment variables): traces
  over OTLP to a Jaeger stand-in (tests/otlp_collector_double.py, as Jaeger v2 ingests OTLP),
  logs to the Loki push double (tests/loki_double.py), metrics on its ``prometheus`` exporter.
* The example backend runs under ``opentelemetry-instrument`` (tests/example_backend.py) with
  the system-metrics instrumentation's process.* metrics, and gets a bounded, seeded run of
  deploy/example-backend/traffic.py.
* A real Prometheus loads deploy/prometheus/rules/*.yml and scrapes the sidecar's two endpoints
  with the scrape jobs of deploy/prometheus/prometheus.yml (job names, honor_labels), every
  second, with exemplar storage on.

Checked: Prometheus loads every rule and evaluates it without error; every dashboard query
(Grafana variables replaced by concrete values, tests/ops/queries.py) and every alert expression
is accepted by the query API; every dashboard query and every alert's *signals* (the series an
alert compares with its threshold; a quiet alert returns nothing) return data. The exemplars of
the latency histogram carry trace ids the Jaeger stand-in received, and the Loki double holds
streams matching the dashboard's LogQL selector with the trace_id structured metadata that
Grafana's derived field links to Jaeger. LogQL syntax is tests/ops/test_grafana.py's job.

Allowlist (:data:`SIGNAL_SUBSTITUTIONS`): the one signal that needs more history than a test
run has, with the substitution used instead and the reason.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests import prom
from tests.e2e.harness import LoopThread, wait_until
from tests.example_backend import BACKEND_DIR, ROOT, ExampleBackend
from tests.loki_double import LokiDouble
from tests.ops.queries import (
    DASHBOARDS,
    RULE_FILES,
    Query,
    alert_rules,
    alert_signals,
    dashboard_queries,
    label_values_query,
    stream_matchers,
    substitute,
)
from tests.otlp_collector_double import CollectorDouble
from tests.ports import free_port
from tests.sidecar_process import SidecarProcess

pytestmark = pytest.mark.e2e

if not prom.available():  # pragma: no cover - tests/run.sh installs it
    pytest.skip(f"{prom.PROMETHEUS} is not installed (Debian package 'prometheus')", allow_module_level=True)


STACK_CONFIG = ROOT / "collector-config" / "examples" / "stack.yaml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
SERVICE = "auth-api"
TRAFFIC_REQUESTS = 150
DATA_TIMEOUT = 45.0

#: Alert signals that need more history than a one-minute test run: alert -> (text, replacement, reason).
SIGNAL_SUBSTITUTIONS: dict[str, tuple[str, str, str]] = {
    "RegistrationSpike": (
        "offset 1h", "offset 10s",
        "the baseline is the registration rate of an hour earlier; the test's Prometheus holds about a minute"),
}


class _Sidecar(SidecarProcess):
    """SidecarProcess with extra environment variables (the config's ``${env:...}`` addresses)."""

    def __init__(self, workdir: Path, config: str, health_url: str, env: dict[str, str]) -> None:
        super().__init__(workdir, config, health_url)
        self.extra_env = env

    @property
    def command(self) -> list[str]:
        return ["/usr/bin/env", *(f"{k}={v}" for k, v in self.extra_env.items()), *super().command]


def _start_prometheus(tmp: Path, port: int, scrape: list[dict[str, Any]]) -> prom.PromServer:
    """tests/prom.py's server with this test's config: the deployed rule files, exemplar storage."""
    return prom.start(tmp, "prometheus", port, scrape, flags=["--enable-feature=exemplar-storage"],
                      extra_config={"rule_files": [str(p) for p in RULE_FILES]})


def _scrape_jobs(ports: dict[str, int]) -> list[dict[str, Any]]:
    """The otel-sidecar jobs of deploy/prometheus/prometheus.yml, pointed at this test's sidecar."""
    deployed = {job["job_name"]: job for job in yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]}
    jobs = []
    for name, port in (("otel-sidecar", ports["prom"]), ("otel-sidecar-self", ports["self"])):
        job = {k: v for k, v in deployed[name].items() if k != "static_configs"}
        labels = deployed[name]["static_configs"][0].get("labels", {})
        job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"], "labels": labels}]
        jobs.append(job)
    return jobs


def _api(server: prom.PromServer, path: str, **params: str) -> dict[str, Any]:
    body = httpx.get(f"{server.url}/api/v1/{path}", params=params, timeout=10).json()
    assert isinstance(body, dict)
    return body


def _query(server: prom.PromServer, expr: str) -> tuple[str, list[Any], str]:
    """(status, result, error) of an instant query now."""
    body = _api(server, "query", query=expr)
    return body["status"], body.get("data", {}).get("result", []), body.get("error", "")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("dashboards")
    ports = {name: free_port() for name in ("grpc", "http", "prom", "self", "health", "prometheus")}
    with LoopThread(name="dashboards-e2e") as loop, CollectorDouble() as jaeger:
        loki = LokiDouble()
        loop.run(loki.start())
        try:
            env = {
                "OTEL_SIDECAR_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports['grpc']}",
                "OTEL_SIDECAR_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{ports['http']}",
                "OTEL_SIDECAR_PROMETHEUS_ENDPOINT": f"127.0.0.1:{ports['prom']}",
                "OTEL_SIDECAR_METRICS_ENDPOINT": f"127.0.0.1:{ports['self']}",
                "OTEL_SIDECAR_HEALTH_ENDPOINT": f"127.0.0.1:{ports['health']}",
                "JAEGER_OTLP_ENDPOINT": f"127.0.0.1:{jaeger.port}",
                "LOKI_PUSH_ENDPOINT": loki.push_url,
            }
            sidecar_dir = tmp / "sidecar"
            sidecar_dir.mkdir()
            with _Sidecar(sidecar_dir, STACK_CONFIG.read_text(), f"http://127.0.0.1:{ports['health']}/", env) as sc:
                server = _start_prometheus(tmp, ports["prometheus"], _scrape_jobs(ports))
                try:
                    backend_dir = tmp / "backend"
                    backend_dir.mkdir()
                    backend_env = {"OTEL_PYTHON_SYSTEM_METRICS_EXCLUDED_METRICS": "system.*,process.runtime.*,cpython.*"}
                    with ExampleBackend(backend_dir, f"http://127.0.0.1:{ports['grpc']}", backend_env) as backend:
                        traffic = subprocess.run(
                            [sys.executable, str(BACKEND_DIR / "traffic.py"), "--base-url", backend.base_url,
                             "--requests", str(TRAFFIC_REQUESTS), "--concurrency", "4", "--seed", "7",
                             "--progress-interval", "60"],
                            capture_output=True, text=True, timeout=120, check=False)
                        assert traffic.returncode == 0, traffic.stdout + traffic.stderr
                        yield {"prometheus": server, "jaeger": jaeger, "loki": loki, "loop": loop, "sidecar": sc,
                               "ports": ports, "backend": backend}
                finally:
                    prom.stop(server)
        finally:
            loop.run(loki.stop())


def _values(stack: dict[str, Any]) -> dict[str, str]:
    """Concrete values of the dashboard's variables for this run."""
    return {"job": SERVICE, "service": SERVICE, "sidecar": f"127.0.0.1:{stack['ports']['self']}", "search": ""}


def _promql_queries() -> list[Query]:
    return [q for path in DASHBOARDS for q in dashboard_queries(path) if q.datasource_type == "prometheus"]


def test_prometheus_loads_and_evaluates_every_rule(stack: dict[str, Any]) -> None:
    server = stack["prometheus"]
    expected = {r.name for r in alert_rules()}

    def evaluated() -> dict[str, dict[str, Any]] | None:
        groups = _api(server, "rules")["data"]["groups"]
        rules = {r["name"]: r for g in groups for r in g["rules"]}
        done = all(r.get("lastEvaluation", "").startswith("20") and r["health"] != "unknown" for r in rules.values())
        return rules if done and set(rules) >= expected else None

    rules = wait_until(evaluated, 30, "every rule evaluated")
    assert {g["file"] for g in _api(server, "rules")["data"]["groups"]} == {str(p) for p in RULE_FILES}
    broken = {name: (r["health"], r.get("lastError")) for name, r in rules.items() if r["health"] != "ok"}
    assert broken == {}


def test_every_query_returns_data(stack: dict[str, Any]) -> None:
    server = stack["prometheus"]
    values = _values(stack)
    checks: list[tuple[str, str]] = []  # (where, expression that must return data)
    for q in _promql_queries():
        expr = substitute(q.expr, values)
        selector = label_values_query(expr)
        checks.append((q.where, selector if selector is not None else expr))
    for rule in alert_rules():
        status, _, error = _query(server, rule.expr)  # the whole alert expression is accepted...
        assert status == "success", (rule.name, error)
        for signal in alert_signals(rule.expr):  # ...and what it compares has data
            if rule.name in SIGNAL_SUBSTITUTIONS:
                text, replacement, _reason = SIGNAL_SUBSTITUTIONS[rule.name]
                signal = signal.replace(text, replacement)
            checks.append((f"alert {rule.name} signal", signal))

    deadline = time.monotonic() + DATA_TIMEOUT
    pending = dict.fromkeys(checks, "not queried")
    while pending and time.monotonic() < deadline:
        for where, expr in list(pending):
            status, result, error = _query(server, expr)
            assert status == "success", (where, expr, error)  # a syntax error never heals
            if result:
                del pending[(where, expr)]
            else:
                pending[(where, expr)] = "empty result"
        if pending:
            time.sleep(1)
    assert pending == {}, "queries without data:\n" + "\n".join(f"  {w}: {e}" for w, e in pending)


def test_substitutions_are_still_needed() -> None:
    # The allowlist stays minimal: each entry still applies to its alert.
    rules = {r.name: r for r in alert_rules()}
    for name, (text, _, reason) in SIGNAL_SUBSTITUTIONS.items():
        assert reason
        assert any(text in s for s in alert_signals(rules[name].expr)), name


def _trace_ids(jaeger: CollectorDouble) -> set[str]:
    return {span.trace_id.hex() for span in jaeger.spans()}


def test_latency_exemplars_link_to_traces_the_backend_received(stack: dict[str, Any]) -> None:
    server, jaeger = stack["prometheus"], stack["jaeger"]
    now = time.time()

    def exemplar_trace_ids() -> set[str]:
        body = _api(server, "query_exemplars", query=f'http_server_request_duration_seconds_bucket{{job="{SERVICE}"}}',
                    start=str(now - 600), end=str(time.time() + 60))
        assert body["status"] == "success", body
        return {e["labels"]["trace_id"] for series in body["data"] for e in series["exemplars"]
                if "trace_id" in e["labels"]}

    linked = wait_until(lambda: exemplar_trace_ids() & _trace_ids(jaeger), 30,
                   "an exemplar trace_id among the traces Jaeger received")
    assert all(len(t) == 32 for t in linked)


def test_logs_match_the_dashboard_selector_and_carry_trace_ids(stack: dict[str, Any]) -> None:
    loki, loop, jaeger = stack["loki"], stack["loop"], stack["jaeger"]
    values = _values(stack)
    logql = [substitute(q.expr, values) for path in DASHBOARDS for q in dashboard_queries(path)
             if q.datasource_type == "loki"]
    assert logql

    def matching(expr: str) -> list[Any]:
        matchers = stream_matchers(expr)
        entries = loop.call(loki.entries)
        ok = []
        for labels, entry in entries:
            good = True
            for name, op, value in matchers:
                have = labels.get(name, "")
                hit = re.fullmatch(value, have) is not None if "~" in op else have == value
                good &= hit if op in ("=", "=~") else not hit
            if good:
                ok.append(entry)
        return ok

    for expr in logql:
        entries = wait_until(lambda expr=expr: matching(expr), 30, f"log entries matching {expr}")
        traced = [e for e in entries if e.metadata.get("trace_id")]
        assert traced, f"no entry matching {expr} has trace_id structured metadata"
        assert {e.metadata["trace_id"] for e in traced} & _trace_ids(jaeger), \
            "the derived field's trace ids must be traces that reached Jaeger"
