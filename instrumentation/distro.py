"""The ``sidecar`` OpenTelemetry distro: defaults for shipping to the otel-sidecar agent.

Entry point ``opentelemetry_distro: sidecar = instrumentation.distro:SidecarDistro``. Select it
with ``OTEL_PYTHON_DISTRO=sidecar`` (or have it be the only distro installed) and run the
application with ``opentelemetry-instrument``. ``opentelemetry-instrument`` then calls, in order:

1. :meth:`SidecarDistro.configure`, which only ``setdefault``\\ s environment variables
   (:data:`ENV_DEFAULTS`), so every variable the user sets wins;
2. the configurator named by ``OTEL_PYTHON_CONFIGURATOR``, which defaults to ``sidecar``
   (:class:`instrumentation.configurator.SidecarConfigurator`);
3. :meth:`SidecarDistro.load_instrumentor` for each installed instrumentor, which passes
   sidecar defaults and adds the request-context middleware and database metrics hooks.

Defaults set (``setdefault``):

=====================================================  ==========================================
``OTEL_PYTHON_CONFIGURATOR``                           ``sidecar``
``OTEL_EXPORTER_OTLP_PROTOCOL``                        ``grpc``
``OTEL_EXPORTER_OTLP_ENDPOINT``                        ``http://localhost:4317`` (``:4318`` when
                                                       the protocol is ``http/protobuf`` or ``http/json``)
``OTEL_TRACES_EXPORTER``/``METRICS``/``LOGS``          ``otlp``
``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE``  ``delta`` (counters and histograms; the
                                                       sidecar accumulates them)
``OTEL_METRICS_EXEMPLAR_FILTER``                       ``trace_based``
``OTEL_METRIC_EXPORT_INTERVAL``                        ``15000`` ms (a typical scrape interval;
                                                       the SDK default is 60 s)
``OTEL_SEMCONV_STABILITY_OPT_IN``                      ``http`` (stable HTTP semantic conventions)
``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED``   ``true`` (export ``logging`` over OTLP)
=====================================================  ==========================================

Instrumentor arguments (:func:`instrumentor_kwargs`): FastAPI gets ``excluded_urls`` for health
checks (:data:`instrumentation.middleware.DEFAULT_EXCLUDED_URLS`) unless
``OTEL_PYTHON_FASTAPI_EXCLUDED_URLS`` or ``OTEL_PYTHON_EXCLUDED_URLS`` is set; SQLAlchemy gets
``enable_commenter=False`` (no SQL comments appended to queries, which would defeat statement
caches). The ``logging`` instrumentor is skipped while the configurator's OTLP log handler is
installed, as it would add a second one.

Hooks installed after an instrumentor loads: after ``fastapi``, the request-context middleware
for every FastAPI app created afterwards (:func:`instrumentation.middleware.install_fastapi_hook`;
``OTEL_SIDECAR_REQUEST_CONTEXT=false`` turns it off); after ``sqlalchemy``, pool and query
metrics for every engine (:func:`instrumentation.metrics.install_sqlalchemy_hook`;
``OTEL_SIDECAR_DB_METRICS=false``). With an instrumentor disabled through
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` its hook is not installed either; call
:func:`instrumentation.instrument_app` / :func:`instrumentation.instrument_engine` instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, MutableMapping
from importlib.metadata import EntryPoint
from typing import Any, Final

# mypy cannot see BaseDistro in the installed stubs-less module (it resolves to Any); it exists at run time.
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]

from instrumentation import settings

__all__ = [
    "ENV_DEFAULTS",
    "SidecarDistro",
    "apply_env_defaults",
    "fastapi_excluded_urls",
    "instrumentor_kwargs",
]

_logger = logging.getLogger(__name__)

#: Environment defaults applied with ``setdefault`` by :meth:`SidecarDistro.configure`.
ENV_DEFAULTS: Final[Mapping[str, str]] = {
    "OTEL_PYTHON_CONFIGURATOR": "sidecar",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_METRICS_EXPORTER": "otlp",
    "OTEL_LOGS_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta",
    "OTEL_METRICS_EXEMPLAR_FILTER": "trace_based",
    "OTEL_METRIC_EXPORT_INTERVAL": "15000",
    "OTEL_SEMCONV_STABILITY_OPT_IN": "http",
    settings.LOGGING_AUTO_INSTRUMENTATION: "true",
}

GRPC_ENDPOINT: Final = "http://localhost:4317"
HTTP_ENDPOINT: Final = "http://localhost:4318"


def apply_env_defaults(environ: MutableMapping[str, str]) -> dict[str, str]:
    """Set the sidecar defaults in ``environ`` where the user has not set a value.

    Args:
        environ: The environment to update (``os.environ`` in production).

    Returns:
        The variables this call set, with their values.
    """
    applied: dict[str, str] = {}
    for name, value in ENV_DEFAULTS.items():
        if name not in environ:
            environ[name] = value
            applied[name] = value
    if "OTEL_EXPORTER_OTLP_ENDPOINT" not in environ:
        protocol = environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc").strip().lower()
        endpoint = HTTP_ENDPOINT if protocol.startswith("http") else GRPC_ENDPOINT
        environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
        applied["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    return applied


def fastapi_excluded_urls(environ: Mapping[str, str] | None = None) -> str | None:
    """Return the health-check exclusions to pass to the FastAPI instrumentor, or ``None``.

    ``None`` (let the instrumentor read its environment variables) when the user set
    ``OTEL_PYTHON_FASTAPI_EXCLUDED_URLS`` or ``OTEL_PYTHON_EXCLUDED_URLS``.

    Args:
        environ: The environment to read; ``os.environ`` when ``None``.
    """
    from instrumentation.middleware import DEFAULT_EXCLUDED_URLS  # avoid an import cycle

    env = os.environ if environ is None else environ
    if "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS" in env or "OTEL_PYTHON_EXCLUDED_URLS" in env:
        return None
    return DEFAULT_EXCLUDED_URLS


def instrumentor_kwargs(name: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return the extra ``instrument()`` keyword arguments the distro passes to an instrumentor.

    Args:
        name: The instrumentor's entry-point name (``fastapi``, ``sqlalchemy``...).
        environ: The environment to read; ``os.environ`` when ``None``.
    """
    if name == "fastapi":
        excluded = fastapi_excluded_urls(environ)
        return {} if excluded is None else {"excluded_urls": excluded}
    if name == "sqlalchemy":
        return {"enable_commenter": False}
    return {}


class SidecarDistro(BaseDistro):  # type: ignore[misc]
    """OpenTelemetry distro for services that ship telemetry to an otel-sidecar agent."""

    def _configure(self, **kwargs: Any) -> None:
        """Apply :data:`ENV_DEFAULTS` to ``os.environ``."""
        apply_env_defaults(os.environ)

    def load_instrumentor(self, entry_point: EntryPoint, **kwargs: Any) -> None:
        """Activate one instrumentor with the sidecar's arguments and hooks.

        Args:
            entry_point: The ``opentelemetry_instrumentor`` entry point.
            **kwargs: Arguments from ``opentelemetry-instrument`` (``skip_dep_check``); they win
                over the distro's defaults.
        """
        from instrumentation import logging as sidecar_logging  # keep distro import light
        from instrumentation.compat import warn_unsupported_instrumentations

        if settings.env_flag(os.environ, settings.COMPAT_CHECK, True):
            warn_unsupported_instrumentations()  # no-op when the configurator already checked
        name = entry_point.name
        if name == "logging" and sidecar_logging.otlp_handler() is not None:
            _logger.debug("Skipping the logging instrumentor: the sidecar configurator exports logs already")
            return
        arguments = {**instrumentor_kwargs(name), **kwargs}
        instrumentor = entry_point.load()
        instrumentor().instrument(**arguments)
        if name == "fastapi" and settings.env_flag(os.environ, settings.REQUEST_CONTEXT, True):
            from instrumentation.middleware import install_fastapi_hook

            install_fastapi_hook()
        elif name == "sqlalchemy" and settings.env_flag(os.environ, settings.DB_METRICS, True):
            from instrumentation.metrics import install_sqlalchemy_hook

            install_sqlalchemy_hook()
