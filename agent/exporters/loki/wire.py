"""Protobuf wire pieces shared by the loki converter and encoder (no imports from either).

:class:`PairEncoder` encodes ``EntryAdapter.structuredMetadata`` fields (field
3, a ``LabelPairAdapter`` with name = 1, value = 2), memoizing the bytes
before the value per (name, value length) and whole fields for values that
repeat. Memos are bounded and cleared when full.

Varints come from :mod:`agent.pdata.wire` (unrolled for the sizes that occur
here: lengths, nanoseconds, seconds since the epoch).
"""

from __future__ import annotations

from typing import Final

from agent.pdata.wire import varint

__all__ = ["PairEncoder"]

_MEMO_MAX: Final = 16384


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
