"""Fixtures for the instrumentation tests: in-memory OpenTelemetry SDK, clean logging and env.

The ``otel`` fixture installs fresh SDK providers as the *global* ones (like
``opentelemetry-instrument`` does) and restores the previous state afterwards; resetting the
API's set-once globals uses private attributes, as OpenTelemetry's own test utilities do.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import propagate, trace
from opentelemetry._logs import _internal as logs_internal
from opentelemetry._logs import set_logger_provider
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.metrics import set_meter_provider
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from instrumentation import logging as sidecar_logging
from instrumentation.logging import JsonFormatter, SidecarLogRecordProcessor, install_otlp_log_handler
from instrumentation.redaction import Redactor, reset_default_redactor

BACKEND_DIR = Path(__file__).resolve().parents[3] / "deploy" / "example-backend"


def _reset_otel_globals() -> None:
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()
    metrics_internal._METER_PROVIDER = None
    logs_internal._LOGGER_PROVIDER_SET_ONCE = Once()
    logs_internal._LOGGER_PROVIDER = None


@dataclass
class Otel:
    """The in-memory SDK of one test."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    logger_provider: LoggerProvider
    span_exporter: InMemorySpanExporter
    metric_reader: InMemoryMetricReader
    log_exporter: InMemoryLogRecordExporter

    def spans(self) -> list[ReadableSpan]:
        """Finished spans."""
        return list(self.span_exporter.get_finished_spans())

    def logs(self) -> list[ReadableLogRecord]:
        """Emitted log records (after the sidecar processor)."""
        return list(self.log_exporter.get_finished_logs())

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """``(attributes, data point)`` of every point of metric ``name`` in a fresh collection."""
        data = self.metric_reader.get_metrics_data()
        found = []
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        found.extend((dict(p.attributes or {}), p) for p in metric.data.data_points)
        return found


@pytest.fixture
def otel() -> Iterator[Otel]:
    """Fresh global tracer, meter and logger providers backed by in-memory exporters."""
    resource = Resource.create({"service.name": "instrumentation-test"})
    span_exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    metric_reader = InMemoryMetricReader()
    meter_provider = MeterProvider(resource=resource, metric_readers=[metric_reader], shutdown_on_exit=False)
    log_exporter = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    logger_provider.add_log_record_processor(SidecarLogRecordProcessor(Redactor()))
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    saved_textmap = propagate.get_global_textmap()
    _reset_otel_globals()
    trace.set_tracer_provider(tracer_provider)
    set_meter_provider(meter_provider)
    set_logger_provider(logger_provider)
    try:
        yield Otel(tracer_provider, meter_provider, logger_provider, span_exporter, metric_reader, log_exporter)
    finally:
        propagate.set_global_textmap(saved_textmap)
        _reset_otel_globals()
        tracer_provider.shutdown()
        meter_provider.shutdown()
        logger_provider.shutdown()


@pytest.fixture
def clean_logging() -> Iterator[None]:
    """Restore the root logger, the logging config functions and the sidecar handlers afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    basic_config = logging.basicConfig
    try:
        yield
    finally:
        sidecar_logging.reset_logging()
        root.handlers[:] = handlers
        root.setLevel(level)
        assert logging.basicConfig is basic_config


@contextlib.contextmanager
def app_logger(otel: Otel, name: str) -> Iterator[io.StringIO]:
    """Logger ``name`` at INFO writing JSON lines into the yielded buffer and OTLP records to ``otel.logs()``.

    The logger does not propagate meanwhile; its level, propagation and JSON handler are restored
    afterwards (use it with the ``clean_logging`` fixture, which removes the OTLP handler).
    """
    logger = logging.getLogger(name)
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter(Redactor()))
    logger.addHandler(handler)
    install_otlp_log_handler(otel.logger_provider, redactor=Redactor(), logger=logger)
    try:
        yield buffer
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        logger.setLevel(level)


@pytest.fixture
def environ() -> Iterator[os._Environ[str]]:
    """``os.environ`` restored to its exact previous content afterwards (distro writes to it)."""
    saved = dict(os.environ)
    reset_default_redactor()
    try:
        yield os.environ
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset_default_redactor()


@pytest.fixture(scope="session")
def backend_path() -> Iterator[Path]:
    """Make ``deploy/example-backend`` importable (``auth_api``, ``traffic``) for in-process tests."""
    sys.path.insert(0, str(BACKEND_DIR))
    try:
        yield BACKEND_DIR
    finally:
        sys.path.remove(str(BACKEND_DIR))
