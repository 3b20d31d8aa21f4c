"""Per-request context: request id, correlation id and authenticated user id.

A :class:`RequestContext` is created for each HTTP request by
:class:`instrumentation.middleware.RequestContextMiddleware` (or for any unit of work with
:func:`request_context`) and stored in a :class:`contextvars.ContextVar`. It is a small *mutable*
holder: FastAPI runs synchronous dependencies and endpoints in a thread pool with a *copy* of the
context, so a value set there (``set_user_id`` in an auth dependency) would be lost if it were a
context variable of its own; mutating the shared holder makes it visible to the middleware, to
every later log record and to outgoing calls.

Where the ids go:

* **server span** attributes ``request.id``, ``correlation.id`` and ``enduser.id``, set by
  :class:`RequestContextSpanProcessor` when the server span starts (and by :func:`set_user_id`);
* **log records**: ``request_id``/``correlation_id``/``user_id`` fields of the JSON lines and
  ``request.id``/``correlation.id``/``enduser.id`` attributes of OTLP log records
  (see :mod:`instrumentation.logging`);
* **W3C baggage** of outgoing calls: keys listed in ``OTEL_SIDECAR_BAGGAGE_KEYS`` (default
  ``request.id,correlation.id,enduser.id``). They are attached to the OpenTelemetry context; and
  :class:`RequestContextPropagator`, which wraps the global propagator, sets them again when the
  tracing middleware extracts the incoming context (which would otherwise drop them) and at
  injection time (a thread-pool copy of the context cannot see a later ``set_user_id``).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Final

from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import Span as SdkSpan

from instrumentation import settings

__all__ = [
    "CORRELATION_ID",
    "ENDUSER_ID",
    "REQUEST_ID",
    "RequestContext",
    "RequestContextPropagator",
    "RequestContextSpanProcessor",
    "baggage_keys",
    "ensure_propagator",
    "ensure_span_processor",
    "get_request_context",
    "request_context",
    "set_user_id",
]

_logger = logging.getLogger(__name__)

#: Span, log and baggage attribute holding the request id (``X-Request-ID``).
REQUEST_ID: Final = "request.id"
#: Span, log and baggage attribute holding the correlation id (``X-Correlation-ID``).
CORRELATION_ID: Final = "correlation.id"
#: Span, log and baggage attribute holding the authenticated user's id (semantic convention ``enduser.id``).
ENDUSER_ID: Final = "enduser.id"


@dataclass(slots=True, eq=False)
class RequestContext:
    """The ids of the request being handled.

    Attributes:
        request_id: The request's id (incoming ``X-Request-ID`` or a generated one).
        correlation_id: The id shared by every request of one business transaction.
        user_id: The authenticated user's id, once :func:`set_user_id` was called.
        server_span: The request's server span, once it started.
    """

    request_id: str
    correlation_id: str
    user_id: str | None = None
    server_span: trace.Span | None = field(default=None, repr=False)

    def attributes(self) -> dict[str, str]:
        """Return the ids as span/log attributes (``request.id``, ``correlation.id``, ``enduser.id``)."""
        attrs = {REQUEST_ID: self.request_id, CORRELATION_ID: self.correlation_id}
        if self.user_id is not None:
            attrs[ENDUSER_ID] = self.user_id
        return attrs


_current: ContextVar[RequestContext | None] = ContextVar("otel_sidecar_request_context", default=None)


def get_request_context() -> RequestContext | None:
    """Return the context of the request being handled, or ``None`` outside of a request."""
    return _current.get()


def baggage_keys(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """Return the request-context keys to propagate in W3C baggage (``OTEL_SIDECAR_BAGGAGE_KEYS``).

    Args:
        environ: The environment to read; ``os.environ`` when ``None``.
    """
    env = os.environ if environ is None else environ
    return frozenset(settings.env_list(env, settings.BAGGAGE_KEYS, settings.DEFAULT_BAGGAGE_KEYS))


@contextmanager
def request_context(request_id: str, correlation_id: str | None = None) -> Iterator[RequestContext]:
    """Run a block of code as one request: ids on logs, spans and baggage.

    The middleware uses it for HTTP requests; use it directly for other units of work such as
    queue consumers or scheduled jobs.

    Args:
        request_id: The request id.
        correlation_id: The correlation id; defaults to the request id.

    Yields:
        The new, current :class:`RequestContext`.
    """
    holder = RequestContext(request_id=request_id, correlation_id=correlation_id or request_id)
    token = _current.set(holder)
    keys = baggage_keys()
    ctx = otel_context.get_current()
    for key, value in ((REQUEST_ID, holder.request_id), (CORRELATION_ID, holder.correlation_id)):
        if key in keys:
            ctx = baggage.set_baggage(key, value, ctx)
    otel_token = otel_context.attach(ctx)
    try:
        _tag_current_server_span(holder)
        yield holder
    finally:
        otel_context.detach(otel_token)
        _current.reset(token)


def set_user_id(user_id: object) -> None:
    """Record the authenticated user of the current request.

    Call it from the application's authentication dependency once the user is known. The id is
    put on the request's server span (``enduser.id``), on every later log record of the request
    (``user_id``) and in the baggage of later outgoing calls. Outside of a request it only sets
    ``enduser.id`` on the current span. Calling it again replaces the id; ``None`` clears it from
    the log records (span attributes cannot be removed).

    Args:
        user_id: The user's id; converted with ``str()``.
    """
    value = None if user_id is None else str(user_id)
    holder = _current.get()
    if holder is None:
        span = trace.get_current_span()
        if value is not None and span.is_recording():
            span.set_attribute(ENDUSER_ID, value)
        return
    holder.user_id = value
    if value is None:
        return
    if holder.server_span is not None and holder.server_span.is_recording():
        holder.server_span.set_attribute(ENDUSER_ID, value)
    if ENDUSER_ID in baggage_keys():
        # Never detached on purpose: the request's context is reset by the middleware when the
        # request ends, which drops this too.
        otel_context.attach(baggage.set_baggage(ENDUSER_ID, value))


def _is_server_span(span: object) -> bool:
    return getattr(span, "kind", None) is trace.SpanKind.SERVER


def _tag_current_server_span(holder: RequestContext) -> None:
    """Tag the current span if it is a server span (middleware placed inside the tracing middleware)."""
    span = trace.get_current_span()
    if holder.server_span is None and span.is_recording() and _is_server_span(span):
        span.set_attributes(holder.attributes())
        holder.server_span = span


class RequestContextSpanProcessor(SpanProcessor):
    """Puts the request-context ids on the first server span started within a request.

    The request-context middleware runs *outside* the OpenTelemetry ASGI middleware so that it
    also answers requests that fail with a 500; the server span therefore starts after the ids
    are known, and this processor copies them onto it in :meth:`on_start`.
    """

    def on_start(self, span: SdkSpan, parent_context: Context | None = None) -> None:
        """Tag ``span`` with the request ids if it is the request's server span."""
        holder = _current.get()
        if holder is None or holder.server_span is not None or not _is_server_span(span):
            return
        span.set_attributes(holder.attributes())
        holder.server_span = span

    def on_end(self, span: ReadableSpan) -> None:
        """Do nothing: the ids were set at start."""

    def shutdown(self) -> None:
        """Do nothing: the processor holds no resources."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Do nothing: the processor buffers nothing."""
        return True


def _with_request_baggage(ctx: Context) -> Context:
    holder = _current.get()
    if holder is None:
        return ctx
    keys = baggage_keys()
    for key, value in holder.attributes().items():
        if key in keys and baggage.get_baggage(key, ctx) != value:
            ctx = baggage.set_baggage(key, value, ctx)
    return ctx


class RequestContextPropagator(TextMapPropagator):
    """Wraps a propagator so that baggage always carries the current request's ids.

    * **inject**: :func:`set_user_id` called from a thread-pool dependency cannot change the
      OpenTelemetry context of the code that runs afterwards (each thread-pool call gets a copy),
      so the user id would be missing from the baggage of later outgoing calls. The wrapper reads
      the shared :class:`RequestContext` at injection time and sets its ids in the baggage.
    * **extract**: the tracing middleware replaces the current context with the one extracted
      from the incoming request, which would drop the ids the request-context middleware put in
      baggage; the wrapper sets them in the extracted context. The current request's ids win over
      incoming ones (an upstream service's ``request.id`` is not this request's id).

    Args:
        inner: The propagator to wrap (usually the global composite propagator).
    """

    def __init__(self, inner: TextMapPropagator) -> None:
        self.inner = inner

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        """Delegate to the wrapped propagator, then add the current request's ids to the baggage."""
        return _with_request_baggage(self.inner.extract(carrier, context, getter))

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        """Set the current request's ids in the context's baggage, then delegate."""
        if _current.get() is not None:
            context = _with_request_baggage(context if context is not None else otel_context.get_current())
        self.inner.inject(carrier, context, setter)

    @property
    def fields(self) -> set[str]:
        """The wrapped propagator's fields."""
        return self.inner.fields


_lock = threading.Lock()
_providers_with_processor: weakref.WeakSet[object] = weakref.WeakSet()


def ensure_span_processor(tracer_provider: object | None = None) -> bool:
    """Add a :class:`RequestContextSpanProcessor` to a tracer provider, once.

    Args:
        tracer_provider: An SDK ``TracerProvider``; the global one when ``None``. Providers
            without ``add_span_processor`` (the API's no-op and proxy providers) are skipped.

    Returns:
        Whether the processor was added by this call.
    """
    provider = trace.get_tracer_provider() if tracer_provider is None else tracer_provider
    add = getattr(provider, "add_span_processor", None)
    if add is None:
        _logger.debug("Tracer provider %r takes no span processors; request ids not added to spans", provider)
        return False
    with _lock:
        if provider in _providers_with_processor:
            return False
        add(RequestContextSpanProcessor())
        _providers_with_processor.add(provider)
    return True


def ensure_propagator() -> bool:
    """Wrap the global propagator in a :class:`RequestContextPropagator`, once.

    Returns:
        Whether the global propagator was replaced by this call.
    """
    with _lock:
        current = propagate.get_global_textmap()
        if isinstance(current, RequestContextPropagator):
            return False
        propagate.set_global_textmap(RequestContextPropagator(current))
    return True
