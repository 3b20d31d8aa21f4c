"""The only module that imports the generated OTLP ``*_pb2`` modules.

Everything else imports the message classes from here, so a change of
generated package (or of protobuf runtime) is a one-file change.
"""

from __future__ import annotations

import logging

from google.protobuf.internal import api_implementation
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

ExportTraceServiceRequest = trace_service_pb2.ExportTraceServiceRequest
ExportTraceServiceResponse = trace_service_pb2.ExportTraceServiceResponse
ExportMetricsServiceRequest = metrics_service_pb2.ExportMetricsServiceRequest
ExportMetricsServiceResponse = metrics_service_pb2.ExportMetricsServiceResponse
ExportLogsServiceRequest = logs_service_pb2.ExportLogsServiceRequest
ExportLogsServiceResponse = logs_service_pb2.ExportLogsServiceResponse

AnyValue = common_pb2.AnyValue
ArrayValue = common_pb2.ArrayValue
KeyValue = common_pb2.KeyValue
KeyValueList = common_pb2.KeyValueList
InstrumentationScope = common_pb2.InstrumentationScope
Resource = resource_pb2.Resource

ResourceSpans = trace_pb2.ResourceSpans
ScopeSpans = trace_pb2.ScopeSpans
Span = trace_pb2.Span
Status = trace_pb2.Status

ResourceMetrics = metrics_pb2.ResourceMetrics
ScopeMetrics = metrics_pb2.ScopeMetrics
Metric = metrics_pb2.Metric
NumberDataPoint = metrics_pb2.NumberDataPoint
HistogramDataPoint = metrics_pb2.HistogramDataPoint
ExponentialHistogramDataPoint = metrics_pb2.ExponentialHistogramDataPoint
SummaryDataPoint = metrics_pb2.SummaryDataPoint
AggregationTemporality = metrics_pb2.AggregationTemporality

ResourceLogs = logs_pb2.ResourceLogs
ScopeLogs = logs_pb2.ScopeLogs
LogRecord = logs_pb2.LogRecord

SeverityNumber = logs_pb2.SeverityNumber
RpcStatus = status_pb2.Status
RpcCode = code_pb2
RetryInfo = error_details_pb2.RetryInfo

#: The oneof field names of ``Metric.data`` that hold data points.
METRIC_DATA_FIELDS = ("gauge", "sum", "histogram", "exponential_histogram", "summary")


def protobuf_backend() -> str:
    """``upb`` (fast, C) or ``python`` (15-200x slower)."""
    return str(api_implementation.Type())


def warn_if_slow_backend(logger: logging.Logger) -> None:
    backend = protobuf_backend()
    if backend != "upb":
        logger.warning(
            "protobuf runtime is %r, not 'upb': decoding will be 15-200x slower. "
            "Install protobuf>=4.21 wheels and unset PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION.",
            backend,
        )
