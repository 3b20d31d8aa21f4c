"""OTLP/JSON codec (agent.pdata.otlpjson): decoding rules, errors, encoding format."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from agent.component import Signal
from agent.pdata import Logs, Metrics, Traces, otlpjson, proto
from agent.testing import make_logs, make_metrics, make_traces

FIXTURES = Path(__file__).parents[2] / "fixtures" / "otlp-json"
VECTORS = [("trace.json", Traces), ("metrics.json", Metrics), ("logs.json", Logs)]

TID_HEX = "5B8EFFF798038103D269B633813FC60C"
SID_HEX = "EEE19B7EC3C1B174"


def span_request(**span: Any) -> dict[str, Any]:
    base = {"traceId": TID_HEX, "spanId": SID_HEX, "name": "op"}
    base.update(span)
    return {"resourceSpans": [{"scopeSpans": [{"spans": [base]}]}]}


def dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


@pytest.mark.parametrize(("name", "cls"), VECTORS)
def test_shared_vectors_round_trip(name: str, cls: type[Traces]) -> None:
    body = (FIXTURES / name).read_bytes()
    data = otlpjson.decode(cls, body)
    assert data.item_count >= 1
    # Same content as the reference mapping (json_format, after ids hex -> base64).
    expected = cls.request_class()
    json_format.Parse(_hex_ids_to_base64(json.loads(body)), expected, ignore_unknown_fields=True)
    assert data.proto == expected
    # Re-encoding and decoding again is lossless; the output is one compact line.
    line = otlpjson.encode_request(data)
    assert b"\n" not in line and b": " not in line
    assert otlpjson.decode(cls, line).proto == data.proto


def _hex_ids_to_base64(obj: Any) -> str:
    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: (base64.b64encode(bytes.fromhex(v)).decode() if k in ("traceId", "spanId", "parentSpanId")
                        else walk(v)) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(i) for i in x]
        return x
    return json.dumps(walk(obj))


def test_vector_ids_upper_case_hex_decoded_and_written_lower_case() -> None:
    data = otlpjson.decode(Traces, (FIXTURES / "trace.json").read_bytes())
    span = data.proto.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id == bytes.fromhex(TID_HEX)
    assert span.parent_span_id == bytes.fromhex("EEE19B7EC3C1B173")
    out = json.loads(otlpjson.encode_request(data))
    s = out["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert s["traceId"] == TID_HEX.lower() and s["spanId"] == SID_HEX.lower()
    assert s["startTimeUnixNano"] == "1544712660000000000"  # 64-bit ints as strings
    assert s["kind"] == 2  # enums as integers


@pytest.mark.parametrize("make", [lambda: make_traces(7, attrs=3), lambda: make_logs(5), lambda: make_metrics(4)])
def test_round_trip_of_generated_requests(make: Any) -> None:
    data = make()
    line = otlpjson.encode_request(data)
    assert otlpjson.decode(type(data), line).proto == data.proto


def test_hex_ids_everywhere_round_trip() -> None:
    req = proto.ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add(
        trace_id=bytes(range(16)), span_id=bytes(range(8)), parent_span_id=bytes(range(8, 16)))
    span.links.add(trace_id=bytes(range(16, 32)), span_id=bytes(range(1, 9)))
    logs = proto.ExportLogsServiceRequest()
    logs.resource_logs.add().scope_logs.add().log_records.add(trace_id=bytes(range(16)), span_id=bytes(range(8)))
    metrics = proto.ExportMetricsServiceRequest()
    point = metrics.resource_metrics.add().scope_metrics.add().metrics.add(name="m").gauge.data_points.add(as_int=1)
    point.exemplars.add(trace_id=bytes(range(16)), span_id=bytes(range(8)), as_double=1.5)
    for cls, msg in ((Traces, req), (Logs, logs), (Metrics, metrics)):
        text = otlpjson.encode_request(cls(msg)).decode()
        assert bytes(range(16)).hex() in text and base64.b64encode(bytes(range(16))).decode() not in text
        assert otlpjson.decode(cls, text).proto == msg
    link = json.loads(otlpjson.encode_request(Traces(req)))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["links"][0]
    assert link == {"traceId": bytes(range(16, 32)).hex(), "spanId": bytes(range(1, 9)).hex()}


def test_sixty_four_bit_ints_from_strings_or_numbers() -> None:
    for value in ("1544712660000000000", 1544712660000000000, 1.5e18):
        data = otlpjson.decode(Traces, dumps(span_request(startTimeUnixNano=value)))
        assert data.proto.resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano == int(float(value))
    big = "18446744073709551615"  # max uint64
    data = otlpjson.decode(Traces, dumps(span_request(endTimeUnixNano=big)))
    assert data.proto.resource_spans[0].scope_spans[0].spans[0].end_time_unix_nano == 2**64 - 1


def test_attribute_values_of_every_kind() -> None:
    attrs = [
        {"key": "s", "value": {"stringValue": "x"}},
        {"key": "i", "value": {"intValue": "-42"}},
        {"key": "d", "value": {"doubleValue": 1.25}},
        {"key": "b", "value": {"boolValue": True}},
        {"key": "y", "value": {"bytesValue": base64.b64encode(b"\x00\xff").decode()}},
        {"key": "a", "value": {"arrayValue": {"values": [{"intValue": 1}, {"stringValue": "two"}]}}},
        {"key": "m", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"boolValue": False}}]}}},
        {"key": "empty", "value": {}},
    ]
    data = otlpjson.decode(Traces, dumps(span_request(attributes=attrs)))
    got = data.proto.resource_spans[0].scope_spans[0].spans[0].attributes
    assert got[1].value.int_value == -42 and got[4].value.bytes_value == b"\x00\xff"
    assert got[5].value.array_value.values[1].string_value == "two"
    assert got[6].value.kvlist_value.values[0].value.WhichOneof("value") == "bool_value"
    out = json.loads(otlpjson.encode_request(data))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
    assert out[1] == {"key": "i", "value": {"intValue": "-42"}}
    assert out[2] == {"key": "d", "value": {"doubleValue": 1.25}}
    assert out[4] == {"key": "y", "value": {"bytesValue": "AP8="}}
    assert otlpjson.decode(Traces, otlpjson.encode_request(data)).proto == data.proto


def test_unknown_and_snake_case_keys_are_ignored() -> None:
    body = span_request(start_time_unix_nano="5", somethingNew={"x": 1}, name="op")
    body["extraTopLevel"] = [1, 2]
    data = otlpjson.decode(Traces, dumps(body))
    span = data.proto.resource_spans[0].scope_spans[0].spans[0]
    assert span.start_time_unix_nano == 0  # snake_case is not an alias
    assert span.name == "op"


def test_null_means_unset_and_empty_request_is_valid() -> None:
    data = otlpjson.decode(Traces, dumps(span_request(kind=None, status=None)))
    assert data.proto.resource_spans[0].scope_spans[0].spans[0].kind == 0
    assert otlpjson.decode(Signal.LOGS, b"{}").item_count == 0


@pytest.mark.parametrize(("body", "message"), [
    (b"{not json", "malformed JSON"),
    (b"[]", "must be a JSON object, got an array"),
    (b'"x"', "must be a JSON object, got a string"),
    (b"\xff\xfe\x00", "malformed JSON"),
    (dumps(span_request(kind="SPAN_KIND_SERVER")), "spans[0].kind: enums must be integers"),
    (dumps(span_request(traceId=base64.b64encode(bytes(range(16))).decode())), "hex, not base64"),
    (dumps(span_request(spanId="EEE19B7EC3C1B1")), "spanId: must be 16 hex digits (8 bytes), got 14"),
    (dumps(span_request(spanId="ZZE19B7EC3C1B174")), "spanId: must be 16 hex digits"),
    (dumps(span_request(name=5)), "spans[0].name: expected a string, got 5"),
    (dumps(span_request(startTimeUnixNano="12a")), "startTimeUnixNano: expected an integer"),
    (dumps(span_request(startTimeUnixNano="-1")), "startTimeUnixNano: integer -1 out of range"),
    (dumps(span_request(droppedAttributesCount=2**40)), "droppedAttributesCount: integer 1099511627776 out of range"),
    (dumps(span_request(attributes={"key": "a"})), "attributes: expected a JSON array"),
    (dumps(span_request(attributes=[{"key": "a", "value": {"intValue": 1.5}}])),
     "attributes[0].value.intValue: expected an integer"),
    (dumps(span_request(attributes=[None])), "attributes[0]: null is not allowed"),
    (dumps(span_request(status={"code": "STATUS_CODE_ERROR"})), "status.code: enums must be integers"),
    (dumps({"resourceSpans": {"a": 1}}), "resourceSpans: expected a JSON array"),
    (dumps(span_request(name="\ud800")), "name: string is not valid UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "malformed JSON"),
])
def test_bad_documents_name_the_field(body: bytes, message: str) -> None:
    with pytest.raises(otlpjson.OTLPJSONError) as err:
        otlpjson.decode(Traces, body)
    assert message in str(err.value)


def test_doubles_accept_special_strings_and_write_them_back() -> None:
    body = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "g", "gauge": {"dataPoints": [
        {"asDouble": "NaN"}, {"asDouble": "Infinity"}, {"asDouble": "-Inf"}, {"asDouble": "2.5"}, {"asDouble": 3},
    ]}}]}]}]}
    data = otlpjson.decode(Metrics, dumps(body))
    points = data.proto.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points
    assert math.isnan(points[0].as_double) and points[1].as_double == math.inf and points[2].as_double == -math.inf
    assert [p.as_double for p in points[3:]] == [2.5, 3.0]
    out = otlpjson.encode_request(data).decode()
    assert '"asDouble":"NaN"' in out and '"asDouble":"Infinity"' in out and '"asDouble":"-Infinity"' in out
    assert '"asDouble":3}' in out
    with pytest.raises(otlpjson.OTLPJSONError, match="expected a number"):
        otlpjson.decode(Metrics, dumps({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"gauge": {"dataPoints": [{"asDouble": "1_0"}]}}]}]}]}))


@pytest.mark.parametrize(("value", "text"), [
    (5.0, "5"), (-0.5, "-0.5"), (637.704, "637.704"), (1e20, "100000000000000000000"), (1e21, "1e+21"),
    (1.5e-5, "0.000015"), (1e-6, "0.000001"), (1e-7, "1e-7"), (1.5e-10, "1.5e-10"), (123456789.125, "123456789.125"),
    (2.0**60, "1152921504606847000"), (1.7976931348623157e308, "1.7976931348623157e+308"),
])
def test_double_format_matches_go_jsoniter(value: float, text: str) -> None:
    assert otlpjson.format_double(value) == text
    assert float(text) == value


def test_encode_omits_defaults_and_uses_collector_shapes() -> None:
    data = make_metrics(1)
    point = data.mutable().resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points[0]
    point.ClearField("attributes")
    line = otlpjson.encode_request(data).decode()
    assert '"aggregationTemporality":2' in line and '"isMonotonic":true' in line
    assert '"asInt":"1"' in line and '"startTimeUnixNano":"1700000000000000000"' in line
    assert '"flags"' not in line and '"exemplars"' not in line and '"schemaUrl"' not in line
    hist = proto.ExportMetricsServiceRequest()
    p = hist.resource_metrics.add().scope_metrics.add().metrics.add(name="h").histogram.data_points.add(
        count=3, sum=0.0, bucket_counts=[1, 2], explicit_bounds=[0.5])
    assert p.HasField("sum")
    text = otlpjson.encode_request(Metrics(hist)).decode()
    assert '"count":"3","sum":0,"bucketCounts":["1","2"],"explicitBounds":[0.5]' in text


def test_encode_response_and_status_json() -> None:
    assert otlpjson.encode_response(proto.ExportTraceServiceResponse()) == b"{}"
    resp = proto.ExportMetricsServiceResponse()
    resp.partial_success.rejected_data_points = 3
    resp.partial_success.error_message = 'bad "points"'
    assert json.loads(otlpjson.encode_response(resp)) == {
        "partialSuccess": {"rejectedDataPoints": "3", "errorMessage": 'bad "points"'}}
    assert json.loads(otlpjson.status_json(3, "nope\n")) == {"code": 3, "message": "nope\n"}


def _nested_value(levels: int, kind: str) -> dict[str, Any]:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(levels):
        if kind == "kvlist":
            value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
        else:
            value = {"arrayValue": {"values": [value]}}
    return value


@pytest.mark.parametrize("kind", ["kvlist", "array"])
def test_nesting_limit_matches_the_protobuf_decoder(kind: str) -> None:
    """JSON accepts exactly the nesting depth the protobuf decoder accepts."""
    for levels in range(20, 60):
        body = dumps(span_request(attributes=[{"key": "a", "value": _nested_value(levels, kind)}]))
        try:
            data = otlpjson.decode(Traces, body)
        except otlpjson.OTLPJSONError as e:
            assert "nesting deeper than" in str(e)
            json_ok = False
        else:
            json_ok = True
        if json_ok:
            try:
                Traces.parse(data.to_bytes())
                proto_ok = True
            except Exception:
                proto_ok = False
        else:
            proto_ok = False
            # Build the same message directly and check the protobuf decoder refuses it too.
            msg = proto.ExportTraceServiceRequest()
            span = msg.resource_spans.add().scope_spans.add().spans.add()
            json_format.ParseDict(_nested_value(levels, kind), span.attributes.add(key="a").value,
                                  max_recursion_depth=10_000)
            with pytest.raises(Exception, match="MaxDepth"):
                Traces.parse(msg.SerializeToString())
        assert json_ok == proto_ok, levels
        if not json_ok:
            return
    raise AssertionError("no nesting limit reached")
