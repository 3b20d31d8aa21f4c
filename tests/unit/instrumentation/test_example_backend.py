"""The example backend in process: endpoints, telemetry through instrument_app, the traffic generator."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.trace import SpanKind

from instrumentation import instrument_app
from tests.unit.instrumentation.conftest import Otel, app_logger

SENTINEL = "Sentinel-Pa55word-In-Process!"


@pytest.fixture
def backend(backend_path: Path) -> ModuleType:
    import auth_api.main

    return auth_api.main


def make_app(backend: ModuleType, tmp_path: Path) -> FastAPI:
    from auth_api.settings import Settings

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'auth.db'}",
        token_secret="test-secret",
        password_hash_log2_n=10,
        slow_seconds=0.01,
    )
    app: FastAPI = backend.create_app(settings)
    return app


@pytest.fixture
def app_logs(otel: Otel, clean_logging: None) -> Iterator[io.StringIO]:
    with app_logger(otel, "auth_api") as buffer:
        yield buffer


@pytest.fixture
def client(backend: ModuleType, otel: Otel, app_logs: io.StringIO, tmp_path: Path) -> Iterator[TestClient]:
    app = make_app(backend, tmp_path)
    instrument_app(app, app.state.engine, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    try:
        with TestClient(app) as test_client:
            yield test_client
    finally:
        SQLAlchemyInstrumentor().uninstrument()


def exercise(client: TestClient) -> dict[str, Any]:
    """One request to each endpoint (two to the cached one), returning what the test needs."""
    register = client.post("/register", json={"email": "Dana@Example.com", "password": SENTINEL, "full_name": "Dana"})
    assert register.status_code == 201, register.text
    user_id = register.json()["id"]
    assert client.post("/register", json={"email": "dana@example.com", "password": SENTINEL}).status_code == 409
    assert client.post("/register", json={"email": "nope", "password": "x"}).status_code == 422
    assert client.post("/login", json={"email": "dana@example.com", "password": "wrong"}).status_code == 401
    login = client.post("/login", json={"email": "dana@example.com", "password": SENTINEL})
    assert login.status_code == 200
    token = login.json()["access_token"]
    me = client.get("/users/me", headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-me"})
    assert me.status_code == 200 and me.json()["email"] == "dana@example.com"
    assert client.get("/users/me", headers={"Authorization": "Bearer forged.token"}).status_code == 401
    assert client.get(f"/users/{user_id}/cached").status_code == 200
    assert client.get(f"/users/{user_id}/cached").status_code == 200
    assert client.get("/users/999999/cached").status_code == 404
    listing = client.get("/users/posts-n-plus-one").json()
    assert len(listing) == 4 and all(row["posts"] >= 1 for row in listing)  # 3 demo users + Dana
    assert client.get("/slow").status_code == 200
    assert client.get("/healthz").json() == {"status": "ok"}
    return {"user_id": user_id, "token": token}


def metric_values(otel: Otel, name: str) -> dict[tuple[tuple[str, object], ...], object]:
    return {
        tuple(sorted((k, v) for k, v in attrs.items() if not k.startswith("db.client.connection.pool"))): getattr(
            point, "value", getattr(point, "count", None)
        )
        for attrs, point in otel.points(name)
    }


def test_endpoints_and_telemetry(client: TestClient, otel: Otel, app_logs: io.StringIO) -> None:
    ids = exercise(client)
    spans = otel.spans()
    routes = {s.attributes.get("http.route") for s in spans if s.kind is SpanKind.SERVER and s.attributes}
    assert routes == {
        "/register",
        "/login",
        "/users/me",
        "/users/{user_id}/cached",
        "/users/posts-n-plus-one",
        "/slow",
    }
    [me_span] = [s for s in spans if s.kind is SpanKind.SERVER and (s.attributes or {}).get("request.id") == "req-me"]
    assert me_span.attributes["enduser.id"] == str(ids["user_id"])  # type: ignore[index]
    n_plus_one = next(s for s in spans if s.kind is SpanKind.SERVER and s.name == "GET /users/posts-n-plus-one")
    n1_queries = [
        s
        for s in spans
        if s.kind is SpanKind.CLIENT
        and s.context.trace_id == n_plus_one.context.trace_id
        and s.name.startswith("SELECT")
    ]
    assert len(n1_queries) == 5  # the user list, then one query per user

    assert metric_values(otel, "auth.login.attempts") == {
        (("auth.method", "password"), ("auth.outcome", "failure")): 1,
        (("auth.method", "password"), ("auth.outcome", "success")): 1,
    }
    assert metric_values(otel, "auth.registrations") == {
        (("auth.outcome", "success"),): 1,
        (("auth.outcome", "failure"),): 1,
    }
    assert metric_values(otel, "cache.requests") == {
        (("cache.name", "users"), ("cache.result", "hit")): 1,
        (("cache.name", "users"), ("cache.result", "miss")): 2,
    }
    # The stable HTTP metrics (with http.route) need OTEL_SEMCONV_STABILITY_OPT_IN=http, read once
    # per process: the distro sets it and the subprocess integration test checks them.
    assert otel.points("http.server.request.duration") or otel.points("http.server.duration")
    assert otel.points("db.client.connection.count")
    assert otel.points("db.client.operation.duration")

    records = otel.logs()
    failed = [r for r in records if "Login failed" in str(r.log_record.body)]
    assert failed and failed[0].log_record.trace_id
    assert str(failed[0].log_record.body) == "Login failed for [REDACTED_EMAIL]: wrong password"
    [registration] = [r for r in records if r.log_record.body == "Registration request received"][:1]
    payload = dict(registration.log_record.attributes or {})["payload"]
    assert payload["password"] == "[REDACTED]"  # type: ignore[index]
    everything = app_logs.getvalue() + "".join(r.to_json() for r in records)
    assert SENTINEL not in everything
    lines = [json.loads(line) for line in app_logs.getvalue().splitlines()]
    assert lines[0]["message"] == "auth_api started" and lines[0]["request_id"] is None  # lifespan: no request
    assert all(line["request_id"] and line["trace_id"] for line in lines[1:])


def test_security_helpers(backend_path: Path) -> None:
    from auth_api.security import hash_password, issue_token, verify_password, verify_token

    stored = hash_password("correct horse", log2_n=10)
    assert stored.startswith("scrypt$10$") and "correct horse" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("wrong", stored)
    assert not verify_password("x", "garbage")
    token = issue_token(5, "k", 60, now=1000.0)
    assert verify_token(token, "k", now=1030.0) == 5
    assert verify_token(token, "k", now=2000.0) is None  # expired
    assert verify_token(token, "other", now=1030.0) is None  # wrong key
    assert verify_token(token[:-2] + "xx", "k", now=1030.0) is None


def test_ttl_cache_counts_hits_and_misses(backend_path: Path, otel: Otel) -> None:
    from auth_api.cache import TTLCache

    now = [0.0]
    cache: TTLCache[int, str] = TTLCache("profiles", ttl_seconds=10, max_entries=2, clock=lambda: now[0])
    assert cache.get(1) is None
    cache.put(1, "a")
    assert cache.get(1) == "a"
    now[0] = 11.0
    assert cache.get(1) is None  # expired
    cache.put(1, "a")
    cache.put(2, "b")
    cache.put(3, "c")
    assert cache.get(1) is None  # evicted (least recently used)
    values = {tuple(sorted(a.items())): p.value for a, p in otel.points("cache.requests")}
    assert values == {
        (("cache.name", "profiles"), ("cache.result", "hit")): 1,
        (("cache.name", "profiles"), ("cache.result", "miss")): 3,
    }


async def test_traffic_generator_covers_every_endpoint(backend: ModuleType, tmp_path: Path, otel: Otel) -> None:
    import traffic
    from auth_api.db import init_database

    app = make_app(backend, tmp_path)
    init_database(app.state.engine, app.state.settings)
    progress, output = io.StringIO(), io.StringIO()
    args = argparse.Namespace(
        base_url="http://auth-api.test",
        requests=40,
        duration=None,
        concurrency=3,
        timeout=10.0,
        seed=7,
        progress_interval=0.0,
    )
    status = await traffic.run(args, transport=httpx.ASGITransport(app=app), progress_stream=progress, output=output)
    app.state.engine.dispose()
    assert status == 0
    summary = output.getvalue()
    assert "total 40 requests" in summary
    for name in traffic.WEIGHTS:
        assert name in summary
    lines = progress.getvalue().splitlines()
    assert lines and all(line.startswith("requests ") for line in lines)  # plain lines: not a terminal
    assert "\r" not in progress.getvalue()
    assert lines[-1].startswith("requests 40/40 |") and "5xx 0" in lines[-1] and "errors 0" in lines[-1]


def test_traffic_progress_on_a_terminal_rewrites_one_line(backend_path: Path) -> None:
    import traffic

    stream = io.StringIO()
    progress = traffic.Progress(stream, total=10, duration=None, tty=True)
    stats = traffic.Stats()
    stats.record("healthz", 200, 0.01)
    progress.update(stats, force=True)
    stats.record("login", 401, 0.02)
    progress.finish(stats)
    text = stream.getvalue()
    assert text.count("\r\x1b[2K") == 2 and text.endswith("\n") and text.count("\n") == 1
    assert "requests 2/10 | 2xx 1 4xx 1 5xx 0 errors 0" in text


def test_traffic_arguments_are_bounded(backend_path: Path) -> None:
    import traffic

    assert traffic.parse_args([]).requests == traffic.DEFAULT_REQUESTS
    args = traffic.parse_args(["--duration", "5"])
    assert args.duration == 5.0 and args.requests is None
    with pytest.raises(SystemExit):
        traffic.parse_args(["--requests", "0"])


def test_postgresql_urls_use_psycopg_3_and_the_pool_settings(backend_path: Path) -> None:
    from auth_api.db import make_engine
    from auth_api.settings import Settings

    from instrumentation.metrics import pool_name

    engine = make_engine(
        Settings(database_url="postgresql+psycopg://app:s3cret@db.invalid:5432/shop", pool_size=7, max_overflow=3)
    )
    try:
        assert engine.dialect.driver == "psycopg"  # psycopg 3, no connection made
        assert engine.pool.size() == 7  # type: ignore[attr-defined]
        assert pool_name(engine) == "db.invalid:5432/shop"
    finally:
        engine.dispose()
