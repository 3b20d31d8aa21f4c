"""Environment variables read by the ``instrumentation`` package, and helpers to parse them.

Every variable that otel-sidecar's instrumentation adds (as opposed to the standard ``OTEL_*``
variables of the OpenTelemetry SDK) starts with ``OTEL_SIDECAR_`` and is listed here, so the
whole surface is in one place:

===========================================  =========  ==========================================================
variable                                     default    meaning
===========================================  =========  ==========================================================
``OTEL_SIDECAR_JSON_LOGS``                   ``true``   JSON lines on stdout (see :mod:`instrumentation.logging`)
``OTEL_SIDECAR_LOG_LEVEL``                   ``INFO``   root logger level set by the configurator
``OTEL_SIDECAR_LOGS_ADOPT_CONSOLE_LOGGERS``  ``true``   route console-only loggers set up by ``dictConfig``
                                                        (uvicorn's) through the root logger's JSON/OTLP handlers
``OTEL_SIDECAR_REQUEST_CONTEXT``             ``true``   add the request-context middleware to FastAPI apps
``OTEL_SIDECAR_BAGGAGE_KEYS``                see below  request-context keys put in W3C baggage for outgoing calls
``OTEL_SIDECAR_DB_METRICS``                  ``true``   pool and query-duration metrics for SQLAlchemy engines
``OTEL_SIDECAR_COMPAT_CHECK``                ``true``   warn about libraries outside their instrumentor's range
``OTEL_SIDECAR_FLUSH_ON_SIGTERM``            ``true``   flush the SDK when SIGTERM ends the process
``OTEL_SIDECAR_SHUTDOWN_TIMEOUT``            ``10``     seconds allowed for that flush
``OTEL_SIDECAR_REDACT``                      ``true``   master switch of in-process redaction
``OTEL_SIDECAR_REDACT_<PRESET>``             ``true``   one switch per preset: ``SECRETS``, ``BEARER``, ``JWT``,
                                                        ``API_KEYS``, ``CARDS``, ``EMAILS``
``OTEL_SIDECAR_REDACT_EXTRA_KEYS``           empty      comma-separated extra sensitive key names
===========================================  =========  ==========================================================

``OTEL_SIDECAR_BAGGAGE_KEYS`` defaults to ``request.id,correlation.id,enduser.id``; set it to an
empty string to put nothing in baggage.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

JSON_LOGS: Final = "OTEL_SIDECAR_JSON_LOGS"
LOG_LEVEL: Final = "OTEL_SIDECAR_LOG_LEVEL"
LOGS_ADOPT_CONSOLE_LOGGERS: Final = "OTEL_SIDECAR_LOGS_ADOPT_CONSOLE_LOGGERS"
REQUEST_CONTEXT: Final = "OTEL_SIDECAR_REQUEST_CONTEXT"
BAGGAGE_KEYS: Final = "OTEL_SIDECAR_BAGGAGE_KEYS"
DB_METRICS: Final = "OTEL_SIDECAR_DB_METRICS"
COMPAT_CHECK: Final = "OTEL_SIDECAR_COMPAT_CHECK"
FLUSH_ON_SIGTERM: Final = "OTEL_SIDECAR_FLUSH_ON_SIGTERM"
SHUTDOWN_TIMEOUT: Final = "OTEL_SIDECAR_SHUTDOWN_TIMEOUT"
REDACT: Final = "OTEL_SIDECAR_REDACT"
REDACT_PREFIX: Final = "OTEL_SIDECAR_REDACT_"
REDACT_EXTRA_KEYS: Final = "OTEL_SIDECAR_REDACT_EXTRA_KEYS"

#: The SDK's switch for exporting ``logging`` records over OTLP. The sidecar configurator
#: honours it (default ``true``) but installs the handler itself; see :mod:`instrumentation.configurator`.
LOGGING_AUTO_INSTRUMENTATION: Final = "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED"

DEFAULT_BAGGAGE_KEYS: Final = "request.id,correlation.id,enduser.id"

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


def env_flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    """Read a boolean environment variable.

    Args:
        environ: The environment to read (usually ``os.environ``).
        name: The variable's name.
        default: The value when the variable is unset, empty or not a recognised boolean.

    Returns:
        ``True`` for ``1/true/yes/on``, ``False`` for ``0/false/no/off`` (case-insensitive),
        otherwise ``default``.
    """
    raw = environ.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    return default


def env_list(environ: Mapping[str, str], name: str, default: str = "") -> list[str]:
    """Read a comma-separated environment variable into a list of non-empty, stripped items.

    Args:
        environ: The environment to read.
        name: The variable's name.
        default: The raw value used when the variable is unset.

    Returns:
        The items, in order, without empty ones.
    """
    raw = environ.get(name, default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_log_level(environ: Mapping[str, str], name: str, default: int = logging.INFO) -> int:
    """Read a logging level by name (``DEBUG``, ``info``...) or number.

    Args:
        environ: The environment to read.
        name: The variable's name.
        default: The level when the variable is unset or not a level.

    Returns:
        The numeric logging level.
    """
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if raw.isdigit():
        return int(raw)
    level = logging.getLevelName(raw.upper())
    return level if isinstance(level, int) else default
