"""The ``sidecar`` OpenTelemetry configurator: SDK setup plus resource, logging and request context.

Entry point ``opentelemetry_configurator: sidecar = instrumentation.configurator:SidecarConfigurator``;
selected by ``OTEL_PYTHON_CONFIGURATOR=sidecar``, which the sidecar distro sets by default.

:class:`SidecarConfigurator` subclasses the SDK's ``_OTelSDKConfigurator`` (as that class asks
distros to do) and calls the SDK's component initialisation with:

* ``resource_attributes`` from :func:`instrumentation.resource.resource_attributes` (service
  identity, deployment environment, Kubernetes Downward-API variables; user ``OTEL_*`` wins);
* a :class:`~instrumentation.logging.SidecarLogRecordProcessor` ahead of the exporting log
  processor (request ids on and redaction of every OTLP log record);
* ``setup_logging_handler=False``: the SDK's handler behind
  ``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED`` is deprecated (and would warn), so when that
  variable is not ``false`` the configurator installs the OTLP handler itself
  (:func:`~instrumentation.logging.install_otlp_log_handler`), with redaction.

Then it adds the JSON stdout handler (``OTEL_SIDECAR_JSON_LOGS``), sets the root logger level
(``OTEL_SIDECAR_LOG_LEVEL``, default ``INFO``), registers the request-context span processor,
wraps the global propagator so request ids travel in baggage, warns about libraries outside
their instrumentor's supported range (``OTEL_SIDECAR_COMPAT_CHECK``) and installs the SIGTERM
flush (``OTEL_SIDECAR_FLUSH_ON_SIGTERM``).

**SIGTERM flush.** The SDK flushes its batches from an ``atexit`` hook, which does not run when a
process dies of a signal. uvicorn handles SIGTERM with a graceful shutdown and then *re-raises*
SIGTERM with the previous (default) handler, so without help every pod termination would lose the
last seconds of spans and logs and the last metric interval. When SIGTERM still has its default
disposition at configuration time (in the main thread), :func:`install_sigterm_flush` installs a
handler that shuts the tracer, meter and logger providers down (flushing them, in a helper
thread, for at most ``OTEL_SIDECAR_SHUTDOWN_TIMEOUT`` seconds, default 10) and then re-raises
SIGTERM with the default disposition, so the exit status is unchanged. Servers that install their
own SIGTERM handler later (gunicorn workers) replace it; uvicorn saves it and calls it last.

Exporters, sampler, batch sizes and intervals are the SDK's, configured by the standard
``OTEL_*`` variables.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import Any

from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._configuration import _OTelSDKConfigurator

from instrumentation import settings
from instrumentation.compat import warn_unsupported_instrumentations
from instrumentation.context import ensure_propagator, ensure_span_processor
from instrumentation.logging import SidecarLogRecordProcessor, install_json_logging, install_otlp_log_handler
from instrumentation.redaction import default_redactor
from instrumentation.resource import resource_attributes

__all__ = ["SidecarConfigurator", "install_sigterm_flush", "shutdown_providers"]

_logger = logging.getLogger(__name__)


def shutdown_providers(timeout: float = 10.0) -> bool:
    """Shut the global tracer, meter and logger providers down, flushing what they buffer.

    Runs in a helper thread joined for at most ``timeout`` seconds, so a lock held by the
    interrupted main thread or an unreachable collector cannot hang the process.

    Args:
        timeout: Seconds to wait.

    Returns:
        Whether the shutdown finished in time.
    """

    def run() -> None:
        for provider in (trace.get_tracer_provider(), metrics.get_meter_provider(), _logs.get_logger_provider()):
            shutdown = getattr(provider, "shutdown", None)
            if callable(shutdown):
                try:
                    shutdown()
                except Exception:  # one failing provider must not stop the others
                    _logger.exception("Shutting down %s failed", type(provider).__name__)

    worker = threading.Thread(target=run, name="otel-sidecar-shutdown", daemon=True)
    worker.start()
    worker.join(timeout)
    return not worker.is_alive()


def install_sigterm_flush(timeout: float | None = None) -> bool:
    """Flush the SDK on SIGTERM, then die of SIGTERM as before (see the module docstring).

    Args:
        timeout: Seconds allowed for the flush; ``OTEL_SIDECAR_SHUTDOWN_TIMEOUT`` (default 10) when ``None``.

    Returns:
        Whether the handler was installed (only from the main thread, over the default disposition).
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return False
    if timeout is None:
        try:
            timeout = float(os.environ.get(settings.SHUTDOWN_TIMEOUT, "10"))
        except ValueError:
            timeout = 10.0
    budget = timeout

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        shutdown_providers(budget)
        signal.raise_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
    return True


class SidecarConfigurator(_OTelSDKConfigurator):
    """Configures the OpenTelemetry SDK for an application instrumented for otel-sidecar."""

    def _configure(self, **kwargs: Any) -> None:
        """Initialise the SDK and the sidecar additions.

        Args:
            **kwargs: Passed by ``opentelemetry-instrument`` (``auto_instrumentation_version``) or
                by a caller; they win over the sidecar's values, except that
                ``log_record_processors`` are appended after the sidecar's own processor.
        """
        env = os.environ
        redactor = default_redactor()
        attributes = resource_attributes(env)
        attributes.update(kwargs.pop("resource_attributes", None) or {})
        user_processors = list(kwargs.pop("log_record_processors", None) or [])
        otlp_logs = settings.env_flag(env, settings.LOGGING_AUTO_INSTRUMENTATION, True)
        kwargs.setdefault("setup_logging_handler", False)
        super()._configure(  # type: ignore[no-untyped-call]
            resource_attributes=attributes,
            log_record_processors=[SidecarLogRecordProcessor(redactor), *user_processors],
            **kwargs,
        )
        json_logs = settings.env_flag(env, settings.JSON_LOGS, True)
        if otlp_logs:
            install_otlp_log_handler(redactor=redactor)
        if json_logs:
            install_json_logging(redactor=redactor)
        if otlp_logs or json_logs:
            logging.getLogger().setLevel(settings.env_log_level(env, settings.LOG_LEVEL, logging.INFO))
        ensure_span_processor()
        ensure_propagator()
        if settings.env_flag(env, settings.COMPAT_CHECK, True):
            warn_unsupported_instrumentations()
        if settings.env_flag(env, settings.FLUSH_ON_SIGTERM, True):
            install_sigterm_flush()
