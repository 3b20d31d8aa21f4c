"""Byte-level access to OTLP trace requests, so buffering never re-encodes spans.

:data:`TracesView` parses an ``ExportTraceServiceRequest`` with the OTLP field
numbers but keeps resources, scopes and spans as their serialized bytes (one
C-level parse per request; the message classes come from
:func:`agent.pdata.wire.view_classes`, in a private descriptor pool, so
nothing clashes with the OTLP modules). :func:`trace_id_of` reads a span's
trace id from its bytes, and :func:`encode_request` assembles a new request
from stored pieces by concatenation:

    request       = { 1: ResourceSpans }*
    ResourceSpans = { 1: resource, 2: ScopeSpans*, 3: schema_url }
    ScopeSpans    = { 1: scope, 2: span*, 3: schema_url }

The result is a valid ``ExportTraceServiceRequest`` whose spans are
byte-identical to the ones received.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from google.protobuf import descriptor_pb2

from agent.pdata.wire import ViewField, delimited, view_classes

__all__ = ["GroupKey", "TracesView", "encode_request", "trace_id_of"]

#: (resource bytes, resource schema_url, scope bytes, scope schema_url).
GroupKey = tuple[bytes, str, bytes, str]

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE: Final = "otel_sidecar.tail_sampling_view"

_SPEC: Final[dict[str, list[ViewField]]] = {
    "TracesView": [("resource_spans", 1, _F.TYPE_MESSAGE, True, "ResourceSpansView")],
    "ResourceSpansView": [("resource", 1, _F.TYPE_BYTES, False, ""),
                          ("scope_spans", 2, _F.TYPE_MESSAGE, True, "ScopeSpansView"),
                          ("schema_url", 3, _F.TYPE_STRING, False, "")],
    "ScopeSpansView": [("scope", 1, _F.TYPE_BYTES, False, ""),
                       ("spans", 2, _F.TYPE_BYTES, True, ""),
                       ("schema_url", 3, _F.TYPE_STRING, False, "")],
    "SpanIdView": [("trace_id", 1, _F.TYPE_BYTES, False, "")],
}

_CLASSES: Final = view_classes(_PACKAGE, _SPEC)
#: ``ExportTraceServiceRequest`` view: resources, scopes and spans as bytes.
TracesView: Final[Any] = _CLASSES["TracesView"]
_SpanIdView: Final[Any] = _CLASSES["SpanIdView"]


def trace_id_of(span: bytes) -> bytes:
    """The trace id of a serialized span.

    Fast path: encoders write fields in number order, so a 16-byte trace id is
    the first field. (A span repeating field 1, which no encoder does, would be
    grouped by its first trace id; its bytes are forwarded unchanged either way.)
    """
    if span[:2] == b"\x0a\x10":
        return span[2:18]
    view = _SpanIdView()
    view.ParseFromString(span)
    return bytes(view.trace_id)


def _str_field(tag: bytes, text: str) -> bytes:
    return delimited(tag, text.encode()) if text else b""


def encode_request(groups: Mapping[GroupKey, Iterable[bytes]]) -> bytes:
    """A serialized ``ExportTraceServiceRequest`` holding ``groups`` (spans grouped by resource and scope)."""
    by_resource: dict[tuple[bytes, str], list[bytes]] = {}
    for (resource, rschema, scope, sschema), spans in groups.items():
        body = b"".join(delimited(b"\x12", s) for s in spans)
        scope_spans = (delimited(b"\x0a", scope) if scope else b"") + body + _str_field(b"\x1a", sschema)
        by_resource.setdefault((resource, rschema), []).append(delimited(b"\x12", scope_spans))
    out = []
    for (resource, rschema), scopes in by_resource.items():
        rs = (delimited(b"\x0a", resource) if resource else b"") + b"".join(scopes) + _str_field(b"\x1a", rschema)
        out.append(delimited(b"\x0a", rs))
    return b"".join(out)
