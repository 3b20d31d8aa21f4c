"""Protobuf wire pieces shared by the loki converter and encoder (no imports from either).

* :func:`varint`: base-128 varints, unrolled for the sizes that occur (lengths,
  nanoseconds, seconds since the epoch).
* :class:`PairEncoder`: encodes ``EntryAdapter.structuredMetadata`` fields
  (field 3, a ``LabelPairAdapter`` with name = 1, value = 2), memoizing the
  bytes before the value per (name, value length) and whole fields for
  values that repeat. Memos are bounded and cleared when full.
"""

from __future__ import annotations

from typing import Final

__all__ = ["B1", "PairEncoder", "varint"]

#: One-byte varints 0..127.
B1: Final[tuple[bytes, ...]] = tuple(bytes((i,)) for i in range(128))
_MEMO_MAX: Final = 16384


def varint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int (unrolled up to 5 bytes)."""
    if n < 0x80:
        return B1[n]
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    if n < 0x200000:
        return bytes((n & 0x7F | 0x80, (n >> 7) & 0x7F | 0x80, n >> 14))
    if n < 0x10000000:
        return bytes((n & 0x7F | 0x80, (n >> 7) & 0x7F | 0x80, (n >> 14) & 0x7F | 0x80, n >> 21))
    if n < 0x800000000:
        return bytes((n & 0x7F | 0x80, (n >> 7) & 0x7F | 0x80, (n >> 14) & 0x7F | 0x80,
                      (n >> 21) & 0x7F | 0x80, n >> 28))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class PairEncoder:
    """``structuredMetadata`` field encoder with memos (not thread-safe; used on the event loop)."""

    __slots__ = ("_heads", "_pairs")

    def __init__(self) -> None:
        #: (name, value) -> encoded field, for values that repeat.
        self._pairs: dict[tuple[str, str], bytes] = {}
        #: (name, value length in bytes) -> the field's bytes before the value.
        self._heads: dict[tuple[str, int], bytes] = {}

    def fresh(self, name: str, value: str) -> bytes:
        """The field for a value unlikely to repeat (ids): only the head is memoized."""
        vb = value.encode()
        n = len(vb)
        key = (name, n)
        head = self._heads.get(key)
        if head is None:
            nb = name.encode()
            prefix = b"\x0a" + varint(len(nb)) + nb + b"\x12" + varint(n)
            head = b"\x1a" + varint(len(prefix) + n) + prefix
            if len(self._heads) >= _MEMO_MAX:
                self._heads.clear()
            self._heads[key] = head
        return head + vb

    def field(self, name: str, value: str) -> bytes:
        """The field for ``name``/``value``, memoized whole."""
        key = (name, value)
        fb = self._pairs.get(key)
        if fb is None:
            fb = self.fresh(name, value)
            if len(self._pairs) >= _MEMO_MAX:
                self._pairs.clear()
            self._pairs[key] = fb
        return fb
