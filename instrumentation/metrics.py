"""Business metrics helpers and SQLAlchemy connection-pool / query metrics.

Business counters (instrumentation scope ``otel_sidecar.business``), all monotonic counters
(delta temporality under the sidecar distro):

=======================  ===============  ==============================================================
metric                   unit             attributes
=======================  ===============  ==============================================================
``auth.login.attempts``  ``{attempt}``    ``auth.outcome`` (``success``/``failure``/...),
                                          ``auth.method`` (``password``/``token``/``sso``...)
``auth.registrations``   ``{registration}``  ``auth.outcome`` (``success``/``failure``)
``cache.requests``       ``{request}``    ``cache.name``, ``cache.result`` (``hit``/``miss``)
=======================  ===============  ==============================================================

Attribute values must come from small fixed sets (never user ids or e-mails): every distinct
combination is a time series in Prometheus.

SQLAlchemy metrics (scope ``otel_sidecar.sqlalchemy``), registered per engine by
:func:`instrument_engine`, which the sidecar distro calls automatically for every engine that
opens a connection once the SQLAlchemy instrumentor is loaded (``OTEL_SIDECAR_DB_METRICS=false``
turns this off). They follow the OpenTelemetry database client semantic conventions; every one
carries ``db.client.connection.pool.name`` (``host:port/database``, or ``dialect:path`` for SQLite;
never the password):

====================================  ================  =====================================================
metric                                instrument        meaning
====================================  ================  =====================================================
``db.client.connection.count``        async up-down     open connections by ``db.client.connection.state``
                                                        (``idle`` = checked in, ``used`` = checked out)
``db.client.connection.idle.max``     async up-down     the pool's ``pool_size`` (idle connections kept)
``db.client.connection.max``          async up-down     ``pool_size + max_overflow`` (absent if unbounded)
``sqlalchemy.pool.overflow``          async up-down     connections open beyond ``pool_size`` (not in the
                                                        conventions, hence the library namespace)
``db.client.operation.duration``      histogram (s)     cursor execution time by ``db.system.name``,
                                                        ``db.operation.name``, ``db.namespace``,
                                                        ``server.address``/``server.port``, ``error.type``
====================================  ================  =====================================================

Pool gauges are observed for ``QueuePool`` and its async variant (SQLAlchemy's default for
PostgreSQL and file SQLite databases); engines with other pools (``NullPool``, ``StaticPool``,
``SingletonThreadPool`` for in-memory SQLite) get only the query histogram.

The OpenTelemetry SQLAlchemy instrumentor emits spans and, separately, the older
``db.client.connections.usage`` counter; these metrics do not replace either.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Meter, MeterProvider, Observation

__all__ = [
    "AUTH_METHOD",
    "AUTH_OUTCOME",
    "CACHE_NAME",
    "CACHE_RESULT",
    "DB_POOL_NAME",
    "install_sqlalchemy_hook",
    "instrument_engine",
    "pool_name",
    "record_cache_hit",
    "record_cache_miss",
    "record_cache_request",
    "record_login_attempt",
    "record_registration",
    "trace_engine",
    "uninstall_sqlalchemy_hook",
]

_logger = logging.getLogger(__name__)

AUTH_OUTCOME: Final = "auth.outcome"
AUTH_METHOD: Final = "auth.method"
CACHE_NAME: Final = "cache.name"
CACHE_RESULT: Final = "cache.result"
DB_POOL_NAME: Final = "db.client.connection.pool.name"
DB_CONNECTION_STATE: Final = "db.client.connection.state"

_BUSINESS_SCOPE: Final = "otel_sidecar.business"
_SQLALCHEMY_SCOPE: Final = "otel_sidecar.sqlalchemy"
#: Bucket boundaries advised by the semantic conventions for ``db.client.operation.duration``.
_DB_DURATION_BUCKETS: Final = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
_DB_SYSTEM_NAMES: Final = {
    "postgresql": "postgresql",
    "sqlite": "sqlite",
    "mysql": "mysql",
    "mariadb": "mariadb",
    "mssql": "microsoft.sql_server",
    "oracle": "oracle.db",
}
_OPERATION_RE: Final = re.compile(r"^\s*(?:/\*.*?\*/\s*)*([A-Za-z]{1,20})", re.DOTALL)

_lock = threading.Lock()


def _version() -> str:
    from instrumentation import __version__  # avoid an import cycle

    return __version__


def _provider(meter_provider: MeterProvider | None) -> MeterProvider:
    return metrics.get_meter_provider() if meter_provider is None else meter_provider


# --------------------------------------------------------------------------- business metrics


@dataclass(frozen=True, slots=True)
class _BusinessInstruments:
    login_attempts: Counter
    registrations: Counter
    cache_requests: Counter

    @classmethod
    def create(cls, meter: Meter) -> _BusinessInstruments:
        return cls(
            login_attempts=meter.create_counter(
                "auth.login.attempts", unit="{attempt}", description="Login attempts by outcome and method."
            ),
            registrations=meter.create_counter(
                "auth.registrations", unit="{registration}", description="User registrations by outcome."
            ),
            cache_requests=meter.create_counter(
                "cache.requests", unit="{request}", description="Cache lookups by cache name and result."
            ),
        )


_business: weakref.WeakKeyDictionary[MeterProvider, _BusinessInstruments] = weakref.WeakKeyDictionary()


def _business_instruments(meter_provider: MeterProvider | None = None) -> _BusinessInstruments:
    provider = _provider(meter_provider)
    instruments = _business.get(provider)
    if instruments is None:
        with _lock:
            instruments = _business.get(provider)
            if instruments is None:
                meter = provider.get_meter(_BUSINESS_SCOPE, _version())
                instruments = _business[provider] = _BusinessInstruments.create(meter)
    return instruments


def record_login_attempt(
    outcome: str, method: str = "password", *, meter_provider: MeterProvider | None = None
) -> None:
    """Count one login attempt (``auth.login.attempts``).

    Args:
        outcome: ``success``, ``failure`` or another value from a small fixed set (``locked``...).
        method: How the user authenticated: ``password``, ``token``, ``sso``...
        meter_provider: The meter provider; the global one when ``None``.
    """
    _business_instruments(meter_provider).login_attempts.add(1, {AUTH_OUTCOME: outcome, AUTH_METHOD: method})


def record_registration(outcome: str = "success", *, meter_provider: MeterProvider | None = None) -> None:
    """Count one registration (``auth.registrations``).

    Args:
        outcome: ``success`` or ``failure`` (for example a duplicate e-mail).
        meter_provider: The meter provider; the global one when ``None``.
    """
    _business_instruments(meter_provider).registrations.add(1, {AUTH_OUTCOME: outcome})


def record_cache_request(cache_name: str, hit: bool, *, meter_provider: MeterProvider | None = None) -> None:
    """Count one cache lookup (``cache.requests``).

    Args:
        cache_name: The cache's name (``cache.name``), e.g. ``users``.
        hit: Whether the lookup was a hit (``cache.result=hit``) or a miss (``miss``).
        meter_provider: The meter provider; the global one when ``None``.
    """
    _business_instruments(meter_provider).cache_requests.add(
        1, {CACHE_NAME: cache_name, CACHE_RESULT: "hit" if hit else "miss"}
    )


def record_cache_hit(cache_name: str, *, meter_provider: MeterProvider | None = None) -> None:
    """Count a cache hit; same as ``record_cache_request(cache_name, True)``."""
    record_cache_request(cache_name, True, meter_provider=meter_provider)


def record_cache_miss(cache_name: str, *, meter_provider: MeterProvider | None = None) -> None:
    """Count a cache miss; same as ``record_cache_request(cache_name, False)``."""
    record_cache_request(cache_name, False, meter_provider=meter_provider)


# --------------------------------------------------------------------------- SQLAlchemy


def pool_name(engine: Any) -> str:
    """Return the ``db.client.connection.pool.name`` of an engine (never includes the password).

    ``host:port/database`` for network databases, ``dialect:database`` otherwise (SQLite files,
    ``sqlite::memory:`` for in-memory databases).

    Args:
        engine: A SQLAlchemy ``Engine`` or ``AsyncEngine``.
    """
    url = _sync_engine(engine).url
    if url.host:
        port = f":{url.port}" if url.port else ""
        return f"{url.host}{port}/{url.database or ''}"
    return f"{url.get_backend_name()}:{url.database or ':memory:'}"


def _sync_engine(engine: Any) -> Any:
    return getattr(engine, "sync_engine", engine)


@dataclass(slots=True)
class _EngineInfo:
    pool_name: str
    base_attributes: dict[str, str | int]


class _SqlAlchemyMetrics:
    """The SQLAlchemy instruments of one meter provider and the engines they observe."""

    def __init__(self, meter: Meter) -> None:
        self.engines: weakref.WeakKeyDictionary[Any, _EngineInfo] = weakref.WeakKeyDictionary()
        self.duration: Histogram = meter.create_histogram(
            "db.client.operation.duration",
            unit="s",
            description="Duration of database client operations.",
            explicit_bucket_boundaries_advisory=_DB_DURATION_BUCKETS,
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.count",
            callbacks=[self._observe_count],
            unit="{connection}",
            description="The number of connections that are currently in state described by the state attribute.",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.idle.max",
            callbacks=[self._observer(lambda pool: pool.size())],
            unit="{connection}",
            description="The maximum number of idle open connections allowed.",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.max",
            callbacks=[self._observer(_pool_max)],
            unit="{connection}",
            description="The maximum number of open connections allowed.",
        )
        meter.create_observable_up_down_counter(
            "sqlalchemy.pool.overflow",
            callbacks=[self._observer(lambda pool: max(0, pool.overflow()))],
            unit="{connection}",
            description="Connections open beyond the pool size (SQLAlchemy max_overflow in use).",
        )

    def _pools(self) -> Iterable[tuple[Any, str]]:
        for engine, info in list(self.engines.items()):
            pool = getattr(engine, "pool", None)
            if pool is not None and _is_queue_pool(pool):
                yield pool, info.pool_name

    def _observe_count(self, options: CallbackOptions) -> Iterable[Observation]:
        observations = []
        for pool, name in self._pools():
            observations.append(Observation(pool.checkedin(), {DB_POOL_NAME: name, DB_CONNECTION_STATE: "idle"}))
            observations.append(Observation(pool.checkedout(), {DB_POOL_NAME: name, DB_CONNECTION_STATE: "used"}))
        return observations

    def _observer(self, value: Callable[[Any], int | None]) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            observations = []
            for pool, name in self._pools():
                observed = value(pool)
                if observed is not None:
                    observations.append(Observation(observed, {DB_POOL_NAME: name}))
            return observations

        return observe


def _is_queue_pool(pool: Any) -> bool:
    return all(callable(getattr(pool, attr, None)) for attr in ("size", "checkedin", "checkedout", "overflow"))


def _pool_max(pool: Any) -> int | None:
    max_overflow = getattr(pool, "_max_overflow", -1)
    if not isinstance(max_overflow, int) or max_overflow < 0:
        return None
    return int(pool.size()) + max_overflow


_sqlalchemy: weakref.WeakKeyDictionary[MeterProvider, _SqlAlchemyMetrics] = weakref.WeakKeyDictionary()


def _sqlalchemy_metrics(meter_provider: MeterProvider | None) -> _SqlAlchemyMetrics:
    provider = _provider(meter_provider)
    state = _sqlalchemy.get(provider)
    if state is None:
        with _lock:
            state = _sqlalchemy.get(provider)
            if state is None:
                state = _sqlalchemy[provider] = _SqlAlchemyMetrics(provider.get_meter(_SQLALCHEMY_SCOPE, _version()))
    return state


def _base_attributes(engine: Any) -> dict[str, str | int]:
    url = engine.url
    backend = url.get_backend_name()
    attrs: dict[str, str | int] = {"db.system.name": _DB_SYSTEM_NAMES.get(backend, backend)}
    if url.database:
        attrs["db.namespace"] = url.database
    if url.host:
        attrs["server.address"] = url.host
        if url.port:
            attrs["server.port"] = url.port
    return attrs


def _operation_name(statement: object) -> str | None:
    if not isinstance(statement, str):
        return None
    match = _OPERATION_RE.match(statement)
    return match.group(1).upper() if match else None


def instrument_engine(engine: Any, *, name: str | None = None, meter_provider: MeterProvider | None = None) -> str:
    """Add connection-pool and query-duration metrics for a SQLAlchemy engine, once per meter provider.

    Args:
        engine: A SQLAlchemy ``Engine`` or ``AsyncEngine``.
        name: The ``db.client.connection.pool.name``; :func:`pool_name` when ``None``.
        meter_provider: The meter provider; the global one when ``None``.

    Returns:
        The engine's pool name.
    """
    from sqlalchemy import event  # optional dependency

    sync_engine = _sync_engine(engine)
    state = _sqlalchemy_metrics(meter_provider)
    with _lock:
        info = state.engines.get(sync_engine)
        if info is not None:
            return info.pool_name
        info = _EngineInfo(name or pool_name(sync_engine), _base_attributes(sync_engine))
        state.engines[sync_engine] = info
    if not _is_queue_pool(sync_engine.pool):
        _logger.debug("Pool %s of %s has no size/checkout counts: query metrics only", type(sync_engine.pool), info)

    histogram = state.duration

    def before_cursor_execute(conn: Any, cursor: Any, statement: Any, params: Any, context: Any, many: Any) -> None:
        if context is not None:
            context._otel_sidecar_started = time.perf_counter()

    def after_cursor_execute(conn: Any, cursor: Any, statement: Any, params: Any, context: Any, many: Any) -> None:
        started = getattr(context, "_otel_sidecar_started", None)
        if started is not None:
            histogram.record(time.perf_counter() - started, _operation_attributes(info, statement))

    def handle_error(exception_context: Any) -> None:
        context = exception_context.execution_context
        started = getattr(context, "_otel_sidecar_started", None)
        if started is not None:
            attrs = _operation_attributes(info, exception_context.statement)
            error = exception_context.original_exception or exception_context.sqlalchemy_exception
            attrs["error.type"] = type(error).__qualname__ if error is not None else "_OTHER"
            histogram.record(time.perf_counter() - started, attrs)

    event.listen(sync_engine, "before_cursor_execute", before_cursor_execute)
    event.listen(sync_engine, "after_cursor_execute", after_cursor_execute)
    event.listen(sync_engine, "handle_error", handle_error)
    return info.pool_name


def _operation_attributes(info: _EngineInfo, statement: object) -> dict[str, str | int]:
    attrs = dict(info.base_attributes)
    operation = _operation_name(statement)
    if operation:
        attrs["db.operation.name"] = operation
    return attrs


def trace_engine(engine: Any, *, tracer_provider: Any = None, meter_provider: Any = None) -> bool:
    """Trace an engine with the OpenTelemetry SQLAlchemy instrumentor, unless it instruments globally already.

    When the instrumentor is already active (``opentelemetry-instrument``), engines made with
    ``create_engine`` afterwards are traced; an engine created *before* it was activated cannot be
    added without private API and stays untraced.

    Args:
        engine: A SQLAlchemy ``Engine`` or ``AsyncEngine``.
        tracer_provider: The tracer provider; the global one when ``None``.
        meter_provider: The meter provider; the global one when ``None``.

    Returns:
        Whether this call activated the instrumentor for the engine.
    """
    try:
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    except ImportError:
        _logger.warning("opentelemetry-instrumentation-sqlalchemy is not installed: no database spans")
        return False
    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        return False
    instrumentor.instrument(
        engine=_sync_engine(engine),
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        enable_commenter=False,
    )
    return True


_hooked: weakref.WeakSet[Any] = weakref.WeakSet()
_hook_listener: Callable[[Any], None] | None = None


def install_sqlalchemy_hook(meter_provider: MeterProvider | None = None) -> bool:
    """Call :func:`instrument_engine` for every engine when it opens its first connection.

    Listens to SQLAlchemy's ``engine_connect`` event on the ``Engine`` class, so it covers engines
    however they were created (``create_engine``, ``engine_from_config``, async engines).

    Args:
        meter_provider: The meter provider; the global one (looked up at connect time) when ``None``.

    Returns:
        Whether the hook was installed by this call.
    """
    global _hook_listener
    try:
        from sqlalchemy import event  # optional dependency
        from sqlalchemy.engine import Engine
    except ImportError:
        return False
    if _hook_listener is not None:
        return False

    def on_engine_connect(conn: Any) -> None:
        engine = conn.engine
        if engine in _hooked:
            return
        _hooked.add(engine)
        try:
            instrument_engine(engine, meter_provider=meter_provider)
        except Exception:  # never break the application's connection
            _logger.exception("Could not add connection-pool metrics for %s", engine)

    event.listen(Engine, "engine_connect", on_engine_connect)
    _hook_listener = on_engine_connect
    return True


def uninstall_sqlalchemy_hook() -> bool:
    """Remove the hook installed by :func:`install_sqlalchemy_hook` (engines keep their metrics).

    Returns:
        Whether a hook was removed.
    """
    global _hook_listener
    if _hook_listener is None:
        return False
    from sqlalchemy import event  # optional dependency
    from sqlalchemy.engine import Engine

    event.remove(Engine, "engine_connect", _hook_listener)
    _hook_listener = None
    _hooked.clear()
    return True
