"""otel-sidecar instrumentation: the OpenTelemetry distro for FastAPI + SQLAlchemy services.

Install the ``otel-sidecar`` distribution in the application's environment and run it with::

    OTEL_SERVICE_NAME=auth-api opentelemetry-instrument uvicorn app.main:app

The ``sidecar`` distro (:mod:`instrumentation.distro`) and configurator
(:mod:`instrumentation.configurator`) are selected automatically when they are the only ones
installed, or with ``OTEL_PYTHON_DISTRO=sidecar`` and ``OTEL_PYTHON_CONFIGURATOR=sidecar``. The
application gets traces, metrics and logs over OTLP/gRPC to the sidecar on ``localhost:4317``,
request/correlation/user ids on spans, logs and baggage, JSON logs on stdout with secrets
redacted, and SQLAlchemy pool and query metrics.

The application code uses only this module's public API:

* :func:`set_user_id`: from the authentication dependency, once the user is known;
* :func:`record_login_attempt`, :func:`record_registration`, :func:`record_cache_hit`,
  :func:`record_cache_miss`, :func:`record_cache_request`: business counters;
* :func:`instrument_app` and :func:`instrument_engine`: manual set-up without
  ``opentelemetry-instrument``;
* :func:`get_request_context` and :func:`request_context`: the current ids, and a request
  context for non-HTTP work.

Importing this package imports neither FastAPI nor SQLAlchemy.
"""

from __future__ import annotations

import importlib.metadata as _metadata

from instrumentation.context import RequestContext, get_request_context, request_context, set_user_id
from instrumentation.metrics import (
    instrument_engine,
    record_cache_hit,
    record_cache_miss,
    record_cache_request,
    record_login_attempt,
    record_registration,
)
from instrumentation.middleware import instrument_app

try:
    __version__ = _metadata.version("otel-sidecar")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "RequestContext",
    "__version__",
    "get_request_context",
    "instrument_app",
    "instrument_engine",
    "record_cache_hit",
    "record_cache_miss",
    "record_cache_request",
    "record_login_attempt",
    "record_registration",
    "request_context",
    "set_user_id",
]
