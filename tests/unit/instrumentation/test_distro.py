"""The sidecar distro: environment defaults, user overrides, instrumentor arguments and hooks."""

from __future__ import annotations

import os
from importlib.metadata import EntryPoint
from typing import Any

import pytest
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality

from instrumentation import distro as distro_module
from instrumentation.distro import ENV_DEFAULTS, SidecarDistro, apply_env_defaults, instrumentor_kwargs
from instrumentation.middleware import DEFAULT_EXCLUDED_URLS


def test_defaults_on_an_empty_environment() -> None:
    env: dict[str, str] = {}
    applied = apply_env_defaults(env)
    assert env == applied
    assert env == {
        "OTEL_PYTHON_CONFIGURATOR": "sidecar",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4317",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta",
        "OTEL_METRICS_EXEMPLAR_FILTER": "trace_based",
        "OTEL_METRIC_EXPORT_INTERVAL": "15000",
        "OTEL_SEMCONV_STABILITY_OPT_IN": "http",
        "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true",
    }


def test_user_environment_wins() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://sidecar.example:14317",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "cumulative",
        "OTEL_PYTHON_CONFIGURATOR": "other",
    }
    before = dict(env)
    applied = apply_env_defaults(env)
    assert {k: env[k] for k in before} == before
    assert not set(applied) & set(before)
    assert env["OTEL_TRACES_EXPORTER"] == "otlp"


def test_http_protocol_gets_the_http_port() -> None:
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    apply_env_defaults(env)
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://localhost:4318"


def test_distro_configure_sets_os_environ(environ: os._Environ[str]) -> None:
    for name in (*ENV_DEFAULTS, "OTEL_EXPORTER_OTLP_ENDPOINT"):
        environ.pop(name, None)
    environ["OTEL_LOGS_EXPORTER"] = "console"
    SidecarDistro().configure()
    assert environ["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
    assert environ["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://localhost:4317"
    assert environ["OTEL_LOGS_EXPORTER"] == "console"


def test_sdk_honours_delta_temporality_and_trace_based_exemplars(environ: os._Environ[str]) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics._internal.exemplar import TraceBasedExemplarFilter

    for name in (*ENV_DEFAULTS, "OTEL_EXPORTER_OTLP_ENDPOINT"):
        environ.pop(name, None)
    apply_env_defaults(environ)
    exporter = OTLPMetricExporter(endpoint="http://127.0.0.1:1")
    try:
        preferred = exporter._preferred_temporality
        assert preferred[Counter] is AggregationTemporality.DELTA
        assert preferred[Histogram] is AggregationTemporality.DELTA
        assert preferred[UpDownCounter] is AggregationTemporality.CUMULATIVE
    finally:
        exporter.shutdown()
    provider = MeterProvider(shutdown_on_exit=False)
    try:
        assert isinstance(provider._sdk_config.exemplar_filter, TraceBasedExemplarFilter)
    finally:
        provider.shutdown()


def test_instrumentor_kwargs(environ: os._Environ[str]) -> None:
    environ.pop("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", None)
    environ.pop("OTEL_PYTHON_EXCLUDED_URLS", None)
    assert instrumentor_kwargs("fastapi") == {"excluded_urls": DEFAULT_EXCLUDED_URLS}
    assert instrumentor_kwargs("sqlalchemy") == {"enable_commenter": False}
    assert instrumentor_kwargs("requests") == {}
    environ["OTEL_PYTHON_FASTAPI_EXCLUDED_URLS"] = "/ping"
    assert instrumentor_kwargs("fastapi") == {}


class RecordingInstrumentor:
    """Stands in for an instrumentor class loaded from an entry point."""

    calls: list[dict[str, Any]] = []

    def instrument(self, **kwargs: Any) -> None:
        RecordingInstrumentor.calls.append(kwargs)


def entry_point(name: str) -> EntryPoint:
    return EntryPoint(name=name, value=f"{__name__}:RecordingInstrumentor", group="opentelemetry_instrumentor")


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    installed: list[str] = []
    monkeypatch.setattr("instrumentation.middleware.install_fastapi_hook", lambda: installed.append("fastapi"))
    monkeypatch.setattr("instrumentation.metrics.install_sqlalchemy_hook", lambda: installed.append("sqlalchemy"))
    monkeypatch.setattr("instrumentation.compat._warned", True)
    RecordingInstrumentor.calls = []
    return installed


def test_load_instrumentor_passes_kwargs_and_installs_hooks(environ: os._Environ[str], hooks: list[str]) -> None:
    environ.pop("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", None)
    environ.pop("OTEL_PYTHON_EXCLUDED_URLS", None)
    distro = SidecarDistro()
    distro.load_instrumentor(entry_point("fastapi"), skip_dep_check=True)
    distro.load_instrumentor(entry_point("sqlalchemy"), skip_dep_check=True, enable_commenter=True)
    distro.load_instrumentor(entry_point("requests"), skip_dep_check=True)
    assert RecordingInstrumentor.calls == [
        {"excluded_urls": DEFAULT_EXCLUDED_URLS, "skip_dep_check": True},
        {"enable_commenter": True, "skip_dep_check": True},  # the caller's value wins
        {"skip_dep_check": True},
    ]
    assert hooks == ["fastapi", "sqlalchemy"]


def test_hooks_can_be_turned_off(environ: os._Environ[str], hooks: list[str]) -> None:
    environ["OTEL_SIDECAR_REQUEST_CONTEXT"] = "false"
    environ["OTEL_SIDECAR_DB_METRICS"] = "false"
    distro = SidecarDistro()
    distro.load_instrumentor(entry_point("fastapi"))
    distro.load_instrumentor(entry_point("sqlalchemy"))
    assert len(RecordingInstrumentor.calls) == 2
    assert hooks == []


def test_logging_instrumentor_skipped_while_the_sidecar_exports_logs(
    hooks: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("instrumentation.logging._otlp_handler", object())
    SidecarDistro().load_instrumentor(entry_point("logging"))
    assert RecordingInstrumentor.calls == []
    monkeypatch.setattr("instrumentation.logging._otlp_handler", None)
    SidecarDistro().load_instrumentor(entry_point("logging"))
    assert RecordingInstrumentor.calls == [{}]


def test_distro_is_registered_as_an_entry_point() -> None:
    from importlib.metadata import entry_points

    distros = {ep.name: ep.value for ep in entry_points(group="opentelemetry_distro")}
    configurators = {ep.name: ep.value for ep in entry_points(group="opentelemetry_configurator")}
    assert distros.get("sidecar") == "instrumentation.distro:SidecarDistro", (
        "entry point missing: add it to pyproject.toml and reinstall (pip install -e .)"
    )
    assert configurators.get("sidecar") == "instrumentation.configurator:SidecarConfigurator"
    assert distro_module.SidecarDistro is SidecarDistro
