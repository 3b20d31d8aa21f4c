"""Helpers for OTLP ``KeyValue`` lists and ``AnyValue`` (no dict conversion on hot paths)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

from agent.pdata.proto import AnyValue, KeyValue

__all__ = [
    "delete_attr",
    "find_attr",
    "get_attr",
    "set_any_value",
    "upsert_attr",
    "value_to_jsonable",
    "value_to_python",
    "value_to_str",
]

AttrList = Any  # RepeatedCompositeFieldContainer[KeyValue]


def find_attr(attrs: AttrList, key: str) -> int:
    """Index of ``key`` in ``attrs`` or -1."""
    for i, kv in enumerate(attrs):
        if kv.key == key:
            return i
    return -1


def get_attr(attrs: AttrList, key: str) -> AnyValue | None:
    for kv in attrs:
        if kv.key == key:
            value: AnyValue = kv.value
            return value
    return None


def value_to_python(v: AnyValue) -> Any:
    """An AnyValue as a plain Python value (str, bool, int, float, bytes, list, dict or None)."""
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [value_to_python(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: value_to_python(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, which)


def _jsonable(x: Any) -> Any:
    if isinstance(x, bytes):
        return base64.b64encode(x).decode("ascii")
    if isinstance(x, list):
        return [_jsonable(i) for i in x]
    if isinstance(x, dict):
        return {k: _jsonable(i) for k, i in x.items()}
    return x


def value_to_jsonable(v: AnyValue) -> Any:
    """An AnyValue as a JSON-ready Python value: :func:`value_to_python` with bytes as base64 (also inside
    arrays and maps)."""
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode("ascii")
    if which == "array_value" or which == "kvlist_value":
        return _jsonable(value_to_python(v))
    return getattr(v, which)


def value_to_str(v: AnyValue) -> str:
    """The string form used by exporters: strings as is, bools lower case,
    bytes base64, arrays and maps as compact JSON (the collector's ``AsString``)."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which is None:
        return ""
    if which == "bool_value":
        return "true" if v.bool_value else "false"
    if which == "int_value":
        return str(v.int_value)
    if which == "double_value":
        d = v.double_value
        return json.dumps(d) if d == d and d not in (float("inf"), float("-inf")) else str(d)
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode("ascii")
    return json.dumps(value_to_jsonable(v), separators=(",", ":"), ensure_ascii=False)


def set_any_value(target: AnyValue, value: Any) -> None:
    """Store a Python value into an AnyValue message."""
    if isinstance(value, AnyValue):
        target.CopyFrom(value)
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bytes | bytearray):
        target.bytes_value = bytes(value)
    elif isinstance(value, list | tuple):
        arr = target.array_value
        del arr.values[:]
        for item in value:
            set_any_value(arr.values.add(), item)
    elif isinstance(value, dict):
        kvl = target.kvlist_value
        del kvl.values[:]
        for k, item in value.items():
            kv = kvl.values.add()
            kv.key = str(k)
            set_any_value(kv.value, item)
    elif value is None:
        target.Clear()
    else:
        target.string_value = str(value)


def upsert_attr(attrs: AttrList, key: str, value: Any, *, insert: bool = True, update: bool = True) -> bool:
    """Insert and/or update ``key``. Returns True when ``attrs`` changed."""
    for kv in attrs:
        if kv.key == key:
            if not update:
                return False
            set_any_value(kv.value, value)
            return True
    if not insert:
        return False
    kv = attrs.add()
    kv.key = key
    set_any_value(kv.value, value)
    return True


def delete_attr(attrs: AttrList, key: str) -> bool:
    i = find_attr(attrs, key)
    if i < 0:
        return False
    del attrs[i]
    return True


def make_attrs(items: Iterable[tuple[str, Any]]) -> list[KeyValue]:
    out = []
    for k, v in items:
        kv = KeyValue(key=k)
        set_any_value(kv.value, v)
        out.append(kv)
    return out
