"""An independent protobuf wire reader for the test doubles (Loki push, Jaeger PostSpans).

Written from the protobuf encoding spec and sharing no code with ``agent/`` (whose
encoders it checks), so an encoder mistake cannot cancel out in tests. Strict:
a truncated or over-long varint, a length or fixed-size value past the end, and
the group wire types (3, 4) raise :class:`ValueError`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["read_fields"]


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _take(buf: bytes, pos: int, n: int) -> tuple[bytes, int]:
    end = pos + n
    if end > len(buf):
        raise ValueError("length past the end")
    return buf[pos:end], end


def read_fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """``(field number, wire type, value)`` of every field of a message, in order.

    Values: an int for varints (wire type 0), the raw bytes otherwise (8 bytes for
    type 1, the payload for type 2, 4 bytes for type 5).
    """
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        val: Any
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 2:
            n, pos = _varint(buf, pos)
            val, pos = _take(buf, pos, n)
        elif wt == 1:
            val, pos = _take(buf, pos, 8)
        elif wt == 5:
            val, pos = _take(buf, pos, 4)
        else:
            raise ValueError(f"unsupported wire type {wt}")
        out.append((num, wt, val))
    return out
