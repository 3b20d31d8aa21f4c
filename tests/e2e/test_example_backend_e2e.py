"""End to end: the instrumented example backend, through a running otel-sidecar, into Prometheus, Jaeger and Loki.

One run per database (SQLite; PostgreSQL in a throwaway cluster), shared by the tests of this
module:

1. A Jaeger collector double (``PostSpans``, tests/unit/exporters/jaeger/jaeger_double.py) and a
   Loki push double (tests/loki_double.py) serve from an event loop in a background thread.
2. otel-sidecar runs as a subprocess (``python -m agent --config``): ``otlp`` (gRPC) ->
   ``memory_limiter``, ``redaction``, ``batch`` -> ``prometheus`` (metrics), ``jaeger`` (traces),
   ``loki`` (logs).
3. A real Prometheus (tests/prom.py) scrapes the sidecar's ``prometheus`` exporter and its
   self-metrics every second.
4. The example backend runs under ``opentelemetry-instrument`` with the ``sidecar`` distro and
   configurator (tests/example_backend.py), exporting OTLP/gRPC to the sidecar with short export
   intervals. Scripted requests (known request ids, a sentinel password) are followed by a
   bounded, seeded run of the traffic generator (deploy/example-backend/traffic.py, in process,
   so the status of every response is known).
5. The backend is then stopped (its SIGTERM flush exports the rest): every counter is final, and
   the tests compare what Prometheus, the Jaeger double and the Loki double hold with the
   responses the clients saw, exactly where the numbers are known.

Every wait is a poll with a deadline.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests import prom
from tests.e2e.harness import LoopThread, wait_until
from tests.example_backend import BACKEND_DIR, ExampleBackend
from tests.loki_double import Entry, LokiDouble
from tests.ports import free_port
from tests.postgres import PostgresCluster, find_bin_dir
from tests.sidecar_process import SidecarProcess
from tests.unit.exporters.jaeger.jaeger_double import JaegerCollectorDouble, decode_post_spans, tags

pytestmark = pytest.mark.e2e

if not prom.available():  # pragma: no cover - tests/run.sh installs it
    pytest.skip(f"{prom.PROMETHEUS} is not installed (Debian package 'prometheus')", allow_module_level=True)


SENTINEL = "E2e-Sentinel-Pa55word!"
EMAIL = "erin@example.com"
SERVICE = "auth-api"
#: Traffic-generator operation -> the route template it hits (``healthz`` is not traced).
ROUTE_OF = {
    "register": "/register",
    "register_invalid": "/register",
    "login": "/login",
    "login_failed": "/login",
    "me": "/users/me",
    "cached": "/users/{user_id}/cached",
    "n_plus_one": "/users/posts-n-plus-one",
    "slow": "/slow",
}
ROUTES = set(ROUTE_OF.values())
TRAFFIC_REQUESTS = 120
SLOW_SECONDS = 0.05  # tests/example_backend.py's SLOW_SECONDS
#: A SQL literal the sidecar's redaction would have replaced: a quoted string or a standalone number.
SQL_LITERAL = re.compile(r"'[^']*'|(?<![\w$.%])-?\d+(?:\.\d+)?\b")


# --------------------------------------------------------------------------- helpers


def load_traffic_module() -> ModuleType:
    """Import deploy/example-backend/traffic.py (not a package) as ``traffic``."""
    path = BACKEND_DIR / "traffic.py"
    module = sys.modules.get("traffic")
    if module is not None and Path(getattr(module, "__file__", "")) == path:
        return module
    spec = importlib.util.spec_from_file_location("traffic", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["traffic"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def sidecar_config(ports: dict[str, int]) -> str:
    retry = "{initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 30s}"
    return f"""\
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{ports['otlp']}"}}
processors:
  memory_limiter: {{check_interval: 1s, limit_mib: 1024, spike_limit_mib: 256}}
  redaction:
    allow_all_keys: true
    summary: silent
    presets: {{enabled: true}}   # every preset: secrets, tokens, e-mails, SQL literals, URL credentials
  batch: {{timeout: 200ms}}
exporters:
  prometheus: {{endpoint: "127.0.0.1:{ports['prometheus']}", enable_open_metrics: true}}
  jaeger:
    endpoint: "127.0.0.1:{ports['jaeger']}"
    tls: {{insecure: true}}
    retry_on_failure: {retry}
  loki:
    endpoint: "http://127.0.0.1:{ports['loki']}/loki/api/v1/push"
    retry_on_failure: {retry}
extensions:
  health_check: {{endpoint: "127.0.0.1:{ports['health']}"}}
service:
  extensions: [health_check]
  shutdown_grace: 10s
  telemetry:
    logs: {{level: info}}
    metrics: {{address: "127.0.0.1:{ports['self']}"}}
  pipelines:
    traces: {{receivers: [otlp], processors: [memory_limiter, redaction, batch], exporters: [jaeger]}}
    metrics: {{receivers: [otlp], processors: [memory_limiter, redaction, batch], exporters: [prometheus]}}
    logs: {{receivers: [otlp], processors: [memory_limiter, redaction, batch], exporters: [loki]}}
"""


@dataclass
class Run:
    """Everything a variant's tests look at."""

    db: str
    backend: ExampleBackend
    sidecar: SidecarProcess
    prometheus: prom.PromServer
    loop: LoopThread
    jaeger: JaegerCollectorDouble
    loki: LokiDouble
    ports: dict[str, int]
    user_id: int
    #: ``(route, status)`` of every traced response (scripted and generated).
    responses: Counter[tuple[str, int]]
    #: Every password of a successful registration (the sentinel and the generator's).
    passwords: list[str]
    backend_exit: int | None
    database_url: str

    def spans(self) -> list[dict[str, Any]]:
        """Every span the Jaeger double received, decoded, with its batch's process."""
        out = []
        for raw in self.loop.call(lambda: list(self.jaeger.requests)):
            batch = decode_post_spans(raw)
            for span in batch["spans"]:
                span["process"] = span["process"] or batch["process"]
                out.append(span)
        return out

    def server_spans(self) -> list[dict[str, Any]]:
        return [s for s in self.spans() if tags(s).get("span.kind") == "server"]

    def loki_entries(self) -> list[tuple[dict[str, str], Entry]]:
        return self.loop.call(self.loki.entries)

    def count(self, route: str | None = None, status: int | None = None) -> int:
        """Responses seen by the clients, by route and/or status."""
        return sum(n for (r, s), n in self.responses.items()
                   if (route is None or r == route) and (status is None or s == status))

    def query(self, promql: str) -> prom.Result:
        return prom.query(self.prometheus, promql)

    def eventually(self, promql: str, check: Callable[[prom.Result], bool], timeout: float = 20.0) -> prom.Result:
        return prom.eventually(self.prometheus, promql, check, timeout)


def _scripted_traffic(client: httpx.Client, responses: Counter[tuple[str, int]]) -> int:
    """Requests with known ids and outcomes; return the registered user's id."""

    def call(method: str, url: str, route: str | None, expected: int, **kwargs: Any) -> httpx.Response:
        response = client.request(method, url, **kwargs)
        assert response.status_code == expected, (method, url, response.status_code, response.text)
        if route is not None:
            responses[(route, response.status_code)] += 1
        return response

    registered = call("POST", "/register", "/register", 201,
                      json={"email": EMAIL, "password": SENTINEL, "full_name": "Erin"})
    user_id = int(registered.json()["id"])
    call("POST", "/register", "/register", 409, json={"email": EMAIL, "password": SENTINEL})
    call("POST", "/login", "/login", 401, json={"email": EMAIL, "password": "not-" + SENTINEL},
         headers={"X-Request-ID": "e2e-login-fail"})
    login = call("POST", "/login", "/login", 200, json={"email": EMAIL, "password": SENTINEL},
                 headers={"X-Request-ID": "e2e-login-1", "X-Correlation-ID": "e2e-corr-1"})
    assert login.headers["x-request-id"] == "e2e-login-1"
    token = login.json()["access_token"]
    call("GET", "/users/me", "/users/me", 200, headers={"Authorization": f"Bearer {token}", "X-Request-ID": "e2e-me-1"})
    for _ in range(2):
        call("GET", f"/users/{user_id}/cached", "/users/{user_id}/cached", 200)
    call("GET", "/users/posts-n-plus-one", "/users/posts-n-plus-one", 200, headers={"X-Request-ID": "e2e-n-plus-one"})
    call("GET", "/slow", "/slow", 200)
    call("GET", "/healthz", None, 200)
    return user_id


def _generated_traffic(base_url: str, responses: Counter[tuple[str, int]]) -> list[str]:
    """A bounded, seeded traffic-generator run; return the passwords it registered."""
    traffic = load_traffic_module()

    async def run() -> tuple[Any, list[str]]:
        async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
            generator = traffic.TrafficGenerator(client, requests=TRAFFIC_REQUESTS, concurrency=4, seed=20240611)
            stats = await generator.run()
            # The (e-mail, password) pairs it registered: private, but this is the example's own generator.
            return stats, [password for _, password in generator._credentials]

    stats, passwords = asyncio.run(run())
    assert stats.total == TRAFFIC_REQUESTS and stats.errors == 0, {k: vars(v) for k, v in stats.endpoints.items()}
    assert set(stats.endpoints) == set(traffic.WEIGHTS)  # every endpoint was exercised
    for operation, endpoint in stats.endpoints.items():
        if operation in ROUTE_OF:
            for status, n in endpoint.statuses.items():
                responses[(ROUTE_OF[operation], status)] += n
    return passwords


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster's database URL (postgresql+psycopg://)."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found under "
                    "/usr/lib/postgresql/*/bin or PG_BINDIR: install the Debian package 'postgresql'")
    with PostgresCluster(bin_dir) as cluster:
        yield cluster.url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    db: str = request.param
    database_url = request.getfixturevalue("postgres_url") if db == "postgresql" else ""
    workdir = tmp_path_factory.mktemp(f"e2e-{db}")
    with ExitStack() as stack:
        loop = stack.enter_context(LoopThread())

        async def start_doubles() -> tuple[JaegerCollectorDouble, LokiDouble]:
            jaeger, loki = JaegerCollectorDouble(), LokiDouble()
            await jaeger.start()
            stack.callback(lambda: loop.run(jaeger.stop()))
            await loki.start()
            stack.callback(lambda: loop.run(loki.stop()))
            return jaeger, loki

        jaeger, loki = loop.run(start_doubles())
        ports = {name: free_port() for name in ("otlp", "prometheus", "health", "self", "prom")}
        ports.update(jaeger=jaeger.port, loki=loki.port)
        sidecar = SidecarProcess(workdir, sidecar_config(ports), f"http://127.0.0.1:{ports['health']}/")
        stack.enter_context(sidecar)
        prometheus = prom.start(workdir, "prometheus", ports["prom"], [
            prom.static_scrape("sidecar-exporter", f"127.0.0.1:{ports['prometheus']}"),
            prom.static_scrape("otelcol", f"127.0.0.1:{ports['self']}", honor_labels=False),
        ])
        stack.callback(prom.stop, prometheus)

        extra_env = {"DATABASE_URL": database_url} if database_url else {}
        backend = ExampleBackend(workdir, f"http://127.0.0.1:{ports['otlp']}", extra_env=extra_env)
        responses: Counter[tuple[str, int]] = Counter()
        with backend, httpx.Client(base_url=backend.base_url, timeout=10.0) as client:
            user_id = _scripted_traffic(client, responses)
            passwords = [SENTINEL, *_generated_traffic(backend.base_url, responses)]
        # Leaving the block SIGTERMed the backend: its SDK flushed everything to the sidecar, which
        # counted it as accepted before answering. Wait for scrapes newer than that.
        stopped = time.time()
        prom.eventually(prometheus, "min(timestamp(up))", lambda r: prom.only(r) > stopped + 0.1, timeout=10)
        yield Run(db=db, backend=backend, sidecar=sidecar, prometheus=prometheus, loop=loop, jaeger=jaeger,
                  loki=loki, ports=ports, user_id=user_id, responses=responses, passwords=passwords,
                  backend_exit=backend.process.returncode if backend.process else None,
                  database_url=database_url or backend.env["DATABASE_URL"])
    # The stack stopped Prometheus, then the sidecar (SIGTERM: drain, exit 0), then the doubles.
    stderr = sidecar.stderr()
    assert sidecar.process is not None and sidecar.process.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr and '"level": "error"' not in stderr, stderr[-3000:]
    for password in passwords:
        assert password not in stderr


# --------------------------------------------------------------------------- the backend itself


def test_backend_ran_cleanly_with_json_logs(run: Run) -> None:
    # uvicorn shuts down gracefully, then re-raises SIGTERM: dying of it is the normal exit.
    assert run.backend_exit in (0, -signal.SIGTERM), run.backend.stderr()
    assert "Traceback" not in run.backend.stderr()
    assert "otel-sidecar: WARNING" not in run.backend.stderr()
    lines = [json.loads(line) for line in run.backend.stdout().splitlines() if line.strip()]
    assert lines and all({"timestamp", "level", "logger", "message", "trace_id", "request_id"} <= set(line)
                         for line in lines)
    started = [line for line in lines if line["message"] == "auth_api started"]
    assert started and started[0]["database"].startswith("postgresql+psycopg://" if run.db == "postgresql" else "sqlite")


# --------------------------------------------------------------------------- Prometheus


def test_route_templated_http_duration_histograms_in_prometheus(run: Run) -> None:
    expected = {(route, str(status)): float(n) for (route, status), n in run.responses.items()}
    by_route_status = run.eventually(
        f'sum by (http_route, http_response_status_code) (http_server_request_duration_seconds_count{{job="{SERVICE}"}})',
        lambda r: {(lb.get("http_route", ""), lb.get("http_response_status_code", "")): v for lb, v in r} == expected)
    assert {labels["http_route"] for labels, _ in by_route_status} == ROUTES  # templates, never raw paths
    buckets = run.query(f'http_server_request_duration_seconds_bucket{{job="{SERVICE}",'
                        f'http_route="/users/{{user_id}}/cached",http_request_method="GET",le="+Inf"}}')
    assert sum(v for _, v in buckets) == run.count("/users/{user_id}/cached")
    median_slow = prom.only(run.query(
        f'histogram_quantile(0.5, sum by (le) (http_server_request_duration_seconds_bucket{{job="{SERVICE}",'
        f'http_route="/slow"}}))'))
    assert SLOW_SECONDS < median_slow < 1.0
    assert not run.query('{__name__=~"http_server_request_duration_seconds.*", http_route=~".*/healthz"}')


def test_business_metrics_in_prometheus(run: Run) -> None:
    logins = {"success": float(run.count("/login", 200)), "failure": float(run.count("/login", 401))}
    assert logins["success"] >= 1 and logins["failure"] >= 1
    run.eventually(f'sum by (auth_outcome) (auth_login_attempts_total{{job="{SERVICE}",auth_method="password"}})',
                   lambda r: prom.values(r, "auth_outcome") == logins)
    registrations = {"success": float(run.count("/register", 201)), "failure": float(run.count("/register", 409))}
    run.eventually(f'sum by (auth_outcome) (auth_registrations_total{{job="{SERVICE}"}})',
                   lambda r: prom.values(r, "auth_outcome") == registrations)
    cache = run.eventually(f'sum by (cache_result) (cache_requests_total{{job="{SERVICE}",cache_name="users"}})',
                           lambda r: sum(v for _, v in r) == run.count("/users/{user_id}/cached"))
    assert set(prom.values(cache, "cache_result")) == {"hit", "miss"}
    # target_info carries the resource: the distro identifies itself.
    info = run.query(f'target_info{{job="{SERVICE}"}}')
    assert info and info[0][0]["telemetry_distro_name"] == "otel-sidecar"


def test_database_metrics_in_prometheus(run: Run) -> None:
    system = "postgresql" if run.db == "postgresql" else "sqlite"
    operations = run.eventually(
        f'sum by (db_operation_name) (db_client_operation_duration_seconds_count{{job="{SERVICE}",'
        f'db_system_name="{system}"}})', lambda r: {"SELECT", "INSERT"} <= set(prom.values(r, "db_operation_name")))
    assert prom.values(operations, "db_operation_name")["SELECT"] > run.count()  # N+1 and logins query more than once
    pools = run.query(f'db_client_connection_count{{job="{SERVICE}"}}')
    assert {labels["db_client_connection_state"] for labels, _ in pools} == {"idle", "used"}
    if run.db == "postgresql":
        port = run.database_url.rsplit(":", 1)[1].split("/")[0]
        assert {labels["db_client_connection_pool_name"] for labels, _ in pools} == {f"127.0.0.1:{port}/auth_api"}


def test_sidecar_self_metrics_show_nothing_lost(run: Run) -> None:
    """What the sidecar accepted, it sent; what it sent, the doubles hold; nothing refused or failed."""
    accepted = {}
    for item, exporter in (("spans", "jaeger"), ("log_records", "loki"), ("metric_points", "prometheus")):
        # The backend is stopped: the counts stop moving once the last export went through. Both
        # counters come from the same scrape, so compare them in one expression (a snapshot of the
        # accepted count could be taken while the backend's final flush is still arriving).
        sent = f'sum(otelcol_exporter_sent_{item}_total{{job="otelcol",exporter="{exporter}"}})'
        got = f'sum(otelcol_receiver_accepted_{item}_total{{job="otelcol"}})'
        run.eventually(f"{sent} - {got}", lambda r: prom.only(r) == 0)
        accepted[item] = prom.only(run.eventually(got, lambda r: prom.only(r) > 0))
        for failure in (f"otelcol_exporter_send_failed_{item}_total", f"otelcol_exporter_enqueue_failed_{item}_total",
                        f"otelcol_receiver_refused_{item}_total"):
            assert {v for _, v in run.eventually(f'{failure}{{job="otelcol"}}', lambda r: True)} == {0.0}, failure
    wait_until(lambda: len(run.spans()) == accepted["spans"], what="every accepted span in Jaeger")
    wait_until(lambda: len(run.loki_entries()) == accepted["log_records"], what="every accepted log record in Loki")


# --------------------------------------------------------------------------- Jaeger


def _login_span(run: Run, request_id: str) -> dict[str, Any]:
    spans = wait_until(lambda: [s for s in run.server_spans() if tags(s).get("request.id") == request_id],
                       what=f"server span of request {request_id} in Jaeger")
    assert len(spans) == 1, spans
    return spans[0]


def test_login_spans_reach_jaeger(run: Run) -> None:
    ok = _login_span(run, "e2e-login-1")
    assert ok["process"]["service_name"] == SERVICE
    assert ok["operation_name"] == "POST /login"
    ok_tags = tags(ok)
    assert ok_tags["http.route"] == "/login" and ok_tags["http.request.method"] == "POST"
    assert ok_tags["http.response.status_code"] == 200
    assert ok_tags["correlation.id"] == "e2e-corr-1"
    assert ok_tags["enduser.id"] == str(run.user_id)
    failed_tags = tags(_login_span(run, "e2e-login-fail"))
    assert failed_tags["http.response.status_code"] == 401
    assert "enduser.id" not in failed_tags
    # Every traced request reached Jaeger exactly once (health checks are not traced).
    wait_until(lambda: len(run.server_spans()) >= run.count(), what="every server span")
    server = run.server_spans()
    assert len(server) == run.count()
    assert Counter(tags(s)["http.route"] for s in server) == Counter(
        {route: run.count(route) for route in ROUTES})


def test_database_client_spans_with_sanitised_statements(run: Run) -> None:
    system = "postgresql" if run.db == "postgresql" else "sqlite"
    login = _login_span(run, "e2e-login-1")
    in_trace = [s for s in run.spans() if s["trace_id"] == login["trace_id"]]
    db_spans = [s for s in in_trace if tags(s).get("span.kind") == "client" and "db.statement" in tags(s)]
    assert db_spans, in_trace
    statement = str(tags(db_spans[0])["db.statement"])
    assert tags(db_spans[0])["db.system"] == system
    assert statement.startswith("SELECT users.id") and "FROM users" in statement
    placeholder = "%(email_1)s" if run.db == "postgresql" else "?"
    assert f"WHERE users.email = {placeholder}" in statement
    # Every statement that reached Jaeger is free of literals, e-mails and passwords.
    statements = {str(tags(s)["db.statement"]) for s in run.spans() if "db.statement" in tags(s)}
    assert any(s.startswith("INSERT INTO users") for s in statements)
    for text in statements:
        assert not SQL_LITERAL.search(text), text
        assert "@" not in text and SENTINEL not in text
    # The backend's DDL has literals (String(254)): the sidecar's redaction replaced them.
    assert any("email VARCHAR(?)" in text for text in statements if text.lstrip().startswith("CREATE TABLE users"))
    # N+1: the user list, then one posts query per user, all in the request's trace.
    n_plus_one = _login_span(run, "e2e-n-plus-one")
    selects = [s for s in run.spans() if s["trace_id"] == n_plus_one["trace_id"]
               and str(tags(s).get("db.statement", "")).startswith("SELECT posts.")]
    assert len(selects) >= 4  # three demo users and Erin


# --------------------------------------------------------------------------- Loki


def test_json_logs_with_trace_ids_reach_loki(run: Run) -> None:
    login = _login_span(run, "e2e-login-1")
    trace_id = login["trace_id"].hex()
    span_ids = {s["span_id"].hex() for s in run.spans() if s["trace_id"] == login["trace_id"]}

    def login_entries() -> list[tuple[dict[str, str], Entry, dict[str, Any]]]:
        found = []
        for labels, entry in run.loki_entries():
            line = json.loads(entry.line)
            if line.get("attributes", {}).get("request.id") == "e2e-login-1":
                found.append((labels, entry, line))
        return found

    entries = wait_until(lambda: [e for e in login_entries() if e[2]["body"] == "Login succeeded"],
                         what="the login's log line in Loki")
    labels, entry, line = entries[0]
    assert labels["service_name"] == SERVICE and labels["level"] == "info"
    assert entry.metadata["trace_id"] == trace_id  # the same trace as the span that reached Jaeger
    assert entry.metadata["span_id"] in span_ids
    assert line["attributes"]["correlation.id"] == "e2e-corr-1"
    assert line["attributes"]["enduser.id"] == str(run.user_id)
    # The backend's own JSON line on stdout names the same trace.
    stdout = [json.loads(x) for x in run.backend.stdout().splitlines() if x.strip()]
    assert any(x["request_id"] == "e2e-login-1" and x["trace_id"] == trace_id for x in stdout)
    # No stream is keyed by a high-cardinality id.
    all_labels = {name for labels, _ in run.loki_entries() for name in labels}
    assert not {"trace_id", "span_id", "request_id", "user_id", "enduser_id"} & all_labels
    failed = [(lb, json.loads(e.line)) for lb, e in run.loki_entries() if "Login failed" in e.line]
    assert failed and all(lb["level"] == "warn" for lb, _ in failed)
    assert {line["body"] for _, line in failed} == {
        "Login failed for [REDACTED_EMAIL]: wrong password"}
    # The logged registration payload: redacted in the process, masked again by the sidecar's redaction.
    registration = [json.loads(e.line) for _, e in run.loki_entries() if "Registration request received" in e.line]
    assert registration and all(r["attributes"]["payload"]["password"] == "****" for r in registration)
    assert all(x["payload"]["password"] == "[REDACTED]" for x in stdout if x["message"] == "Registration request received")


# --------------------------------------------------------------------------- secrets


def test_registration_passwords_appear_nowhere(run: Run) -> None:
    wait_until(lambda: run.loki_entries() and run.spans(), what="logs and spans")
    scrape = httpx.get(f"http://127.0.0.1:{run.ports['prometheus']}/metrics", timeout=10.0).text
    openmetrics = httpx.get(f"http://127.0.0.1:{run.ports['prometheus']}/metrics", timeout=10.0,
                            headers={"Accept": "application/openmetrics-text; version=1.0.0"}).text
    series = httpx.get(f"{run.prometheus.url}/api/v1/series", params={"match[]": '{job=~".+"}'}, timeout=10.0).text
    assert "auth_login_attempts_total" in scrape and "auth_login_attempts_total" in series
    places = {
        "jaeger": repr(b"".join(run.loop.call(lambda: list(run.jaeger.requests)))),
        "loki": repr(run.loki_entries()),
        "prometheus scrape (text)": scrape,
        "prometheus scrape (OpenMetrics)": openmetrics,
        "prometheus series": series,
        "sidecar stderr": run.sidecar.stderr(),
        "sidecar stdout": run.sidecar.stdout(),
        "backend stdout": run.backend.stdout(),
        "backend stderr": run.backend.stderr(),
    }
    assert len(run.passwords) > 1  # the sentinel and the traffic generator's registrations
    for where, text in places.items():
        for password in run.passwords:
            assert password not in text, f"a registration password leaked to {where}"

