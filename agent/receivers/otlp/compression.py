"""Bounded decompression of HTTP request bodies (decompression-bomb safe).

Role: the OTLP/HTTP server feeds the compressed body to a :class:`Decoder`
chunk by chunk as it arrives; the decoder inflates each chunk immediately.

Invariants:

* Never more than ``limit + 1`` bytes are produced: gzip and deflate use
  ``zlib``'s ``max_length`` so a bomb stops after the limit, zstd decodes into
  buffers capped at ``limit + 1`` and snappy's declared length is checked
  before decoding. Going past the limit raises :class:`TooLarge`.
* Malformed or truncated streams (bad header, bad CRC, cut short, trailing
  garbage) raise :class:`BadEncoding`.
* gzip accepts concatenated members (as Go's reader does); ``deflate`` and
  ``zlib`` accept both zlib-wrapped and raw deflate streams.
* zstd and snappy need the optional ``cramjam`` package; without it they are
  not offered (see :func:`agent.receivers.otlp.config.supported_compressions`).
"""

from __future__ import annotations

import importlib
import zlib
from typing import Any

__all__ = ["BadEncoding", "Decoder", "TooLarge", "decoder_for"]

_cramjam: Any
try:
    _cramjam = importlib.import_module("cramjam")
except ImportError:  # pragma: no cover - depends on the environment
    _cramjam = None

_SNAPPY_FRAMED_MAGIC = b"\xff\x06\x00\x00sNaPpY"


class TooLarge(Exception):
    """The body is larger than the limit (compressed or decompressed)."""


class BadEncoding(ValueError):
    """The body is not a valid stream of its Content-Encoding."""


class Decoder:
    """Collects a body, decoding as it goes. Subclasses handle one encoding."""

    __slots__ = ("_chunks", "_size", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._chunks: list[bytes] = []
        self._size = 0

    def _out(self, data: bytes) -> None:
        if data:
            self._size += len(data)
            if self._size > self.limit:
                raise TooLarge()
            self._chunks.append(data)

    def feed(self, chunk: bytes) -> None:
        """Take the next piece of the body as received."""
        self._out(chunk)

    def finish(self) -> bytes:
        """The whole decoded body. Raises BadEncoding if the stream is incomplete."""
        chunks = self._chunks
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)


class _Zlib(Decoder):
    """gzip (``wbits=31``) or zlib/raw deflate (detected from the first bytes)."""

    __slots__ = ("_d", "_gzip", "_head")

    def __init__(self, limit: int, gzip: bool) -> None:
        super().__init__(limit)
        self._gzip = gzip
        self._d: Any = zlib.decompressobj(31) if gzip else None
        self._head = b""

    def feed(self, chunk: bytes) -> None:
        if self._d is None:
            # deflate/zlib: zlib-wrapped when the first two bytes are a valid zlib header.
            self._head += chunk
            if len(self._head) < 2:
                return
            chunk, self._head = self._head, b""
            cmf, flg = chunk[0], chunk[1]
            wrapped = (cmf & 0x0F) == 8 and (cmf >> 4) <= 7 and ((cmf << 8) | flg) % 31 == 0
            self._d = zlib.decompressobj(15 if wrapped else -15)
        self._inflate(chunk)

    def _inflate(self, data: bytes) -> None:
        d = self._d
        while data:
            if d.eof:
                # A finished gzip member followed by more data: the next member.
                if not self._gzip:
                    raise BadEncoding("trailing data after the end of the deflate stream")
                d = self._d = zlib.decompressobj(31)
            room = self.limit - self._size + 1
            try:
                out = d.decompress(data, room)
            except zlib.error as e:
                raise BadEncoding(f"invalid {'gzip' if self._gzip else 'deflate'} data: {e}")
            self._out(out)  # raises TooLarge once past the limit
            data = d.unconsumed_tail or (d.unused_data if d.eof else b"")

    def finish(self) -> bytes:
        if self._d is None:
            if self._head:
                raise BadEncoding("deflate stream cut short")
            return b""
        if not self._d.eof:
            raise BadEncoding(f"{'gzip' if self._gzip else 'deflate'} stream cut short")
        return super().finish()


class _Whole(Decoder):
    """Encodings decoded in one step once the (bounded) compressed body is in."""

    __slots__ = ("_kind",)

    def __init__(self, limit: int, kind: str) -> None:
        super().__init__(limit)
        self._kind = kind

    def finish(self) -> bytes:
        data = super().finish()
        if not data:
            return b""
        assert _cramjam is not None
        if self._kind == "zstd":
            return self._zstd(data)
        if data.startswith(_SNAPPY_FRAMED_MAGIC) or self._kind == "x-snappy-framed":
            return self._bounded(_cramjam.snappy.decompress_into, data, "snappy")
        try:
            size = int(_cramjam.snappy.decompress_raw_len(data))
        except Exception as e:
            raise BadEncoding(f"invalid snappy data: {e}")
        if size > self.limit:
            raise TooLarge()
        try:
            out = _cramjam.snappy.decompress_raw(data)
        except Exception as e:
            raise BadEncoding(f"invalid snappy data: {e}")
        return bytes(out)

    def _zstd(self, data: bytes) -> bytes:
        return self._bounded(_cramjam.zstd.decompress_into, data, "zstd")

    def _bounded(self, into: Any, data: bytes, name: str) -> bytes:
        """Decode into buffers that grow x4 up to limit + 1 bytes."""
        cap = self.limit + 1
        size = min(cap, max(64 * 1024, 8 * len(data)))
        while True:
            buf = bytearray(size)
            try:
                n = int(into(data, buf))
            except Exception as e:
                if "whole buffer" not in str(e):  # cramjam's "buffer too small"
                    raise BadEncoding(f"invalid {name} data: {e}")
                if size >= cap:
                    raise TooLarge()
                size = min(cap, size * 4)
                continue
            if n >= cap:
                raise TooLarge()
            return bytes(memoryview(buf)[:n])


def decoder_for(encoding: str, limit: int) -> Decoder:
    """A decoder for a normalised Content-Encoding (``""`` = identity).

    Raises:
        KeyError: the encoding is not supported by this build.
    """
    if encoding == "":
        return Decoder(limit)
    if encoding == "gzip":
        return _Zlib(limit, gzip=True)
    if encoding in ("deflate", "zlib"):
        return _Zlib(limit, gzip=False)
    if _cramjam is not None and encoding in ("zstd", "snappy", "x-snappy-framed"):
        # The compressed body is held whole, so it is bounded by the same limit.
        return _Whole(limit, encoding)
    raise KeyError(encoding)
