"""ASGI middleware for request/correlation ids, and the hooks that add it to FastAPI apps.

:class:`RequestContextMiddleware` handles each HTTP request as follows:

1. The request id is the incoming ``X-Request-ID`` header when it is a safe token (1-128
   characters of ``A-Z a-z 0-9 . _ ~ : / + = @ -``), otherwise a new UUID4 (32 hex digits).
2. The correlation id is the incoming ``X-Correlation-ID`` header when safe, else the
   ``correlation.id`` entry of incoming W3C baggage, else the request id.
3. Both are echoed as ``X-Request-ID`` and ``X-Correlation-ID`` response headers (unless the
   application set them), including on 500 responses produced by Starlette's error middleware.
4. The request runs inside :func:`instrumentation.context.request_context`, which puts the ids on
   the server span, the log records and the baggage (see :mod:`instrumentation.context`).

Under ``opentelemetry-instrument`` the middleware is added to every FastAPI app automatically:
after the FastAPI instrumentor replaced ``fastapi.FastAPI`` with its instrumented subclass,
:func:`install_fastapi_hook` replaces it in turn with a subclass whose ``__init__`` calls
:func:`add_request_context`. That function wraps the app's ``build_middleware_stack`` and puts the
middleware just inside Starlette's outermost ``ServerErrorMiddleware``, i.e. *outside* the
OpenTelemetry middleware. Set ``OTEL_SIDECAR_REQUEST_CONTEXT=false`` to turn the hook off.

Without auto-instrumentation, call :func:`instrument_app` once the SDK is configured.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

from opentelemetry import baggage, propagate
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from instrumentation.context import CORRELATION_ID, ensure_propagator, ensure_span_processor, request_context

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = [
    "CORRELATION_ID_HEADER",
    "DEFAULT_EXCLUDED_URLS",
    "REQUEST_ID_HEADER",
    "RequestContextMiddleware",
    "add_request_context",
    "install_fastapi_hook",
    "instrument_app",
    "uninstall_fastapi_hook",
]

_logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER: Final = "x-request-id"
CORRELATION_ID_HEADER: Final = "x-correlation-id"

#: Health-check paths not traced (and not counted in HTTP metrics) when neither
#: ``OTEL_PYTHON_FASTAPI_EXCLUDED_URLS`` nor ``OTEL_PYTHON_EXCLUDED_URLS`` is set. Regexes
#: matched (``search``) against the full URL, comma-separated.
DEFAULT_EXCLUDED_URLS: Final = "/healthz/?$,/readyz/?$,/livez/?$,/health/?$"

_SAFE_ID: Final = re.compile(r"[A-Za-z0-9._~:/+=@-]{1,128}")

AppT = TypeVar("AppT", bound="Starlette")


def _safe_id(value: str | None) -> str | None:
    if value is not None and _SAFE_ID.fullmatch(value):
        return value
    return None


def _new_id() -> str:
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Pure ASGI middleware: request/correlation ids in, ids echoed out, context around the request.

    Args:
        app: The ASGI application to wrap.
        request_id_header: The request-id header (lower case).
        correlation_id_header: The correlation-id header (lower case).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        request_id_header: str = REQUEST_ID_HEADER,
        correlation_id_header: str = CORRELATION_ID_HEADER,
    ) -> None:
        self.app = app
        self.request_id_header = request_id_header.lower()
        self.correlation_id_header = correlation_id_header.lower()
        self._request_id_raw = self.request_id_header.encode("latin-1")
        self._correlation_id_raw = self.correlation_id_header.encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call; non-HTTP scopes pass through untouched."""
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        request_id, correlation_id = self._ids(scope)

        async def send_with_ids(message: Message) -> None:
            if message.get("type") == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {name.lower() for name, _ in headers}
                if self._request_id_raw not in present:
                    headers.append((self._request_id_raw, request_id.encode("latin-1")))
                if self._correlation_id_raw not in present:
                    headers.append((self._correlation_id_raw, correlation_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        with request_context(request_id, correlation_id):
            await self.app(scope, receive, send_with_ids)

    def _ids(self, scope: Scope) -> tuple[str, str]:
        request_id: str | None = None
        correlation_id: str | None = None
        has_baggage = False
        for raw_name, raw_value in scope.get("headers") or ():
            name = raw_name.lower()
            if name == self._request_id_raw:
                request_id = _safe_id(raw_value.decode("latin-1").strip())
            elif name == self._correlation_id_raw:
                correlation_id = _safe_id(raw_value.decode("latin-1").strip())
            elif name == b"baggage":
                has_baggage = True
        request_id = request_id or _new_id()
        if correlation_id is None and has_baggage:
            correlation_id = _safe_id(_baggage_correlation_id(scope))
        return request_id, correlation_id or request_id


def _baggage_correlation_id(scope: Scope) -> str | None:
    carrier: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers") or ():
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        carrier[name] = f"{carrier[name]},{value}" if name in carrier else value
    value = baggage.get_baggage(CORRELATION_ID, propagate.extract(carrier))
    return value if isinstance(value, str) else None


def add_request_context(app: AppT, **options: str) -> AppT:
    """Add :class:`RequestContextMiddleware` to a Starlette/FastAPI app, once.

    The middleware goes just inside the app's outermost ``ServerErrorMiddleware``, so it wraps the
    OpenTelemetry middleware when that was added first (FastAPI instrumentor) and still sees every
    response, 500s included. Safe to call on an app that already served requests (its middleware
    stack is rebuilt on the next request).

    Args:
        app: The application.
        **options: Keyword arguments for :class:`RequestContextMiddleware` (header names).

    Returns:
        The same app.
    """
    if getattr(app, "_otel_sidecar_request_context", False):
        return app
    from starlette.middleware.errors import ServerErrorMiddleware  # optional dependency

    original_build = app.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        stack = original_build()
        if isinstance(stack, ServerErrorMiddleware):
            stack.app = RequestContextMiddleware(stack.app, **options)
            return stack
        return RequestContextMiddleware(stack, **options)

    setattr(app, "build_middleware_stack", build_middleware_stack)  # noqa: B010 - method override on an instance
    setattr(app, "_otel_sidecar_request_context", True)  # noqa: B010
    app.middleware_stack = None
    ensure_span_processor()
    return app


_original_fastapi: type | None = None


def install_fastapi_hook() -> bool:
    """Make every FastAPI app created from now on get :func:`add_request_context`.

    Replaces ``fastapi.FastAPI`` (whatever it currently is, normally the FastAPI instrumentor's
    subclass) with a subclass that calls :func:`add_request_context` at the end of ``__init__``.
    Apps must be created after this call, which is the case under ``opentelemetry-instrument``.

    Returns:
        Whether the hook was installed by this call (``False`` when already installed or FastAPI
        is not importable).
    """
    global _original_fastapi
    try:
        import fastapi  # optional dependency
    except ImportError:
        return False
    current: type = fastapi.FastAPI
    if getattr(current, "_otel_sidecar_hooked", False):
        return False

    base_init: Callable[..., None] = current.__init__  # type: ignore[misc]

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        base_init(self, *args, **kwargs)
        add_request_context(self)

    hooked = type(current.__name__, (current,), {"__init__": __init__, "_otel_sidecar_hooked": True})
    hooked.__module__ = current.__module__
    hooked.__qualname__ = current.__qualname__
    hooked.__doc__ = current.__doc__
    _original_fastapi = current
    fastapi.FastAPI = hooked  # type: ignore[misc,assignment]
    ensure_span_processor()
    ensure_propagator()
    return True


def uninstall_fastapi_hook() -> bool:
    """Undo :func:`install_fastapi_hook` (apps already created keep their middleware).

    Returns:
        Whether a hook was removed.
    """
    global _original_fastapi
    if _original_fastapi is None:
        return False
    import fastapi  # optional dependency

    fastapi.FastAPI = _original_fastapi  # type: ignore[misc,assignment]
    _original_fastapi = None
    return True


def instrument_app(
    app: AppT,
    engine: object | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    excluded_urls: str | None = None,
) -> AppT:
    """Instrument an application by hand (without ``opentelemetry-instrument``).

    Call it after the OpenTelemetry SDK is configured. It:

    * instruments a FastAPI app with ``FastAPIInstrumentor.instrument_app`` (when installed and the
      app is not instrumented yet), excluding health checks (:data:`DEFAULT_EXCLUDED_URLS`) unless
      ``excluded_urls`` or the ``OTEL_PYTHON_*EXCLUDED_URLS`` variables say otherwise;
    * adds :class:`RequestContextMiddleware` (:func:`add_request_context`);
    * registers :class:`~instrumentation.context.RequestContextSpanProcessor` on the tracer provider
      and wraps the global propagator (:class:`~instrumentation.context.RequestContextPropagator`);
    * with ``engine``, traces it with the SQLAlchemy instrumentor (when that is not instrumenting
      globally already) and adds pool and query metrics (:func:`instrumentation.metrics.instrument_engine`).

    Args:
        app: A FastAPI or Starlette application.
        engine: A SQLAlchemy ``Engine`` or ``AsyncEngine``.
        tracer_provider: The tracer provider; the global one when ``None``.
        meter_provider: The meter provider; the global one when ``None``.
        excluded_urls: Comma-separated URL regexes not to trace.

    Returns:
        The same app.
    """
    from instrumentation.distro import fastapi_excluded_urls  # avoid an import cycle

    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    except ImportError:
        _logger.warning("opentelemetry-instrumentation-fastapi is not installed: no server spans or HTTP metrics")
    else:
        if hasattr(app, "openapi") and not getattr(app, "_is_instrumented_by_opentelemetry", False):
            urls = excluded_urls if excluded_urls is not None else fastapi_excluded_urls()
            FastAPIInstrumentor.instrument_app(
                app,  # type: ignore[arg-type]
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
                excluded_urls=urls,
            )
    add_request_context(app)
    ensure_span_processor(tracer_provider)
    ensure_propagator()
    if engine is not None:
        from instrumentation.metrics import instrument_engine, trace_engine

        trace_engine(engine, tracer_provider=tracer_provider, meter_provider=meter_provider)
        instrument_engine(engine, meter_provider=meter_provider)
    return app
