"""A tiny in-process OTLP/gRPC collector double that records every export request.

It implements the three OTLP services (``TraceService``, ``MetricsService``, ``LogsService``
``/Export``), answers success, and keeps each request both parsed and as wire bytes (to search
exported data for strings that must never leave the application, such as passwords).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def any_value(value: AnyValue) -> Any:
    """Convert an OTLP ``AnyValue`` to a Python value (maps to dicts, arrays to lists)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    return getattr(value, kind)


def attributes(kvs: Any) -> dict[str, Any]:
    """Convert repeated ``KeyValue`` to a dict."""
    return {kv.key: any_value(kv.value) for kv in kvs if isinstance(kv, KeyValue)}


class CollectorDouble:
    """Records OTLP/gRPC exports on ``127.0.0.1:<port>``; use as a context manager."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.traces: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.metrics: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self.logs: list[logs_service_pb2.ExportLogsServiceRequest] = []
        self.raw: list[bytes] = []
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        double = self

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                double._store(double.traces, request)
                return trace_service_pb2.ExportTraceServiceResponse()

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                double._store(double.metrics, request)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        class Logs(logs_service_pb2_grpc.LogsServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                double._store(double.logs, request)
                return logs_service_pb2.ExportLogsServiceResponse()

        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), self._server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    def _store(self, target: list[Any], request: Any) -> None:
        with self._lock:
            target.append(request)
            self.raw.append(request.SerializeToString())

    @property
    def endpoint(self) -> str:
        """The ``OTEL_EXPORTER_OTLP_ENDPOINT`` value for this double."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> CollectorDouble:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None).wait(5)

    # ------------------------------------------------------------------ views

    def resource_spans(self) -> Iterator[tuple[dict[str, Any], Span]]:
        """Yield ``(resource attributes, span)`` for every received span."""
        with self._lock:
            requests = list(self.traces)
        for request in requests:
            for rs in request.resource_spans:
                resource = attributes(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        yield resource, span

    def spans(self) -> list[Span]:
        """Every received span."""
        return [span for _, span in self.resource_spans()]

    def log_records(self) -> list[LogRecord]:
        """Every received log record."""
        with self._lock:
            requests = list(self.logs)
        return [lr for req in requests for rl in req.resource_logs for sl in rl.scope_logs for lr in sl.log_records]

    def metric_list(self) -> list[Metric]:
        """Every received metric (one entry per metric per export)."""
        with self._lock:
            requests = list(self.metrics)
        return [m for req in requests for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Poll ``condition`` until it holds or ``timeout`` seconds pass; return its last value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.05)
        return condition()
