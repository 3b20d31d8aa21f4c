"""Span reading helpers shared by the span connectors (``span_metrics``, ``span_detectors``).

Role: the few facts both connectors read from OTLP spans, read once and
cheaply from the upb messages (no dict conversion of whole spans):

* enum names as the collector writes them (``SPAN_KIND_SERVER``,
  ``STATUS_CODE_ERROR``);
* :class:`AttrReader`: one pass over a span's attributes that picks only the
  wanted keys. Each wanted name may have *fallback* keys, the other
  semantic-conventions generation of the same attribute (``http.method`` for
  ``http.request.method``, ``db.statement`` for ``db.query.text``...): a
  value under the name itself wins over a fallback, whatever their order;
* :func:`is_local_root`: whether a span starts the trace in this service;
* :func:`attr_str`: an ``AnyValue`` as the string exporters use.

Invariants: pure functions and immutable tables, safe from any thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from agent.pdata.attributes import value_to_str

__all__ = [
    "DB_COLLECTION",
    "DB_OPERATION",
    "DB_STATEMENT",
    "DB_SUMMARY",
    "DB_SYSTEM",
    "FALLBACKS",
    "HTTP_METHOD",
    "HTTP_ROUTE",
    "KIND_CLIENT",
    "KIND_NAMES",
    "KIND_SERVER",
    "STATUS_ERROR",
    "STATUS_NAMES",
    "AttrReader",
    "attr_str",
    "is_local_root",
]

KIND_NAMES: Final = ("SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT",
                     "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER")
STATUS_NAMES: Final = ("STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR")
KIND_SERVER: Final = 2
KIND_CLIENT: Final = 3
STATUS_ERROR: Final = 2

HTTP_ROUTE: Final = "http.route"
HTTP_METHOD: Final = "http.request.method"
DB_SYSTEM: Final = "db.system.name"
DB_STATEMENT: Final = "db.query.text"
DB_OPERATION: Final = "db.operation.name"
DB_COLLECTION: Final = "db.collection.name"
DB_SUMMARY: Final = "db.query.summary"

#: Attribute name -> other names of the same attribute (older or newer semantic conventions).
FALLBACKS: Final[Mapping[str, tuple[str, ...]]] = {
    "http.request.method": ("http.method",),
    "http.method": ("http.request.method",),
    "http.response.status_code": ("http.status_code",),
    "http.status_code": ("http.response.status_code",),
    "url.scheme": ("http.scheme",),
    "server.address": ("net.host.name", "net.peer.name"),
    "db.system.name": ("db.system",),
    "db.system": ("db.system.name",),
    "db.query.text": ("db.statement",),
    "db.statement": ("db.query.text",),
    "db.operation.name": ("db.operation",),
    "db.operation": ("db.operation.name",),
    "db.collection.name": ("db.sql.table", "db.mongodb.collection", "db.cosmosdb.container"),
    "db.sql.table": ("db.collection.name",),
    "db.namespace": ("db.name",),
    "db.name": ("db.namespace",),
}

# Span.flags bits (OTLP 1.x): whether the parent's "is remote" is known, and its value.
_HAS_IS_REMOTE: Final = 0x100
_IS_REMOTE: Final = 0x200


def attr_str(v: Any) -> str:
    """An ``AnyValue`` as a string (strings as is; the collector's ``AsString`` otherwise)."""
    if v.WhichOneof("value") == "string_value":
        return str(v.string_value)
    return value_to_str(v)


def is_local_root(span: Any) -> bool:
    """True for the first span of the trace in this service: no parent, a parent known to be
    remote, or (when the producer did not record remoteness) a server span."""
    if not span.parent_span_id:
        return True
    flags = span.flags
    if flags & _HAS_IS_REMOTE:
        return bool(flags & _IS_REMOTE)
    return bool(span.kind == KIND_SERVER)


class AttrReader:
    """Reads a fixed set of attributes from ``KeyValue`` lists in one pass.

    Args:
        names: the wanted attribute names; result slot ``i`` holds ``names[i]``.
        fallbacks: use :data:`FALLBACKS` keys when a name itself is absent.
    """

    __slots__ = ("_index", "names", "size")

    def __init__(self, names: Iterable[str], *, fallbacks: bool = True) -> None:
        self.names = tuple(names)
        self.size = len(self.names)
        index: dict[str, tuple[int, bool]] = {}
        for i, name in enumerate(self.names):
            index[name] = (i, False)
        if fallbacks:
            for i, name in enumerate(self.names):
                for other in FALLBACKS.get(name, ()):
                    index.setdefault(other, (i, True))
        self._index = index

    def read(self, attrs: Any) -> list[str | None]:
        """The wanted values (``None`` when absent) of one ``KeyValue`` list."""
        out: list[str | None] = [None] * self.size
        index = self._index
        for kv in attrs:
            hit = index.get(kv.key)
            if hit is not None:
                i, fallback = hit
                if not fallback or out[i] is None:
                    v = kv.value
                    out[i] = v.string_value or value_to_str(v)  # "" for another type (or an empty string)
        return out
