"""Protobuf wire pieces shared by the code that works on serialized OTLP (and Jaeger, Loki) bytes.

Role
    The fast paths keep messages as bytes instead of decoding them into Python
    objects: the jaeger converter, the tail sampler's buffer, the OTLP
    receiver's id check and the loki encoder. They share two tools:

    * :func:`view_classes` builds *view* message classes: a real message's
      field numbers and wire types, but with the sub-messages a caller does not
      need declared as opaque ``bytes`` (or left out). One C-level (upb) parse
      of a request then hands over, say, each span as its serialized bytes.
    * :func:`varint` and :func:`delimited` encode the framing of a
      length-delimited field, so stored pieces can be assembled into a valid
      message by concatenation, without re-encoding them.

Invariants
    * View classes live in a *private* descriptor pool per call: nothing is
      registered in the default pool, so a view never clashes with the
      generated OTLP modules (or with another view using the same names).
      Unknown fields are kept by the parser as usual (``DiscardUnknownFields``
      drops them); a view never changes the bytes of a field it declares as
      ``bytes``.
    * :func:`varint` takes a non-negative int (lengths, counts, timestamps);
      the result is the canonical (shortest) base-128 encoding. Negative
      numbers (which protobuf encodes as 10-byte two's complement) are not
      supported.
    * Pure functions and immutable tables: safe from any thread, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["B1", "ViewField", "delimited", "varint", "view_classes"]

#: One-byte varints 0..127 (``B1[n] == varint(n)`` for ``n < 128``).
B1: Final[tuple[bytes, ...]] = tuple(bytes((i,)) for i in range(128))

#: One field of a view message: (name, number, ``FieldDescriptorProto`` type,
#: repeated, message type name within the view package, or "" for scalars and bytes).
ViewField = tuple[str, int, int, bool, str]

_F = descriptor_pb2.FieldDescriptorProto


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


def delimited(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its encoded ``tag`` (key), the payload's length as a varint, the payload."""
    return tag + varint(len(payload)) + payload


def view_classes(package: str, messages: Mapping[str, Sequence[ViewField]]) -> dict[str, Any]:
    """Message classes for the view ``messages`` (name -> fields), in a private descriptor pool.

    Args:
        package: the proto package of the views (e.g. ``otel_sidecar.jaeger_view``);
            message type names in ``messages`` refer to messages of this package.
        messages: the view messages, by name, each with its fields.

    Returns:
        The generated message class of each view, by name.
    """
    fdp = descriptor_pb2.FileDescriptorProto(name=package.replace(".", "/") + ".proto", package=package,
                                             syntax="proto3")
    for name, fields in messages.items():
        msg = fdp.message_type.add()
        msg.name = name
        for fname, number, ftype, repeated, type_name in fields:
            f = msg.field.add()
            f.name = fname
            f.number = number
            f.type = ftype  # type: ignore[assignment]
            f.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL  # type: ignore[assignment]
            if type_name:
                f.type_name = f".{package}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
            for name in messages}
