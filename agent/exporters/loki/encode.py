"""Loki push request bodies: snappy-compressed ``push.proto`` or JSON.

**Protobuf** (``Content-Type: application/x-protobuf``): a hand-written
encoder of ``logproto.PushRequest`` (``grafana/loki:pkg/push/push.proto``)::

    PushRequest      { repeated StreamAdapter streams = 1; }           // format = 2 left empty
    StreamAdapter    { string labels = 1; repeated EntryAdapter entries = 2; }  // hash = 3 left 0
    EntryAdapter     { google.protobuf.Timestamp timestamp = 1; string line = 2;
                       repeated LabelPairAdapter structuredMetadata = 3; }      // parsed = 4 never sent
    LabelPairAdapter { string name = 1; string value = 2; }
    Timestamp        { int64 seconds = 1; int32 nanos = 2; }

The whole message is then compressed with snappy's **block** format
(``cramjam.snappy.compress_raw``), as Loki requires. Encoding is plain bytes
concatenation: the per-second timestamp prefix and repeated structured
metadata pairs (attribute values that recur, resource pairs) are memoized, so
an entry costs a few dictionary lookups and one join.

**JSON** (``Content-Type: application/json``)::

    {"streams": [{"stream": {"label": "value"},
                  "values": [["<unix ns as a string>", "<line>", {"trace_id": "..."}]]}]}

The third element (structured metadata) is present only when non-empty. The
body is gzip-compressed (level 1) unless ``compression: none``.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from typing import Any, Final

import cramjam
import orjson

from agent.exporters.loki.convert import Stream
from agent.exporters.loki.wire import PairEncoder
from agent.pdata.wire import B1, varint

__all__ = ["JSONEncoder", "ProtobufEncoder", "snappy_compress", "varint"]

_NO_CACHE_KEYS: Final = frozenset({"trace_id", "span_id"})


def snappy_compress(data: bytes) -> bytes:
    """Snappy block format (not framed), as Loki's push API expects."""
    return bytes(cramjam.snappy.compress_raw(data))


class ProtobufEncoder:
    """Encodes streams as a serialized ``PushRequest`` (uncompressed).

    Not thread-safe (memo dictionaries); one instance per exporter, used on the loop.
    """

    __slots__ = ("_pairs", "_sec_cache", "_sec_key")

    def __init__(self) -> None:
        self._pairs = PairEncoder()
        self._sec_key = -1
        self._sec_cache = b""

    def encode(self, streams: Iterable[Stream]) -> bytes:
        """Serialized ``PushRequest`` holding ``streams`` (their entries in order).

        Lines are ``str``; structured metadata is either the
        converter's pre-encoded fields (protobuf mode) or a ``{name: value}`` dict."""
        out: list[bytes] = []
        for _ in self.steps(streams, out):
            pass
        return out[0]

    def steps(self, streams: Iterable[Stream], result: list[bytes], chunk: int = 2048) -> Iterator[None]:
        """Encode like :meth:`encode`, yielding after every ``chunk`` entries; the
        serialized request is appended to ``result`` at the end."""
        out: list[bytes] = []
        field = self._pairs.field
        fresh = self._pairs.fresh
        count = 0
        for stream in streams:
            lb = stream.labels.encode()
            parts: list[bytes] = [b"\x0a", varint(len(lb)), lb]
            for ts, line, sm in stream.entries:
                count += 1
                if count == chunk:
                    count = 0
                    yield
                sec, nanos = divmod(ts, 1_000_000_000)
                if sec != self._sec_key:
                    self._sec_key = sec
                    self._sec_cache = b"\x08" + varint(sec)
                tsb = self._sec_cache + (b"\x10" + varint(nanos) if nanos else b"")
                lb = line.encode()
                n = len(lb)
                if isinstance(sm, bytes):  # pre-encoded by the converter (protobuf mode)
                    entry = b"".join((b"\x0a", B1[len(tsb)], tsb, b"\x12", B1[n] if n < 0x80 else varint(n), lb, sm))
                else:
                    body = [b"\x0a", B1[len(tsb)], tsb, b"\x12", B1[n] if n < 0x80 else varint(n), lb]
                    if sm:
                        for name, value in sm.items():
                            body.append(fresh(name, value) if name in _NO_CACHE_KEYS else field(name, value))
                    entry = b"".join(body)
                n = len(entry)
                parts.append(b"\x12")
                parts.append(B1[n] if n < 0x80 else varint(n))
                parts.append(entry)
            sb = b"".join(parts)
            out.append(b"\x0a")
            out.append(varint(len(sb)))
            out.append(sb)
        result.append(b"".join(out))

    def encode_compressed(self, streams: Iterable[Stream]) -> bytes:
        """:meth:`encode`, snappy block compressed: the HTTP body."""
        return snappy_compress(self.encode(streams))


class JSONEncoder:
    """Encodes streams as Loki's JSON push body (optionally gzip level 1)."""

    __slots__ = ("_gzip",)

    def __init__(self, *, gzip_body: bool) -> None:
        self._gzip = gzip_body

    @staticmethod
    def document(streams: Iterable[Stream]) -> bytes:
        """The uncompressed JSON document.

        Raises:
            TypeError: the streams come from a converter in protobuf mode (pre-encoded metadata).
        """
        out = []
        for stream in streams:
            values: list[list[Any]] = []
            for ts, line, sm in stream.entries:
                if not sm:
                    values.append([str(ts), line])
                elif isinstance(sm, bytes):
                    raise TypeError("JSON encoding needs streams converted with protobuf=False")
                else:
                    values.append([str(ts), line, sm])
            out.append({"stream": dict(stream.pairs), "values": values})
        return orjson.dumps({"streams": out})

    def encode(self, streams: Iterable[Stream]) -> bytes:
        """The HTTP body."""
        doc = self.document(streams)
        return gzip.compress(doc, compresslevel=1, mtime=0) if self._gzip else doc
