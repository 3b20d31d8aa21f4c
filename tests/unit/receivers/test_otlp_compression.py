"""Bounded body decompression: every encoding, bombs, malformed streams."""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator

import pytest

from agent.receivers.otlp.compression import BadEncoding, TooLarge, decoder_for
from agent.receivers.otlp.config import supported_compressions

PAYLOAD = os.urandom(5000) + b"otlp" * 5000

cramjam = pytest.importorskip("cramjam")


def chunks(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def decode(encoding: str, data: bytes, limit: int = 1 << 20, size: int = 1000) -> bytes:
    d = decoder_for(encoding, limit)
    for c in chunks(data, size):
        d.feed(c)
    return d.finish()


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


ENCODED = {
    "": PAYLOAD,
    "gzip": gzip.compress(PAYLOAD),
    "zlib": zlib.compress(PAYLOAD),
    "deflate": raw_deflate(PAYLOAD),
    "zstd": bytes(cramjam.zstd.compress(PAYLOAD)),
    "snappy": bytes(cramjam.snappy.compress_raw(PAYLOAD)),
    "x-snappy-framed": bytes(cramjam.snappy.compress(PAYLOAD)),
}


@pytest.mark.parametrize("encoding", sorted(ENCODED))
@pytest.mark.parametrize("size", [1, 7, 1000, 1 << 20])
def test_every_encoding_decodes(encoding: str, size: int) -> None:
    assert encoding in supported_compressions()
    assert decode(encoding, ENCODED[encoding], size=size) == PAYLOAD


def test_deflate_accepts_zlib_wrapped_and_framed_snappy_is_detected() -> None:
    assert decode("deflate", zlib.compress(PAYLOAD)) == PAYLOAD
    assert decode("zlib", raw_deflate(PAYLOAD)) == PAYLOAD
    assert decode("snappy", ENCODED["x-snappy-framed"]) == PAYLOAD


def test_concatenated_gzip_members() -> None:
    assert decode("gzip", gzip.compress(b"abc") + gzip.compress(b"def")) == b"abcdef"


@pytest.mark.parametrize("encoding", sorted(ENCODED))
def test_limit_applies_to_the_output(encoding: str) -> None:
    assert decode(encoding, ENCODED[encoding], limit=len(PAYLOAD)) == PAYLOAD
    with pytest.raises(TooLarge):
        decode(encoding, ENCODED[encoding], limit=len(PAYLOAD) - 1)


def _gzip_bomb(total: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    out = [c.compress(block) for _ in range(total >> 20)]
    return b"".join(out) + c.flush()


def test_gzip_bomb_stops_at_the_limit() -> None:
    bomb = _gzip_bomb(256 << 20)
    assert len(bomb) < 300_000
    d = decoder_for("gzip", 1 << 20)
    with pytest.raises(TooLarge):
        for c in chunks(bomb, 65536):
            d.feed(c)
    assert d._size <= (1 << 20) + 1  # never decoded past limit + 1


def test_zstd_bomb_stops_at_the_limit() -> None:
    comp = cramjam.zstd.Compressor()
    for _ in range(64):
        comp.compress(bytes(1 << 20))
    bomb = bytes(comp.finish())
    with pytest.raises(TooLarge):
        decode("zstd", bomb, limit=1 << 20)


def test_snappy_declared_length_checked_before_decoding() -> None:
    with pytest.raises(TooLarge):
        decode("snappy", ENCODED["snappy"], limit=100)


@pytest.mark.parametrize(("encoding", "data", "message"), [
    ("gzip", b"not gzip at all", "invalid gzip"),
    ("gzip", ENCODED["gzip"][:-10], "cut short"),
    ("gzip", ENCODED["gzip"][:-8] + b"\x00\x00\x00\x00" + ENCODED["gzip"][-4:], "incorrect data check"),
    ("gzip", ENCODED["gzip"] + b"garbage", "invalid gzip"),
    ("gzip", b"", "cut short"),
    ("deflate", zlib.compress(PAYLOAD)[:-20], "cut short"),
    ("deflate", zlib.compress(PAYLOAD) + b"x", "trailing data"),
    ("deflate", b"\x78", "cut short"),
    ("zstd", ENCODED["zstd"][:-5], "invalid zstd"),
    ("snappy", b"\x05\xff\xff", "invalid snappy"),
])
def test_malformed_streams(encoding: str, data: bytes, message: str) -> None:
    with pytest.raises(BadEncoding, match=message):
        decode(encoding, data)


def test_unknown_encoding() -> None:
    with pytest.raises(KeyError):
        decoder_for("br", 10)
