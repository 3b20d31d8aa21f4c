"""Attribute actions (the collector's ``attraction``): config, validation and a compiled plan.

Shared by the ``attributes`` processor (span, log record and data point
attributes) and the ``resource`` processor (resource attributes). Each action
of the config becomes one small function over an OTLP ``KeyValue`` list; an
:class:`ActionPlan` runs them in order. Nothing is converted to dicts: the
keys of an item are read once per plan into a list (attribute lists are
short), actions find keys there and copy values as ``AnyValue`` messages, so a
plan costs a few microseconds per item.

Semantics (contrib ``internal/coreinternal/attraction``):

* ``insert``: set ``key`` if absent; ``update``: set it if present;
  ``upsert``: both. The value comes from ``value`` (any YAML value: string,
  int, double, bool, list, map) or from another attribute (``from_attribute``;
  no-op when that attribute is absent).
* ``delete``: remove ``key`` and every key matching ``pattern``.
* ``hash``: replace the value of ``key`` and of every key matching ``pattern``
  by the SHA-256 hex digest of its bytes (strings as UTF-8, bools as one byte
  0/1, ints and doubles as 8 little-endian bytes). Other types, and the empty
  string, become ``""``. SHA-256 is the collector's algorithm since contrib
  v0.75 (SHA-1 before, contrib#19779/#22831). Each attribute is hashed once,
  even when ``key`` also matches ``pattern`` (the collector hashes it twice).
* ``extract``: search ``pattern`` in the string value of ``key``; every named
  group becomes a string attribute (upserted; "" for a group that did not
  take part). Non-string values are left alone.
* ``convert``: change the type of ``key`` to ``int``, ``double`` or
  ``string``; a value that does not convert (a non-numeric string, a map...)
  is left as is and logged at debug level.

Patterns use Go RE2 syntax in the collector. They are compiled with Python's
``re`` after rewriting ``(?<name>`` to ``(?P<name>`` and ``\\z`` to ``\\Z``;
the RE2 constructs Python lacks (``\\pL``, ``(?U)``) are reported as invalid
at validation. Matching is a search (unanchored), as in Go's ``MatchString``.

``from_context`` (client metadata, auth attributes) is rejected: no request
context reaches otel-sidecar's processors.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from agent.config.decode import REQUIRED
from agent.pdata.attributes import set_any_value, value_to_str
from agent.pdata.proto import AnyValue

__all__ = [
    "ACTIONS",
    "CONVERTED_TYPES",
    "ActionConfig",
    "ActionPlan",
    "compile_go_regex",
    "convert_value",
    "hash_value",
]

ActionName = Literal["insert", "update", "upsert", "delete", "hash", "extract", "convert"]
ACTIONS: Final = ("insert", "update", "upsert", "delete", "hash", "extract", "convert")
CONVERTED_TYPES: Final = ("int", "double", "string")

_SETTERS: Final = ("insert", "update", "upsert")
_BY_KEY_OR_PATTERN: Final = ("delete", "hash")

_NAMED_GROUP = re.compile(r"(?<!\\)\(\?<(?![=!])")
_END_OF_TEXT = re.compile(r"(?<!\\)\\z")


def compile_go_regex(pattern: str) -> re.Pattern[str]:
    """Compile a collector (RE2) pattern with Python's ``re``.

    Raises:
        re.error: the pattern is invalid, or uses RE2 syntax Python lacks.
    """
    return re.compile(_END_OF_TEXT.sub(r"\\Z", _NAMED_GROUP.sub("(?P<", pattern)))


@dataclass(frozen=True, slots=True)
class ActionConfig:
    """One entry of ``actions`` (``attributes``) or ``attributes`` (``resource``).

    Attributes:
        key: the attribute acted on (optional for delete and hash with a pattern).
        action: insert, update, upsert, delete, hash, extract or convert.
        value: the value to set (insert, update, upsert).
        from_attribute: take the value from this attribute instead.
        from_context: not implemented by otel-sidecar.
        pattern: a regex on keys (delete, hash) or on the value (extract).
        converted_type: int, double or string (convert).
    """

    key: str = ""
    action: ActionName | None = field(default=None, metadata=REQUIRED)
    value: Any = None
    from_attribute: str = ""
    from_context: str = ""
    pattern: str = ""
    converted_type: str = ""

    def validate(self) -> list[tuple[str, str]]:
        """Rules of the collector's ``NewAttrProc``, reported per field."""
        a = self.action
        if a is None:
            return []
        problems: list[tuple[str, str]] = []

        def unused(*names: str) -> None:
            for name in names:
                if getattr(self, name) not in (None, ""):
                    problems.append((name, f"not used by action {a}"))

        if self.from_context:
            problems.append(("from_context", "not implemented by otel-sidecar "
                             "(client metadata does not reach processors); use value or from_attribute"))
        if a in _BY_KEY_OR_PATTERN:
            if not self.key and not self.pattern:
                problems.append(("key", f"required for action {a} unless pattern is set"))
        elif not self.key:
            problems.append(("key", f"required for action {a}"))

        if a in _SETTERS:
            sources = (self.value is not None) + bool(self.from_attribute) + bool(self.from_context)
            if sources == 0:
                problems.append(("value", f"required for action {a} (or set from_attribute)"))
            elif sources > 1:
                problems.append(("value", "set only one of value, from_attribute or from_context"))
            unused("pattern", "converted_type")
            if self.value is not None:
                try:
                    set_any_value(AnyValue(), self.value)
                except (TypeError, ValueError) as e:
                    problems.append(("value", f"cannot be stored as an attribute value: {e}"))
        elif a in _BY_KEY_OR_PATTERN:
            unused("value", "from_attribute", "converted_type")
            if self.pattern:
                problems.extend(_pattern_problems(self.pattern))
        elif a == "extract":
            unused("value", "from_attribute", "converted_type")
            if not self.pattern:
                problems.append(("pattern", "required for action extract"))
            else:
                problems.extend(_pattern_problems(self.pattern, named_groups=True))
        else:  # convert
            unused("value", "from_attribute", "pattern")
            if not self.converted_type:
                problems.append(("converted_type", "required for action convert: int, double or string"))
            elif self.converted_type not in CONVERTED_TYPES:
                problems.append(("converted_type", f"invalid value {self.converted_type!r}; "
                                 f"expected one of {', '.join(CONVERTED_TYPES)}"))
        return problems


def _pattern_problems(pattern: str, *, named_groups: bool = False) -> list[tuple[str, str]]:
    try:
        rx = compile_go_regex(pattern)
    except re.error as e:
        return [("pattern", f"invalid regular expression {pattern!r}: {e}")]
    if named_groups:
        if rx.groups == 0:
            return [("pattern", "must contain named groups such as (?P<name>...) for action extract")]
        if len(rx.groupindex) != rx.groups:
            return [("pattern", "every group must be named for action extract; use (?:...) for others")]
    return []


# --- the compiled plan ------------------------------------------------------------
#
# Reading a key of an upb ``KeyValue`` costs a wrapper object and a string
# (~0.4 us); an action that scanned the list itself would pay that for every
# attribute, per action. So :class:`ActionPlan` reads the keys once per item
# into a plain list, and every action looks keys up in that list (C speed) and
# keeps it in step with the ``KeyValue`` list when it adds or removes entries.

AttrFn = Callable[[Any, list[str]], None]
"""An action over one ``KeyValue`` repeated field and the list of its keys."""


def _index(keys: list[str], key: str) -> int:
    try:
        return keys.index(key)
    except ValueError:
        return -1


def _put_str(attrs: Any, keys: list[str], key: str, value: str) -> None:
    i = _index(keys, key)
    if i < 0:
        kv = attrs.add()
        kv.key = key
        keys.append(key)
    else:
        kv = attrs[i]
    kv.value.string_value = value


def _noop(attrs: Any, keys: list[str]) -> None:
    """An action that can never change anything."""


def _setter(action: str, key: str, const: AnyValue | None, from_attr: str) -> AttrFn:
    do_insert = action != "update"
    do_update = action != "insert"
    if const is None and from_attr == key:
        return _noop  # copying an attribute onto itself changes nothing

    def run(attrs: Any, keys: list[str]) -> None:
        if const is not None:
            src = const
        else:
            j = _index(keys, from_attr)
            if j < 0:
                return
            src = attrs[j].value
        i = _index(keys, key)
        if i < 0:
            if do_insert:
                new = attrs.add()
                new.key = key
                new.value.CopyFrom(src)
                keys.append(key)
        elif do_update:
            attrs[i].value.CopyFrom(src)

    return run


def _matching(keys: list[str], key: str, rx: re.Pattern[str] | None) -> list[int]:
    """Indices of the attributes named ``key`` or whose key matches ``rx``."""
    if rx is None:
        found: list[int] = []
        i = -1
        while True:
            try:
                i = keys.index(key, i + 1)
            except ValueError:
                return found
            found.append(i)
    search = rx.search
    return [i for i, k in enumerate(keys) if k == key or search(k) is not None]


def _deleter(key: str, rx: re.Pattern[str] | None) -> AttrFn:
    def run(attrs: Any, keys: list[str]) -> None:
        for i in reversed(_matching(keys, key, rx)):
            del attrs[i]
            del keys[i]

    return run


_TRUE: Final = b"\x01"
_FALSE: Final = b"\x00"
_INT64: Final = struct.Struct("<q")
_FLOAT64: Final = struct.Struct("<d")


def hash_value(v: AnyValue) -> None:
    """Replace ``v`` by the SHA-256 hex digest of its bytes (the collector's ``sha2Hasher``)."""
    which = v.WhichOneof("value")
    if which == "string_value":
        raw = v.string_value.encode()
    elif which == "bool_value":
        raw = _TRUE if v.bool_value else _FALSE
    elif which == "int_value":
        raw = _INT64.pack(v.int_value)
    elif which == "double_value":
        raw = _FLOAT64.pack(v.double_value)
    else:
        raw = b""
    v.string_value = hashlib.sha256(raw).hexdigest() if raw else ""


def _hasher(key: str, rx: re.Pattern[str] | None) -> AttrFn:
    def run(attrs: Any, keys: list[str]) -> None:
        for i in _matching(keys, key, rx):
            hash_value(attrs[i].value)

    return run


def _extractor(key: str, rx: re.Pattern[str]) -> AttrFn:
    names: list[str] = [""] * rx.groups
    for name, index in rx.groupindex.items():
        names[index - 1] = name

    def run(attrs: Any, keys: list[str]) -> None:
        i = _index(keys, key)
        if i < 0:
            return
        value = attrs[i].value
        if value.WhichOneof("value") != "string_value":
            return
        m = rx.search(value.string_value)
        if m is None:
            return
        for name, text in zip(names, m.groups(), strict=True):
            _put_str(attrs, keys, name, text or "")

    return run


_GO_INT: Final = re.compile(r"[+-]?[0-9]+")
_GO_FLOAT: Final = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)", re.IGNORECASE)
_GO_HEX_FLOAT: Final = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+")
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


def _parse_go_int(text: str) -> int | None:
    """``strconv.ParseInt(text, 10, 64)``, or None when it would fail."""
    if not _GO_INT.fullmatch(text):
        return None
    n = int(text)
    return n if _INT64_MIN <= n <= _INT64_MAX else None


def _parse_go_float(text: str) -> float | None:
    """``strconv.ParseFloat(text, 64)``, or None when it would fail (syntax or range)."""
    if _GO_FLOAT.fullmatch(text):
        d = float(text)
        if math.isinf(d) and "inf" not in text.lower():
            return None  # out of range
        return d
    if _GO_HEX_FLOAT.fullmatch(text):
        try:
            return float.fromhex(text)
        except OverflowError:
            return None
    return None


def convert_value(v: AnyValue, to: str) -> bool:
    """Convert ``v`` in place to ``int``, ``double`` or ``string`` (the collector's
    ``convertValue``). Returns False when the value was left unchanged because it
    does not convert."""
    which = v.WhichOneof("value")
    if to == "string":
        if which != "string_value":
            text = value_to_str(v)
            v.string_value = text
        return True
    if to == "int":
        if which == "int_value":
            return True
        if which == "double_value":
            d = v.double_value
            if not math.isfinite(d) or not _INT64_MIN <= d < 2.0**63:
                return False
            v.int_value = int(d)
            return True
        if which == "bool_value":
            v.int_value = 1 if v.bool_value else 0
            return True
        if which == "string_value":
            n = _parse_go_int(v.string_value)
            if n is None:
                return False
            v.int_value = n
            return True
        return False
    # double
    if which == "double_value":
        return True
    if which == "int_value":
        v.double_value = float(v.int_value)
        return True
    if which == "bool_value":
        v.double_value = 1.0 if v.bool_value else 0.0
        return True
    if which == "string_value":
        parsed = _parse_go_float(v.string_value)
        if parsed is None:
            return False
        v.double_value = parsed
        return True
    return False


def _converter(key: str, to: str, logger: logging.Logger) -> AttrFn:
    def run(attrs: Any, keys: list[str]) -> None:
        i = _index(keys, key)
        if i < 0:
            return
        value = attrs[i].value
        if not convert_value(value, to) and logger.isEnabledFor(logging.DEBUG):
            logger.debug("Attribute %r of type %s could not be converted to %s.", key, value.WhichOneof("value"), to)

    return run


def _compile_one(a: ActionConfig, logger: logging.Logger) -> AttrFn:
    action = a.action
    if action in _SETTERS:
        const: AnyValue | None = None
        if a.value is not None:
            const = AnyValue()
            set_any_value(const, a.value)
        return _setter(action, a.key, const, a.from_attribute)
    if action in _BY_KEY_OR_PATTERN:
        rx = compile_go_regex(a.pattern) if a.pattern else None
        return _deleter(a.key, rx) if action == "delete" else _hasher(a.key, rx)
    if action == "extract":
        return _extractor(a.key, compile_go_regex(a.pattern))
    if action == "convert":
        return _converter(a.key, a.converted_type, logger)
    raise ValueError(f"unknown action {action!r}")


class ActionPlan:
    """The actions of a validated config, compiled once and run in order.

    Args:
        actions: validated action configs.
        logger: where failed conversions are logged (debug level).

    Raises:
        ValueError: an action was not validated (unknown name or bad pattern).
    """

    __slots__ = ("_fns", "actions")

    def __init__(self, actions: Sequence[ActionConfig], logger: logging.Logger) -> None:
        self.actions = tuple(actions)
        try:
            self._fns: tuple[AttrFn, ...] = tuple(_compile_one(a, logger) for a in self.actions)
        except re.error as e:
            raise ValueError(f"invalid pattern: {e}") from e

    def __bool__(self) -> bool:
        return bool(self._fns)

    def __call__(self, attrs: Any) -> None:
        """Run every action on one ``KeyValue`` repeated field, in place."""
        keys = [kv.key for kv in attrs]
        for fn in self._fns:
            fn(attrs, keys)
