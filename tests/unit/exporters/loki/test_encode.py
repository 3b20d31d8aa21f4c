"""Push bodies: protobuf (checked with the double's own wire reader) and JSON."""

from __future__ import annotations

import gzip
import json

import cramjam

from agent.exporters.loki.convert import Stream
from agent.exporters.loki.encode import JSONEncoder, ProtobufEncoder, varint
from tests.loki_double import decode_push_proto
from tests.protowire import read_fields as fields

T0 = 1_700_000_000_123_456_789


def streams() -> list[Stream]:
    a = Stream((("level", "info"), ("service_name", "cart")))
    a.entries = [(T0, "first ünïcode", {"trace_id": "ab" * 16, "user": "bob"}),
                 (T0 + 1, "x" * 300, None),
                 (1_700_000_001_000_000_000, "whole second", {"user": "bob"})]
    b = Stream((("level", "error"), ("service_name", 'we"ird')))
    b.entries = [(5, "err", {"k": "v" * 200})]
    return [a, b]


def test_varint() -> None:
    assert varint(0) == b"\x00" and varint(127) == b"\x7f" and varint(300) == b"\xac\x02"
    assert varint(1_700_000_000) == bytes([0x80, 0xE2, 0xCF, 0xAA, 0x06])


def test_protobuf_round_trip_through_an_independent_reader() -> None:
    enc = ProtobufEncoder()
    for _ in range(2):  # the second pass runs from the memo caches
        body = enc.encode_compressed(streams())
        decoded = decode_push_proto(body)
        assert [s.labels for s in decoded] == [{"level": "info", "service_name": "cart"},
                                               {"level": "error", "service_name": 'we"ird'}]
        first = decoded[0].entries
        assert [(e.ts, e.line) for e in first] == [(T0, "first ünïcode"), (T0 + 1, "x" * 300),
                                                  (1_700_000_001_000_000_000, "whole second")]
        assert first[0].metadata == {"trace_id": "ab" * 16, "user": "bob"}
        assert first[1].metadata == {}
        assert decoded[1].entries[0].metadata == {"k": "v" * 200}


def test_protobuf_is_snappy_block_and_uses_the_push_proto_field_numbers() -> None:
    raw = bytes(cramjam.snappy.decompress_raw(ProtobufEncoder().encode_compressed(streams()[:1])))
    top = fields(raw)
    assert [(n, wt) for n, wt, _ in top] == [(1, 2)]  # PushRequest.streams
    stream = fields(top[0][2])
    assert stream[0][:2] == (1, 2) and stream[0][2] == b'{level="info", service_name="cart"}'
    assert {(n, wt) for n, wt, _ in stream[1:]} == {(2, 2)}  # entries, no hash
    entry = fields(stream[1][2])
    assert [(n, wt) for n, wt, _ in entry] == [(1, 2), (2, 2), (3, 2), (3, 2)]
    ts = fields(entry[0][2])
    assert ts == [(1, 0, T0 // 10**9), (2, 0, T0 % 10**9)]
    assert fields(entry[2][2]) == [(1, 2, b"trace_id"), (2, 2, b"ab" * 16)]


def test_empty_request() -> None:
    assert decode_push_proto(ProtobufEncoder().encode_compressed([])) == []


def test_json_document() -> None:
    doc = json.loads(JSONEncoder.document(streams()))
    first = doc["streams"][0]
    assert first["stream"] == {"level": "info", "service_name": "cart"}
    assert first["values"][0] == [str(T0), "first ünïcode", {"trace_id": "ab" * 16, "user": "bob"}]
    assert first["values"][1] == [str(T0 + 1), "x" * 300]  # no empty metadata object
    assert all(isinstance(v[0], str) for s in doc["streams"] for v in s["values"])


def test_json_gzip() -> None:
    body = JSONEncoder(gzip_body=True).encode(streams())
    assert json.loads(gzip.decompress(body)) == json.loads(JSONEncoder.document(streams()))
    assert JSONEncoder(gzip_body=False).encode(streams()) == JSONEncoder.document(streams())


def test_stepwise_encoding_equals_one_go() -> None:
    enc = ProtobufEncoder()
    out: list[bytes] = []
    steps = sum(1 for _ in enc.steps(streams(), out, chunk=2))
    assert steps == 2 and out == [enc.encode(streams())]
