"""agent.pdata.wire: varints and length-delimited fields against upb's encoder, and view classes."""

from __future__ import annotations

import random

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

from agent.pdata import proto
from agent.pdata.wire import B1, delimited, varint, view_classes
from agent.testing import make_traces

F = descriptor_pb2.FieldDescriptorProto


def _upb_varint_field(n: int) -> bytes:
    """``AnyValue.int_value`` (field 3, a oneof member, so 0 is written too) encoded by upb.

    int64 values at or above 2^63 are their two's complement, which has the same varint.
    """
    return proto.AnyValue(int_value=n if n < 1 << 63 else n - (1 << 64)).SerializeToString()


_BOUNDARIES = sorted({0, 1} | {(1 << k) + d for k in range(7, 64, 7) for d in (-1, 0, 1)} | {(1 << 64) - 1})


@pytest.mark.parametrize("n", _BOUNDARIES)
def test_varint_matches_upb_at_every_length_boundary(n: int) -> None:
    assert b"\x18" + varint(n) == _upb_varint_field(n)


def test_varint_matches_upb_on_random_values() -> None:
    rng = random.Random(11)
    for _ in range(2000):
        n = rng.getrandbits(rng.randint(1, 64))
        assert b"\x18" + varint(n) == _upb_varint_field(n), n


def test_one_byte_table() -> None:
    assert len(B1) == 128
    assert all(B1[n] == varint(n) == bytes((n,)) for n in range(128))


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16383, 16384, 70_000])
def test_delimited_matches_upb(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert delimited(b"\x3a", payload) == proto.AnyValue(bytes_value=payload).SerializeToString()


def test_delimited_pieces_concatenate_into_a_valid_request() -> None:
    a, b = make_traces(3, batch_index=0), make_traces(2, batch_index=1)
    pieces = [rs.SerializeToString() for rs in (*a.proto.resource_spans, *b.proto.resource_spans)]
    req = proto.ExportTraceServiceRequest()
    req.ParseFromString(b"".join(delimited(b"\x0a", p) for p in pieces))
    assert [rs.SerializeToString() for rs in req.resource_spans] == pieces


def _views(package: str = "test.wire_view") -> dict[str, object]:
    return view_classes(package, {
        "Request": [("resource_spans", 1, F.TYPE_MESSAGE, True, "ResourceSpans")],
        "ResourceSpans": [("resource", 1, F.TYPE_BYTES, False, ""),
                          ("scope_spans", 2, F.TYPE_MESSAGE, True, "ScopeSpans"),
                          ("schema_url", 3, F.TYPE_STRING, False, "")],
        "ScopeSpans": [("spans", 2, F.TYPE_BYTES, True, "")],
    })


def test_view_keeps_sub_messages_as_their_bytes() -> None:
    td = make_traces(4)
    td.proto.resource_spans[0].schema_url = "https://opentelemetry.io/schemas/1.26.0"
    view = _views()["Request"]()  # type: ignore[operator]
    view.ParseFromString(td.to_bytes())
    (rs,) = view.resource_spans
    original = td.proto.resource_spans[0]
    assert rs.resource == original.resource.SerializeToString()
    assert rs.schema_url == original.schema_url
    assert list(rs.scope_spans[0].spans) == [s.SerializeToString() for s in original.scope_spans[0].spans]
    again = proto.ExportTraceServiceRequest()
    again.ParseFromString(view.SerializeToString())
    assert again == td.proto  # undeclared fields (the scope) are kept as unknown fields


def test_views_are_private_and_can_be_built_twice() -> None:
    first, second = _views("test.wire_private"), _views("test.wire_private")
    assert first["Request"] is not second["Request"]
    assert first["Request"].DESCRIPTOR.full_name == "test.wire_private.Request"  # type: ignore[attr-defined]
    with pytest.raises(KeyError):
        descriptor_pool.Default().FindMessageTypeByName("test.wire_private.Request")
