"""Read-only "views" of OTLP trace requests, for fast conversion from wire bytes.

The view messages carry the OTLP field numbers and wire types, but declare the
sub-messages the converter handles as opaque ``bytes``: a span's
``attributes``, ``events`` and ``links``, a resource and a scope. Parsing an
``ExportTraceServiceRequest`` body with :data:`TracesView` therefore costs one
C-level parse, and each attribute arrives as its serialized ``KeyValue`` bytes,
which the converter uses as a cache key (attribute key/value pairs repeat
across spans), so most attributes are never decoded in Python.

The classes are built at import time by :func:`agent.pdata.wire.view_classes`,
in a *private* descriptor pool (nothing is registered in the default pool, so
they cannot clash with the real OTLP modules). Fields the view does not name
are never decoded.
"""

from __future__ import annotations

from typing import Any, Final

from google.protobuf import descriptor_pb2

from agent.pdata.wire import ViewField, view_classes

__all__ = ["ResourceSpansView", "SpanView", "TracesView"]

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE: Final = "otel_sidecar.jaeger_view"

_SPEC: Final[dict[str, list[ViewField]]] = {
    "TracesView": [("resource_spans", 1, _F.TYPE_MESSAGE, True, "ResourceSpansView")],
    "ResourceSpansView": [
        ("resource", 1, _F.TYPE_BYTES, False, ""),
        ("scope_spans", 2, _F.TYPE_MESSAGE, True, "ScopeSpansView"),
    ],
    "ScopeSpansView": [
        ("scope", 1, _F.TYPE_BYTES, False, ""),
        ("spans", 2, _F.TYPE_MESSAGE, True, "SpanView"),
    ],
    "StatusView": [("message", 2, _F.TYPE_STRING, False, ""), ("code", 3, _F.TYPE_INT32, False, "")],
    "SpanView": [
        ("trace_id", 1, _F.TYPE_BYTES, False, ""),
        ("span_id", 2, _F.TYPE_BYTES, False, ""),
        ("trace_state", 3, _F.TYPE_STRING, False, ""),
        ("parent_span_id", 4, _F.TYPE_BYTES, False, ""),
        ("name", 5, _F.TYPE_STRING, False, ""),
        ("kind", 6, _F.TYPE_INT32, False, ""),
        ("start_time_unix_nano", 7, _F.TYPE_FIXED64, False, ""),
        ("end_time_unix_nano", 8, _F.TYPE_FIXED64, False, ""),
        ("attributes", 9, _F.TYPE_BYTES, True, ""),
        ("dropped_attributes_count", 10, _F.TYPE_UINT32, False, ""),
        ("events", 11, _F.TYPE_BYTES, True, ""),
        ("dropped_events_count", 12, _F.TYPE_UINT32, False, ""),
        ("links", 13, _F.TYPE_BYTES, True, ""),
        ("dropped_links_count", 14, _F.TYPE_UINT32, False, ""),
        ("status", 15, _F.TYPE_MESSAGE, False, "StatusView"),
        ("flags", 16, _F.TYPE_FIXED32, False, ""),
    ],
}


_CLASSES: Final = view_classes(_PACKAGE, _SPEC)
#: ``ExportTraceServiceRequest`` view.
TracesView: Final[Any] = _CLASSES["TracesView"]
#: ``ResourceSpans`` view: ``resource`` as bytes.
ResourceSpansView: Final[Any] = _CLASSES["ResourceSpansView"]
#: ``Span`` view: ``attributes``, ``events`` and ``links`` as lists of bytes.
SpanView: Final[Any] = _CLASSES["SpanView"]
