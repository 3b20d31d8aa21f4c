"""JSON log lines on stdout, OTLP log export, request ids on every record, and redaction.

The sidecar configurator sets up two handlers on the root logger:

* a JSON handler (:func:`install_json_logging`, opt out with ``OTEL_SIDECAR_JSON_LOGS=false``)
  writing one JSON object per line to stdout with the fields ``timestamp`` (RFC 3339, UTC,
  milliseconds), ``level``, ``logger``, ``message``, ``trace_id``, ``span_id``, ``request_id``,
  ``correlation_id``, ``user_id`` (``null`` when unknown), then the record's ``extra=`` fields,
  ``exception`` and ``stack_info`` when present;
* an OTLP handler (:func:`install_otlp_log_handler`, opt out with
  ``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=false``) that hands records to the SDK's
  ``LoggerProvider``, whose :class:`SidecarLogRecordProcessor` adds ``request.id``,
  ``correlation.id`` and ``enduser.id`` attributes. Records of the ``opentelemetry.*`` loggers are
  not exported (an exporter failing to export must not feed itself); they still reach stdout.

Redaction (:mod:`instrumentation.redaction`) happens before either handler sees a record:
:func:`redact_record` formats the message with its arguments (values of sensitive keys in
mapping arguments replaced first), redacts the text, sets ``args`` to ``None`` and redacts every
``extra`` field by key and value, in place and once per record. :class:`SidecarLogRecordProcessor`
redacts the OTLP body and attributes again, which also covers records emitted straight through
the OpenTelemetry Logs API and the ``exception.*`` attributes the SDK derives from ``exc_info``.

The configurator protects both handlers from later logging configuration by the application:
``logging.basicConfig`` without ``force=True`` only applies its ``level`` (the JSON handler is the
console handler); ``dictConfig``/``fileConfig``/``basicConfig(force=True)`` that reconfigure the
root logger replace the JSON handler (the application then owns the console) but keep the OTLP
handler. Loggers that a ``dictConfig`` gives only console handlers and ``propagate: False``, such
as uvicorn's, are re-routed through the root handlers (``OTEL_SIDECAR_LOGS_ADOPT_CONSOLE_LOGGERS``),
so server logs are JSON and exported too.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import IO, Any, Final

from opentelemetry import trace
from opentelemetry._logs import LoggerProvider, get_logger_provider
from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord

from instrumentation import settings
from instrumentation.context import get_request_context
from instrumentation.redaction import Redactor, default_redactor

__all__ = [
    "JsonFormatter",
    "RedactingFilter",
    "SidecarLogRecordProcessor",
    "install_json_logging",
    "install_otlp_log_handler",
    "json_handler",
    "otlp_handler",
    "redact_record",
    "reset_logging",
]

_STANDARD_ATTRS: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
#: Record attributes that are presentation details, not data: never output as fields/attributes.
_IGNORED_ATTRS: Final = frozenset({"color_message", "otelSpanID", "otelTraceID", "otelTraceSampled", "otelServiceName"})
_JSON_FIELDS: Final = (
    "timestamp",
    "level",
    "logger",
    "message",
    "trace_id",
    "span_id",
    "request_id",
    "correlation_id",
    "user_id",
)
_EXCLUDED_FROM_OTLP: Final = ("opentelemetry",)


class _RedactedStr(str):
    """Marks a record message that :func:`redact_record` already processed."""

    __slots__ = ()


def _format_message(record: logging.LogRecord, redactor: Redactor) -> str:
    msg = str(record.msg)
    args = record.args
    if not args:
        return msg
    safe_args: Any = args
    if isinstance(args, Mapping):
        safe_args = {key: "[REDACTED]" if redactor.is_sensitive_key(key) else value for key, value in args.items()}
    try:
        return str(msg % safe_args)
    except (TypeError, ValueError, KeyError):
        try:
            return str(msg % args)
        except (TypeError, ValueError, KeyError):
            return f"{msg} {args!r}"


def redact_record(record: logging.LogRecord, redactor: Redactor | None = None) -> None:
    """Redact a ``logging.LogRecord`` in place: message, arguments, ``extra`` fields, exception text.

    After the call ``record.msg`` is the formatted, redacted message and ``record.args`` is
    ``None``. A record is processed once; later calls return immediately.

    Args:
        record: The record.
        redactor: The redactor; :func:`~instrumentation.redaction.default_redactor` when ``None``.
    """
    if isinstance(record.msg, _RedactedStr):
        return
    redactor = default_redactor() if redactor is None else redactor
    if not redactor.enabled:
        return
    record.msg = _RedactedStr(redactor.redact_text(_format_message(record, redactor)))
    record.args = None
    attrs = record.__dict__
    for key in [k for k in attrs if k not in _STANDARD_ATTRS and k not in _IGNORED_ATTRS]:
        attrs[key] = redactor.redact_value(key, attrs[key])
    if record.exc_text:
        record.exc_text = redactor.redact_text(record.exc_text)
    if record.stack_info:
        record.stack_info = redactor.redact_text(record.stack_info)


class RedactingFilter(logging.Filter):
    """A handler filter that redacts records in place (:func:`redact_record`) and drops none of them.

    Args:
        redactor: The redactor; the process-wide one when ``None``.
        exclude_loggers: Logger-name prefixes whose records are dropped (e.g. ``("opentelemetry",)``).
    """

    def __init__(self, redactor: Redactor | None = None, exclude_loggers: Iterable[str] = ()) -> None:
        super().__init__()
        self.redactor = redactor
        self.exclude_loggers = tuple(exclude_loggers)

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record``; return ``False`` only for excluded loggers."""
        name = record.name
        for prefix in self.exclude_loggers:
            if name == prefix or name.startswith(prefix + "."):
                return False
        redact_record(record, self.redactor)
        return True


def _extra_fields(record: logging.LogRecord) -> Iterable[tuple[str, Any]]:
    for key, value in record.__dict__.items():
        if key not in _STANDARD_ATTRS and key not in _IGNORED_ATTRS and not key.startswith("_"):
            yield key, value


class JsonFormatter(logging.Formatter):
    """Formats records as single-line JSON objects (see the module docstring for the fields).

    Trace and span ids come from the span current when the record is formatted, which is the
    span of the logging call for every handler that formats synchronously (``StreamHandler``).

    Args:
        redactor: The redactor; the process-wide one when ``None``.
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        """Return the JSON line (without the newline) for ``record``."""
        redactor = default_redactor() if self.redactor is None else self.redactor
        redact_record(record, redactor)
        span_context = trace.get_current_span().get_span_context()
        holder = get_request_context()
        payload: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": format(span_context.trace_id, "032x") if span_context.is_valid else None,
            "span_id": format(span_context.span_id, "016x") if span_context.is_valid else None,
            "request_id": holder.request_id if holder else None,
            "correlation_id": holder.correlation_id if holder else None,
            "user_id": holder.user_id if holder else None,
        }
        for key, value in _extra_fields(record):
            payload[f"extra_{key}" if key in payload else key] = value
        if record.exc_info:
            payload["exception"] = redactor.redact_text(self.formatException(record.exc_info))
        elif record.exc_text:
            payload["exception"] = record.exc_text
        if record.stack_info:
            payload["stack_info"] = record.stack_info
        return json.dumps(payload, default=str)


class SidecarLogRecordProcessor(LogRecordProcessor):
    """Adds request-context attributes to OTLP log records and redacts their body and attributes.

    Register it on the ``LoggerProvider`` *before* the exporting processor (the configurator
    does), so the exporter only ever sees redacted records. It runs synchronously in the thread
    that logged, where the request context is current.

    Args:
        redactor: The redactor; the process-wide one when ``None``.
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        self.redactor = redactor

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        """Enrich and redact ``log_record`` in place."""
        record = log_record.log_record
        attributes = record.attributes
        holder = get_request_context()
        try:
            if holder is not None and attributes is not None:
                for key, value in holder.attributes().items():
                    if key not in attributes:
                        attributes[key] = value  # type: ignore[index]
            redactor = default_redactor() if self.redactor is None else self.redactor
            if not redactor.enabled:
                return
            body = record.body
            if isinstance(body, str):
                record.body = redactor.redact_text(body)
            elif body is not None:
                record.body = redactor.redact_value(None, body)  # type: ignore[assignment]
            if attributes:
                for key in list(attributes):
                    current = attributes[key]
                    if key in _IGNORED_ATTRS:
                        del attributes[key]  # type: ignore[attr-defined]
                        continue
                    redacted = redactor.redact_value(key, current)
                    if redacted is not current and redacted != current:
                        attributes[key] = redacted  # type: ignore[index]
        except TypeError:
            # Immutable attributes (a record built by other code): nothing can be changed, and
            # the exporter must not see it unredacted, so blank the body.
            record.body = "[REDACTION FAILED]"

    def shutdown(self) -> None:
        """Do nothing: the processor holds no resources."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Do nothing: the processor buffers nothing."""
        return True


# --------------------------------------------------------------------------- installation

_lock = threading.RLock()
_json_handler: logging.Handler | None = None
_otlp_handler: logging.Handler | None = None
_otlp_target: logging.Logger | None = None
_originals: dict[str, Callable[..., Any]] = {}
_adopt_console_loggers = True


def json_handler() -> logging.Handler | None:
    """Return the JSON handler installed by :func:`install_json_logging`, if any."""
    return _json_handler


def otlp_handler() -> logging.Handler | None:
    """Return the OTLP handler installed by :func:`install_otlp_log_handler`, if any."""
    return _otlp_handler


def install_json_logging(
    stream: IO[str] | None = None,
    *,
    redactor: Redactor | None = None,
    adopt_console_loggers: bool | None = None,
) -> logging.Handler:
    """Add the JSON-lines handler to the root logger, once.

    Args:
        stream: Where to write; ``sys.stdout`` (looked up at each write) when ``None``.
        redactor: The redactor; the process-wide one when ``None``.
        adopt_console_loggers: Re-route console-only loggers configured by ``dictConfig``;
            ``OTEL_SIDECAR_LOGS_ADOPT_CONSOLE_LOGGERS`` (default ``true``) when ``None``.

    Returns:
        The handler (the existing one when already installed).
    """
    global _json_handler, _adopt_console_loggers
    with _lock:
        root = logging.getLogger()
        if _json_handler is not None and _json_handler in root.handlers:
            return _json_handler
        handler = logging.StreamHandler(stream) if stream is not None else _StdoutHandler()
        handler.setFormatter(JsonFormatter(redactor))
        handler.set_name("otel-sidecar-json")
        root.addHandler(handler)
        _json_handler = handler
        _adopt_console_loggers = (
            settings.env_flag(os.environ, settings.LOGS_ADOPT_CONSOLE_LOGGERS, True)
            if adopt_console_loggers is None
            else adopt_console_loggers
        )
        _wrap_logging_config()
        return handler


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A ``StreamHandler`` that writes to the *current* ``sys.stdout`` (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> IO[str]:
        return sys.stdout

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass


def _otlp_handler_class() -> type[logging.Handler]:
    try:
        from opentelemetry.instrumentation.logging.handler import LoggingHandler

        return LoggingHandler
    except ImportError:
        from opentelemetry.sdk._logs import LoggingHandler as SdkLoggingHandler

        return SdkLoggingHandler


def install_otlp_log_handler(
    logger_provider: LoggerProvider | None = None,
    *,
    redactor: Redactor | None = None,
    logger: logging.Logger | None = None,
) -> logging.Handler:
    """Add a handler that exports ``logging`` records through the OpenTelemetry Logs SDK, once.

    Uses ``opentelemetry-instrumentation-logging``'s ``LoggingHandler`` when installed, otherwise
    the SDK's (deprecated) one. Records are redacted first; ``opentelemetry.*`` records are dropped.

    Args:
        logger_provider: The provider; the global one when ``None``.
        redactor: The redactor; the process-wide one when ``None``.
        logger: The logger to attach to; the root logger when ``None``.

    Returns:
        The handler (the existing one when already installed on that logger).
    """
    global _otlp_handler, _otlp_target
    with _lock:
        target = logging.getLogger() if logger is None else logger
        if _otlp_handler is not None and _otlp_handler in target.handlers:
            return _otlp_handler
        provider = get_logger_provider() if logger_provider is None else logger_provider
        handler_class = _otlp_handler_class()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            handler = handler_class(level=logging.NOTSET, logger_provider=provider)  # type: ignore[call-arg]
        handler.addFilter(RedactingFilter(redactor, exclude_loggers=_EXCLUDED_FROM_OTLP))
        handler.set_name("otel-sidecar-otlp")
        target.addHandler(handler)
        _otlp_handler = handler
        _otlp_target = target
        _wrap_logging_config()
        return handler


def _is_console_handler(handler: logging.Handler) -> bool:
    stream = getattr(handler, "stream", None)
    return type(handler) is logging.StreamHandler and any(
        stream is candidate for candidate in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    )


def _adopt(logger_names: Iterable[str]) -> None:
    for name in logger_names:
        logger = logging.getLogger(name)
        if logger.propagate or not logger.handlers:
            continue
        if all(_is_console_handler(h) for h in logger.handlers):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True


def _json_active() -> bool:
    return _json_handler is not None and _json_handler in logging.getLogger().handlers


class _OtlpHandlerSetAside:
    """Takes the OTLP handler off the root logger for the duration of a logging-config call."""

    def __enter__(self) -> None:
        root = logging.getLogger()
        self.handler = _otlp_handler if _otlp_handler is not None and _otlp_handler in root.handlers else None
        if self.handler is not None:
            root.removeHandler(self.handler)

    def __exit__(self, *exc: object) -> None:
        if self.handler is not None:
            logging.getLogger().addHandler(self.handler)


def _wrap_logging_config() -> None:
    if _originals:
        return
    _originals["basicConfig"] = logging.basicConfig
    _originals["dictConfig"] = logging.config.dictConfig
    _originals["fileConfig"] = logging.config.fileConfig

    def basic_config(*args: Any, **kwargs: Any) -> None:
        with _lock, _OtlpHandlerSetAside():
            if _json_active() and not kwargs.get("force", False):
                level = kwargs.get("level")
                if level is not None:
                    logging.getLogger().setLevel(level)
                return
            _originals["basicConfig"](*args, **kwargs)

    def dict_config(config: Any) -> None:
        with _lock:
            with _OtlpHandlerSetAside():
                _originals["dictConfig"](config)
            if _adopt_console_loggers and _json_active() and isinstance(config, Mapping):
                _adopt((config.get("loggers") or {}).keys())

    def file_config(*args: Any, **kwargs: Any) -> None:
        with _lock, _OtlpHandlerSetAside():
            _originals["fileConfig"](*args, **kwargs)

    logging.basicConfig = basic_config
    logging.config.dictConfig = dict_config
    logging.config.fileConfig = file_config


def reset_logging() -> None:
    """Remove the handlers installed here and restore the logging configuration functions (tests)."""
    global _json_handler, _otlp_handler, _otlp_target
    with _lock:
        root = logging.getLogger()
        if _json_handler is not None:
            root.removeHandler(_json_handler)
            _json_handler.close()
        if _otlp_handler is not None:
            (_otlp_target or root).removeHandler(_otlp_handler)
            _otlp_handler.close()
        _json_handler = None
        _otlp_handler = None
        _otlp_target = None
        if _originals:
            logging.basicConfig = _originals.pop("basicConfig")
            logging.config.dictConfig = _originals.pop("dictConfig")
            logging.config.fileConfig = _originals.pop("fileConfig")
