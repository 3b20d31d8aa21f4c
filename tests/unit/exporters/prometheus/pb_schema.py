"""The ``io.prometheus.client`` messages, built at runtime with the real protobuf runtime.

Field numbers and types transcribed from prometheus/client_model
``io/prometheus/client/metrics.proto`` (and its proto3 copy in
prometheus/prometheus ``prompb/io/prometheus/client/metrics.proto``), so the
tests decode the hand-written encoder's output with an independent decoder.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.internal.decoder import _DecodeVarint  # type: ignore[attr-defined]

F = descriptor_pb2.FieldDescriptorProto
OPT, REP = F.LABEL_OPTIONAL, F.LABEL_REPEATED

# message -> [(name, number, type, label, type_name)]
_MESSAGES: dict[str, list[tuple[str, int, int, int, str]]] = {
    "LabelPair": [("name", 1, F.TYPE_STRING, OPT, ""), ("value", 2, F.TYPE_STRING, OPT, "")],
    "Gauge": [("value", 1, F.TYPE_DOUBLE, OPT, "")],
    "Timestamp": [("seconds", 1, F.TYPE_INT64, OPT, ""), ("nanos", 2, F.TYPE_INT32, OPT, "")],
    "Exemplar": [("label", 1, F.TYPE_MESSAGE, REP, "LabelPair"), ("value", 2, F.TYPE_DOUBLE, OPT, ""),
                 ("timestamp", 3, F.TYPE_MESSAGE, OPT, "Timestamp")],
    "Counter": [("value", 1, F.TYPE_DOUBLE, OPT, ""), ("exemplar", 2, F.TYPE_MESSAGE, OPT, "Exemplar"),
                ("created_timestamp", 3, F.TYPE_MESSAGE, OPT, "Timestamp")],
    "Quantile": [("quantile", 1, F.TYPE_DOUBLE, OPT, ""), ("value", 2, F.TYPE_DOUBLE, OPT, "")],
    "Summary": [("sample_count", 1, F.TYPE_UINT64, OPT, ""), ("sample_sum", 2, F.TYPE_DOUBLE, OPT, ""),
                ("quantile", 3, F.TYPE_MESSAGE, REP, "Quantile"),
                ("created_timestamp", 4, F.TYPE_MESSAGE, OPT, "Timestamp")],
    "Untyped": [("value", 1, F.TYPE_DOUBLE, OPT, "")],
    "Bucket": [("cumulative_count", 1, F.TYPE_UINT64, OPT, ""), ("cumulative_count_float", 4, F.TYPE_DOUBLE, OPT, ""),
               ("upper_bound", 2, F.TYPE_DOUBLE, OPT, ""), ("exemplar", 3, F.TYPE_MESSAGE, OPT, "Exemplar")],
    "BucketSpan": [("offset", 1, F.TYPE_SINT32, OPT, ""), ("length", 2, F.TYPE_UINT32, OPT, "")],
    "Histogram": [
        ("sample_count", 1, F.TYPE_UINT64, OPT, ""), ("sample_count_float", 4, F.TYPE_DOUBLE, OPT, ""),
        ("sample_sum", 2, F.TYPE_DOUBLE, OPT, ""), ("bucket", 3, F.TYPE_MESSAGE, REP, "Bucket"),
        ("created_timestamp", 15, F.TYPE_MESSAGE, OPT, "Timestamp"), ("schema", 5, F.TYPE_SINT32, OPT, ""),
        ("zero_threshold", 6, F.TYPE_DOUBLE, OPT, ""), ("zero_count", 7, F.TYPE_UINT64, OPT, ""),
        ("zero_count_float", 8, F.TYPE_DOUBLE, OPT, ""),
        ("negative_span", 9, F.TYPE_MESSAGE, REP, "BucketSpan"), ("negative_delta", 10, F.TYPE_SINT64, REP, ""),
        ("negative_count", 11, F.TYPE_DOUBLE, REP, ""),
        ("positive_span", 12, F.TYPE_MESSAGE, REP, "BucketSpan"), ("positive_delta", 13, F.TYPE_SINT64, REP, ""),
        ("positive_count", 14, F.TYPE_DOUBLE, REP, ""), ("exemplars", 16, F.TYPE_MESSAGE, REP, "Exemplar"),
    ],
    "Metric": [("label", 1, F.TYPE_MESSAGE, REP, "LabelPair"), ("gauge", 2, F.TYPE_MESSAGE, OPT, "Gauge"),
               ("counter", 3, F.TYPE_MESSAGE, OPT, "Counter"), ("summary", 4, F.TYPE_MESSAGE, OPT, "Summary"),
               ("untyped", 5, F.TYPE_MESSAGE, OPT, "Untyped"), ("histogram", 7, F.TYPE_MESSAGE, OPT, "Histogram"),
               ("timestamp_ms", 6, F.TYPE_INT64, OPT, "")],
    "MetricFamily": [("name", 1, F.TYPE_STRING, OPT, ""), ("help", 2, F.TYPE_STRING, OPT, ""),
                     ("type", 3, F.TYPE_INT32, OPT, ""), ("metric", 4, F.TYPE_MESSAGE, REP, "Metric"),
                     ("unit", 5, F.TYPE_STRING, OPT, "")],
}


def _build() -> dict[str, Any]:
    fdp = descriptor_pb2.FileDescriptorProto(name="test_io_prometheus_client.proto",
                                             package="test.io.prometheus.client", syntax="proto2")
    for name, fields in _MESSAGES.items():
        msg = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = f".test.io.prometheus.client.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"test.io.prometheus.client.{name}"))
            for name in _MESSAGES}


CLASSES = _build()


def parse_delimited(data: bytes) -> list[Any]:
    """Every ``MetricFamily`` of a length-delimited stream."""
    out = []
    pos = 0
    while pos < len(data):
        size, pos = _DecodeVarint(data, pos)
        fam = CLASSES["MetricFamily"]()
        fam.ParseFromString(data[pos:pos + size])
        out.append(fam)
        pos += size
    return out


# -- remote write (prometheus/prometheus prompb/remote.proto, types.proto) -------------------------
_RW_MESSAGES: dict[str, list[tuple[str, int, int, int, str]]] = {
    "Label": [("name", 1, F.TYPE_STRING, OPT, ""), ("value", 2, F.TYPE_STRING, OPT, "")],
    "Sample": [("value", 1, F.TYPE_DOUBLE, OPT, ""), ("timestamp", 2, F.TYPE_INT64, OPT, "")],
    "BucketSpan": [("offset", 1, F.TYPE_SINT32, OPT, ""), ("length", 2, F.TYPE_UINT32, OPT, "")],
    "Histogram": [
        ("count_int", 1, F.TYPE_UINT64, OPT, ""), ("count_float", 2, F.TYPE_DOUBLE, OPT, ""),
        ("sum", 3, F.TYPE_DOUBLE, OPT, ""), ("schema", 4, F.TYPE_SINT32, OPT, ""),
        ("zero_threshold", 5, F.TYPE_DOUBLE, OPT, ""), ("zero_count_int", 6, F.TYPE_UINT64, OPT, ""),
        ("zero_count_float", 7, F.TYPE_DOUBLE, OPT, ""),
        ("negative_spans", 8, F.TYPE_MESSAGE, REP, "BucketSpan"), ("negative_deltas", 9, F.TYPE_SINT64, REP, ""),
        ("negative_counts", 10, F.TYPE_DOUBLE, REP, ""),
        ("positive_spans", 11, F.TYPE_MESSAGE, REP, "BucketSpan"), ("positive_deltas", 12, F.TYPE_SINT64, REP, ""),
        ("positive_counts", 13, F.TYPE_DOUBLE, REP, ""), ("reset_hint", 14, F.TYPE_INT32, OPT, ""),
        ("timestamp", 15, F.TYPE_INT64, OPT, ""),
    ],
    "Exemplar": [("labels", 1, F.TYPE_MESSAGE, REP, "Label"), ("value", 2, F.TYPE_DOUBLE, OPT, ""),
                 ("timestamp", 3, F.TYPE_INT64, OPT, "")],
    "TimeSeries": [("labels", 1, F.TYPE_MESSAGE, REP, "Label"), ("samples", 2, F.TYPE_MESSAGE, REP, "Sample"),
                   ("exemplars", 3, F.TYPE_MESSAGE, REP, "Exemplar"),
                   ("histograms", 4, F.TYPE_MESSAGE, REP, "Histogram")],
    "MetricMetadata": [("type", 1, F.TYPE_INT32, OPT, ""), ("metric_family_name", 2, F.TYPE_STRING, OPT, ""),
                       ("help", 4, F.TYPE_STRING, OPT, ""), ("unit", 5, F.TYPE_STRING, OPT, "")],
    "WriteRequest": [("timeseries", 1, F.TYPE_MESSAGE, REP, "TimeSeries"),
                     ("metadata", 3, F.TYPE_MESSAGE, REP, "MetricMetadata")],
}


def _build_rw() -> dict[str, Any]:
    fdp = descriptor_pb2.FileDescriptorProto(name="test_prompb.proto", package="test.prometheus", syntax="proto3")
    for name, fields in _RW_MESSAGES.items():
        msg = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = f".test.prometheus.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"test.prometheus.{name}"))
            for name in _RW_MESSAGES}


RW = _build_rw()


def parse_write_request(data: bytes) -> Any:
    msg = RW["WriteRequest"]()
    msg.ParseFromString(data)
    return msg
