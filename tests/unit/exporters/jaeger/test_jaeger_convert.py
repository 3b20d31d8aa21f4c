"""Golden tests of the OTLP -> Jaeger api_v2 mapping (protocols.md 3.2), one rule per assertion group.

Output is decoded with the independent wire reader of ``jaeger_double.py``,
never with the exporter's generated module.
"""

from __future__ import annotations

import base64
import json
import math

import pytest

from agent.exporters.jaeger.convert import NO_SERVICE_NAME, Converter
from agent.pdata import proto
from tests.unit.exporters.jaeger.jaeger_double import decode_post_spans, tags

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
SPAN_A = bytes.fromhex("b7ad6b7169203331")
SPAN_B = bytes.fromhex("00f067aa0ba902b7")
SPAN_C = bytes.fromhex("1122334455667788")
LINKED_TRACE = bytes.fromhex("ffeeddccbbaa99887766554433221100")
START = 1_700_000_000_123_456_789
END = START + 1_234_567_891


def _kv(attrs, key, value):  # type: ignore[no-untyped-def]
    kv = attrs.add()
    kv.key = key
    _set(kv.value, value)


def _set(v, value):  # type: ignore[no-untyped-def]
    if value is None:
        return
    if isinstance(value, bool):
        v.bool_value = value
    elif isinstance(value, int):
        v.int_value = value
    elif isinstance(value, float):
        v.double_value = value
    elif isinstance(value, bytes):
        v.bytes_value = value
    elif isinstance(value, list):
        v.array_value.SetInParent()
        for x in value:
            _set(v.array_value.values.add(), x)
    elif isinstance(value, dict):
        v.kvlist_value.SetInParent()
        for k, x in value.items():
            _kv(v.kvlist_value.values, k, x)
    else:
        v.string_value = value


def _resource_spans(req, attrs):  # type: ignore[no-untyped-def]
    rs = req.resource_spans.add()
    for k, v in attrs.items():
        _kv(rs.resource.attributes, k, v)
    return rs


def build_request() -> bytes:
    req = proto.ExportTraceServiceRequest()
    rs = _resource_spans(req, {"service.name": "checkout", "host.name": "node-1", "process.pid": 4242})
    ss = rs.scope_spans.add()
    ss.scope.name = "my.instrumentation"
    ss.scope.version = "1.2.3"
    a = ss.spans.add()
    a.trace_id, a.span_id, a.name = TRACE, SPAN_A, "GET /grüße"
    a.kind = proto.Span.SPAN_KIND_SERVER
    a.start_time_unix_nano, a.end_time_unix_nano = START, END
    a.trace_state = "vendor=abc,other=1"
    a.status.code = proto.Status.STATUS_CODE_ERROR
    a.status.message = "boom ✗"
    a.dropped_attributes_count, a.dropped_events_count, a.dropped_links_count = 3, 4, 5
    for k, v in [("str", "日本語 text"), ("bool", True), ("int", -42), ("double", 2.5), ("bytes", b"\x00\xffraw"),
                 ("array", [1, "a", True, 1.5, b"\x01"]), ("map", {"k": "v", "n": 1, "nested": {"x": ["é"]}}),
                 ("empty", None)]:
        _kv(a.attributes, k, v)
    ev = a.events.add()
    ev.time_unix_nano = START + 1_001
    ev.name = "exception"
    _kv(ev.attributes, "exception.type", "ValueError")
    _kv(ev.attributes, "exception.escaped", False)
    ev2 = a.events.add()
    ev2.time_unix_nano = START + 2_000_000_000
    ev2.name = "ignored-name"
    _kv(ev2.attributes, "event", "own-event-attr")
    ev3 = a.events.add()
    ev3.time_unix_nano = START + 3
    link = a.links.add()
    link.trace_id, link.span_id = LINKED_TRACE, SPAN_C
    _kv(link.attributes, "some.attr", "lost")

    b = ss.spans.add()
    b.trace_id, b.span_id, b.parent_span_id, b.name = TRACE, SPAN_B, SPAN_A, "internal work"
    b.kind = proto.Span.SPAN_KIND_INTERNAL
    b.start_time_unix_nano, b.end_time_unix_nano = START + 10, START + 10  # zero duration
    b.status.code = proto.Status.STATUS_CODE_OK
    link = b.links.add()
    link.trace_id, link.span_id = LINKED_TRACE, SPAN_A
    _kv(link.attributes, "opentracing.ref_type", "child_of")

    # Same resource again (as a batch processor's merge produces): same Batch.
    rs2 = _resource_spans(req, {"service.name": "checkout", "host.name": "node-1", "process.pid": 4242})
    ss2 = rs2.scope_spans.add()  # no scope name/version
    c = ss2.spans.add()
    c.trace_id, c.span_id, c.name = TRACE, SPAN_C, "client call"
    c.parent_span_id = bytes(8)  # all-zero parent: no reference
    c.kind = proto.Span.SPAN_KIND_CLIENT
    c.flags = 0x101  # W3C sampled + context-has-is-remote
    c.start_time_unix_nano, c.end_time_unix_nano = START, START - 5  # end before start: duration 0

    # A resource without attributes.
    rs3 = req.resource_spans.add()
    d = rs3.scope_spans.add().spans.add()
    d.trace_id, d.span_id, d.name = TRACE, bytes.fromhex("0102030405060708"), "orphan"
    d.kind = proto.Span.SPAN_KIND_PRODUCER
    return req.SerializeToString()


@pytest.fixture(scope="module")
def batches() -> list[dict]:  # type: ignore[type-arg]
    return [decode_post_spans(r) for r in Converter().convert(build_request())]


def _span(batches, span_id):  # type: ignore[no-untyped-def]
    return next(s for b in batches for s in b["spans"] if s["span_id"] == span_id)


def test_one_batch_per_distinct_resource_with_process(batches) -> None:  # type: ignore[no-untyped-def]
    assert len(batches) == 2
    first, second = batches
    assert first["process"]["service_name"] == "checkout"
    assert first["process"]["tags"] == [("host.name", "STRING", "node-1"), ("process.pid", "INT64", 4242)]
    assert [s["span_id"] for s in first["spans"]] == [SPAN_A, SPAN_B, SPAN_C]
    assert second["process"] == {"service_name": NO_SERVICE_NAME, "tags": []}
    assert [s["operation_name"] for s in second["spans"]] == ["orphan"]


def test_ids_names_and_128_bit_trace_id(batches) -> None:  # type: ignore[no-untyped-def]
    a = _span(batches, SPAN_A)
    assert a["trace_id"] == TRACE  # big-endian high then low == OTLP bytes
    high, low = int.from_bytes(a["trace_id"][:8], "big"), int.from_bytes(a["trace_id"][8:], "big")
    assert (high, low) == (0x0AF7651916CD43DD, 0x8448EB211C80319C)
    assert a["operation_name"] == "GET /grüße"


def test_times_exact(batches) -> None:  # type: ignore[no-untyped-def]
    a = _span(batches, SPAN_A)
    assert a["start_time"] == (1_700_000_000, 123_456_789)
    assert a["duration"] == (1, 234_567_891)
    # microsecond view is exact as well
    assert a["start_time"][0] * 1_000_000 + a["start_time"][1] // 1000 == START // 1000
    assert _span(batches, SPAN_B)["duration"] == (0, 0)
    assert _span(batches, SPAN_C)["duration"] == (0, 0)  # negative clamped


def test_references_parent_first_then_links(batches) -> None:  # type: ignore[no-untyped-def]
    a = _span(batches, SPAN_A)
    assert a["references"] == [{"trace_id": LINKED_TRACE, "span_id": SPAN_C, "ref_type": "FOLLOWS_FROM"}]
    b = _span(batches, SPAN_B)
    assert b["references"] == [
        {"trace_id": TRACE, "span_id": SPAN_A, "ref_type": "CHILD_OF"},
        {"trace_id": LINKED_TRACE, "span_id": SPAN_A, "ref_type": "CHILD_OF"},  # opentracing.ref_type=child_of
    ]
    assert _span(batches, SPAN_C)["references"] == []


def test_tags_in_order_with_types(batches) -> None:  # type: ignore[no-untyped-def]
    a = _span(batches, SPAN_A)
    assert [k for k, _t, _v in a["tags"]] == [
        "otel.scope.name", "otel.scope.version", "otel.library.name", "otel.library.version",
        "str", "bool", "int", "double", "bytes", "array", "map", "empty",
        "span.kind", "otel.status_code", "error", "otel.status_description", "w3c.tracestate",
        "otel.dropped_attributes_count", "otel.dropped_events_count", "otel.dropped_links_count",
    ]
    typed = {k: (t, v) for k, t, v in a["tags"]}
    assert typed["otel.scope.name"] == ("STRING", "my.instrumentation")
    assert typed["otel.library.version"] == ("STRING", "1.2.3")
    assert typed["str"] == ("STRING", "日本語 text")
    assert typed["bool"] == ("BOOL", True)
    assert typed["int"] == ("INT64", -42)
    assert typed["double"] == ("FLOAT64", 2.5)
    assert typed["bytes"] == ("BINARY", b"\x00\xffraw")
    assert typed["empty"] == ("STRING", "")
    assert typed["span.kind"] == ("STRING", "server")
    assert typed["otel.status_code"] == ("STRING", "ERROR")
    assert typed["error"] == ("BOOL", True)
    assert typed["otel.status_description"] == ("STRING", "boom ✗")
    assert typed["w3c.tracestate"] == ("STRING", "vendor=abc,other=1")
    assert typed["otel.dropped_attributes_count"] == ("INT64", 3)
    assert typed["otel.dropped_events_count"] == ("INT64", 4)
    assert typed["otel.dropped_links_count"] == ("INT64", 5)


def test_arrays_and_maps_are_json_strings(batches) -> None:  # type: ignore[no-untyped-def]
    typed = {k: (t, v) for k, t, v in _span(batches, SPAN_A)["tags"]}
    t, text = typed["array"]
    assert t == "STRING"
    assert json.loads(text) == [1, "a", True, 1.5, base64.b64encode(b"\x01").decode()]
    t, text = typed["map"]
    assert t == "STRING"
    assert json.loads(text) == {"k": "v", "n": 1, "nested": {"x": ["é"]}}
    assert "é" in text  # non-ASCII kept, not \u-escaped


def test_status_ok_unset_and_kinds(batches) -> None:  # type: ignore[no-untyped-def]
    b = tags(_span(batches, SPAN_B))
    assert b["otel.status_code"] == "OK"
    assert "error" not in b and "otel.status_description" not in b
    assert "span.kind" not in b  # INTERNAL: omitted (spec), see internal_kind_tag
    assert "otel.scope.name" in b
    c = tags(_span(batches, SPAN_C))
    assert c["span.kind"] == "client"
    assert "otel.status_code" not in c  # UNSET
    assert not any(k.startswith("otel.scope") or k.startswith("otel.library") for k in c)  # empty scope
    assert not any(k.startswith("otel.dropped") or k == "w3c.tracestate" for k in c)
    assert tags(_span(batches, bytes.fromhex("0102030405060708")))["span.kind"] == "producer"


def test_flags_sampled_bit(batches) -> None:  # type: ignore[no-untyped-def]
    assert _span(batches, SPAN_C)["flags"] == 1
    assert _span(batches, SPAN_A)["flags"] == 0


def test_events_become_logs(batches) -> None:  # type: ignore[no-untyped-def]
    logs = _span(batches, SPAN_A)["logs"]
    assert len(logs) == 3
    assert logs[0]["timestamp"] == (1_700_000_000, 123_457_790)
    assert logs[0]["fields"] == [("event", "STRING", "exception"), ("exception.type", "STRING", "ValueError"),
                                 ("exception.escaped", "BOOL", False)]
    # an existing "event" attribute replaces the name field
    assert logs[1]["timestamp"] == (1_700_000_002, 123_456_789)
    assert logs[1]["fields"] == [("event", "STRING", "own-event-attr")]
    assert logs[2] == {"timestamp": (1_700_000_000, 123_456_792), "fields": []}  # empty name: no field


def test_internal_kind_tag_option() -> None:
    out = [decode_post_spans(r) for r in Converter(internal_kind_tag=True).convert(build_request())]
    assert tags(_span(out, SPAN_B))["span.kind"] == "internal"


def test_tiny_cache_and_cache_reuse_give_identical_output() -> None:
    raw = build_request()
    big = Converter()
    first = big.convert(raw)
    assert big.convert(raw) == first  # warm cache
    assert Converter(tag_cache_bytes=1).convert(raw) == first  # cache cleared on every insert


def test_large_batches_are_split_with_the_process_in_each() -> None:
    req = proto.ExportTraceServiceRequest()
    rs = _resource_spans(req, {"service.name": "big"})
    ss = rs.scope_spans.add()
    for i in range(200):
        s = ss.spans.add()
        s.trace_id, s.span_id, s.name = TRACE, (i + 1).to_bytes(8, "big"), f"op-{i}"
        _kv(s.attributes, "payload", "x" * 200 + str(i))
    conv = Converter(max_request_bytes=8 << 10)
    parts = conv.convert(req.SerializeToString())
    assert len(parts) > 3
    assert all(len(p) <= 8 << 10 for p in parts)
    decoded = [decode_post_spans(p) for p in parts]
    assert all(d["process"]["service_name"] == "big" for d in decoded)
    names = [s["operation_name"] for d in decoded for s in d["spans"]]
    assert names == [f"op-{i}" for i in range(200)]


def test_special_doubles_and_large_ints() -> None:
    req = proto.ExportTraceServiceRequest()
    s = _resource_spans(req, {"service.name": "x"}).scope_spans.add().spans.add()
    s.trace_id, s.span_id = TRACE, SPAN_A
    _kv(s.attributes, "nan", float("nan"))
    _kv(s.attributes, "max", 2**63 - 1)
    _kv(s.attributes, "min", -(2**63))
    out = tags(decode_post_spans(Converter().convert(req.SerializeToString())[0])["spans"][0])
    assert math.isnan(out["nan"])
    assert out["max"] == 2**63 - 1 and out["min"] == -(2**63)
