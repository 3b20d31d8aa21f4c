"""Business counters, SQLAlchemy pool and query metrics, and database spans (the SQLAlchemy pin)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.trace import SpanKind
from packaging.version import Version
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from instrumentation import (
    record_cache_hit,
    record_cache_miss,
    record_cache_request,
    record_login_attempt,
    record_registration,
)
from instrumentation.compat import find_unsupported_instrumentations
from instrumentation.metrics import install_sqlalchemy_hook, instrument_engine, pool_name, uninstall_sqlalchemy_hook
from tests.unit.instrumentation.conftest import Otel


def values(otel: Otel, name: str) -> dict[tuple[tuple[str, object], ...], object]:
    """Metric ``name``'s value per attribute set (sums/gauges: value; histograms: count)."""
    return {
        tuple(sorted(attrs.items())): getattr(point, "value", getattr(point, "count", None))
        for attrs, point in otel.points(name)
    }


def test_login_attempts(otel: Otel) -> None:
    record_login_attempt("success", "password")
    record_login_attempt("failure", "password")
    record_login_attempt("failure", "password")
    record_login_attempt("success", "token")
    assert values(otel, "auth.login.attempts") == {
        (("auth.method", "password"), ("auth.outcome", "success")): 1,
        (("auth.method", "password"), ("auth.outcome", "failure")): 2,
        (("auth.method", "token"), ("auth.outcome", "success")): 1,
    }


def test_registrations(otel: Otel) -> None:
    record_registration()
    record_registration()
    record_registration("failure")
    assert values(otel, "auth.registrations") == {
        (("auth.outcome", "success"),): 2,
        (("auth.outcome", "failure"),): 1,
    }


def test_cache_requests(otel: Otel) -> None:
    record_cache_hit("users")
    record_cache_hit("users")
    record_cache_miss("users")
    record_cache_request("sessions", hit=False)
    assert values(otel, "cache.requests") == {
        (("cache.name", "users"), ("cache.result", "hit")): 2,
        (("cache.name", "users"), ("cache.result", "miss")): 1,
        (("cache.name", "sessions"), ("cache.result", "miss")): 1,
    }


def test_metric_units_and_monotonic_counters(otel: Otel) -> None:
    record_login_attempt("success")
    record_registration()
    record_cache_hit("users")
    data = otel.metric_reader.get_metrics_data()
    assert data is not None
    metrics = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert metrics["auth.login.attempts"].unit == "{attempt}"
    assert metrics["auth.registrations"].unit == "{registration}"
    assert metrics["cache.requests"].unit == "{request}"
    assert all(
        metrics[name].data.is_monotonic for name in ("auth.login.attempts", "auth.registrations", "cache.requests")
    )


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = create_engine(f"sqlite:///{tmp_path / 'pool.db'}", pool_size=3, max_overflow=2)
    try:
        yield eng
    finally:
        eng.dispose()


def test_pool_metrics_follow_checkouts(otel: Otel, engine: Engine, tmp_path: Path) -> None:
    name = instrument_engine(engine)
    assert name == f"sqlite:{tmp_path / 'pool.db'}"
    pool = (("db.client.connection.pool.name", name),)
    connections = [engine.connect() for _ in range(4)]  # pool_size 3 + 1 overflow
    assert values(otel, "db.client.connection.count") == {
        (*pool, ("db.client.connection.state", "idle")): 0,
        (*pool, ("db.client.connection.state", "used")): 4,
    }
    assert values(otel, "db.client.connection.idle.max") == {pool: 3}
    assert values(otel, "db.client.connection.max") == {pool: 5}
    assert values(otel, "sqlalchemy.pool.overflow") == {pool: 1}
    for connection in connections[:2]:
        connection.close()
    assert values(otel, "db.client.connection.count") == {
        (*pool, ("db.client.connection.state", "idle")): 2,
        (*pool, ("db.client.connection.state", "used")): 2,
    }
    for connection in connections[2:]:
        connection.close()
    counts = values(otel, "db.client.connection.count")
    assert counts[(*pool, ("db.client.connection.state", "used"))] == 0
    assert values(otel, "sqlalchemy.pool.overflow") == {pool: 0}


def test_instrument_engine_is_idempotent(otel: Otel, engine: Engine) -> None:
    assert instrument_engine(engine) == instrument_engine(engine)
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    [(_attrs, point)] = otel.points("db.client.operation.duration")
    assert point.count == 1


def test_query_duration_histogram(otel: Otel, engine: Engine) -> None:
    instrument_engine(engine)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
        connection.execute(text("INSERT INTO t VALUES (1)"))
        connection.execute(text("/* comment */ SELECT x FROM t"))
        with pytest.raises(sqlalchemy.exc.OperationalError):
            connection.execute(text("SELECT nope FROM missing"))
    points = {tuple(sorted(attrs.items())): point for attrs, point in otel.points("db.client.operation.duration")}
    ops = {dict(key).get("db.operation.name"): dict(key) for key in points}
    assert set(ops) == {"CREATE", "INSERT", "SELECT"}
    assert ops["INSERT"]["db.system.name"] == "sqlite"
    assert any(dict(key).get("error.type") == "OperationalError" for key in points)
    assert all(p.sum >= 0 and p.count >= 1 for p in points.values())


def test_pool_name_never_contains_the_password() -> None:
    eng = create_engine("sqlite://")
    assert pool_name(eng) == "sqlite::memory:"
    url = sqlalchemy.engine.make_url("postgresql+psycopg://app:s3cret@db.internal:5432/shop")
    assert "s3cret" not in f"{url.host}:{url.port}/{url.database}"
    eng.dispose()


def test_engine_hook_instruments_engines_on_first_connect(otel: Otel, tmp_path: Path) -> None:
    assert install_sqlalchemy_hook()
    try:
        assert not install_sqlalchemy_hook()
        eng = create_engine(f"sqlite:///{tmp_path / 'hook.db'}")
        with eng.connect() as connection:
            connection.execute(text("SELECT 1"))
        assert values(otel, "db.client.connection.count")
        assert otel.points("db.client.operation.duration")
        eng.dispose()
    finally:
        assert uninstall_sqlalchemy_hook()


def test_unsupported_pools_get_only_query_metrics(otel: Otel) -> None:
    eng = create_engine("sqlite://")  # SingletonThreadPool
    instrument_engine(eng)
    with eng.connect() as connection:
        connection.execute(text("SELECT 1"))
    assert not otel.points("db.client.connection.count")
    assert otel.points("db.client.operation.duration")
    eng.dispose()


def test_sqlalchemy_is_pinned_below_2_1_and_produces_db_spans(otel: Otel, engine: Engine) -> None:
    """opentelemetry-instrumentation-sqlalchemy 0.66b* instruments nothing on SQLAlchemy 2.1."""
    assert Version(sqlalchemy.__version__) < Version("2.1")
    assert not [p for p in find_unsupported_instrumentations() if p.instrumentor == "sqlalchemy"]
    instrumentor = SQLAlchemyInstrumentor()
    instrumentor.instrument(engine=engine, tracer_provider=otel.tracer_provider, enable_commenter=False)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    finally:
        instrumentor.uninstrument()
    queries = [
        dict(s.attributes or {})
        for s in otel.spans()
        if s.kind is SpanKind.CLIENT and "SELECT 1" in str((s.attributes or {}).get("db.statement"))
    ]
    assert len(queries) == 1, [(s.name, s.attributes) for s in otel.spans()]
    assert queries[0]["db.system"] == "sqlite"
