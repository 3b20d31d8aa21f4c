"""Strict decoding of YAML values into frozen config dataclasses.

Every component's ``Config`` is a dataclass whose defaults are the factory
defaults. :func:`decode` merges the user's mapping over those defaults and
reports *every* problem with its dotted YAML path, as the collector does:

* unknown keys are errors (``exporters.file.pth: unknown key; valid keys: ...``);
* fields with ``metadata={"required": True}`` must be present and non-empty;
* ``Duration`` accepts Go duration strings (``200ms``, ``1m30s``);
* a nested dataclass given as ``null`` keeps its defaults (the collector's
  "present but empty" rule), ``Optional[Dataclass]`` given as ``null`` turns
  the block on with defaults;
* after decoding, a ``validate()`` method may return ``(subpath, message)``
  pairs (or plain messages) for cross-field checks.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import types
import typing
from collections.abc import Iterable
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from agent.errors import ConfigError

__all__ = [
    "REQUIRED",
    "ByteSize",
    "Duration",
    "decode",
    "format_duration",
    "join_path",
    "parse_bytes",
    "parse_duration",
]

T = TypeVar("T")


class _Marker(enum.Enum):
    DURATION = "duration"
    BYTES = "bytes"


#: Seconds, written in YAML as a Go duration string.
Duration = Annotated[float, _Marker.DURATION]
#: Bytes, written as an int or a string with a unit (``20MiB``, ``64KB``).
ByteSize = Annotated[int, _Marker.BYTES]

#: ``field(metadata=REQUIRED)`` marks a field that the user must set.
REQUIRED: dict[str, Any] = {"required": True}

_DUR_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DUR_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: object) -> float:
    """Parse a Go duration (``1h2m3.5s``, ``200ms``, ``0``) into seconds.

    Raises:
        ValueError: not a duration.
    """
    if isinstance(text, bool):
        raise ValueError(f"expected a duration such as '5s', got {text!r}")
    if isinstance(text, int | float):
        if text == 0:
            return 0.0
        raise ValueError(f"expected a duration with a unit such as '{text}s' or '{text}ms', got {text!r}")
    if not isinstance(text, str):
        raise ValueError(f"expected a duration such as '5s', got {type(text).__name__}")
    s = text.strip()
    sign = 1.0
    if s[:1] in "+-" and s:
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    pos = 0
    total = 0.0
    while pos < len(s):
        m = _DUR_RE.match(s, pos)
        if not m:
            raise ValueError(f"invalid duration {text!r}: use Go syntax such as '200ms', '5s', '1m30s'")
        total += float(m.group(1)) * _DUR_UNITS[m.group(2)]
        pos = m.end()
    if pos == 0:
        raise ValueError(f"invalid duration {text!r}")
    return sign * total


def format_duration(seconds: float) -> str:
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


_BYTE_UNITS = {
    "": 1, "b": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3,
    "k": 1024, "m": 1024**2, "g": 1024**3,
}
_BYTES_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_bytes(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a size in bytes, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("size must not be negative")
        return value
    if isinstance(value, str):
        m = _BYTES_RE.match(value)
        if m and m.group(2).lower() in _BYTE_UNITS:
            return int(float(m.group(1)) * _BYTE_UNITS[m.group(2).lower()])
    raise ValueError(f"expected a size such as 1048576 or '20MiB', got {value!r}")


def join_path(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


class _Decoder:
    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def err(self, path: str, msg: str) -> None:
        self.errors.append(ConfigError(path, msg))

    # Returns (ok, value)
    def value(self, tp: Any, data: Any, path: str, base: Any = dataclasses.MISSING) -> tuple[bool, Any]:
        origin = get_origin(tp)
        if origin is Annotated:
            inner, *meta = get_args(tp)
            if _Marker.DURATION in meta:
                try:
                    return True, parse_duration(data)
                except ValueError as e:
                    self.err(path, str(e))
                    return False, None
            if _Marker.BYTES in meta:
                try:
                    return True, parse_bytes(data)
                except ValueError as e:
                    self.err(path, str(e))
                    return False, None
            return self.value(inner, data, path, base)
        if tp is Any or tp is object:
            return True, data
        if origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if data is None and type(None) in get_args(tp):
                # Optional[Dataclass]: null means "on, with defaults".
                if len(args) == 1 and dataclasses.is_dataclass(args[0]):
                    return self.value(args[0], {}, path)
                return True, None
            if len(args) == 1:
                b = base if base is not None else dataclasses.MISSING
                return self.value(args[0], data, path, b)
            for a in args:  # first type that decodes cleanly
                sub = _Decoder()
                ok, v = sub.value(a, data, path)
                if ok and not sub.errors:
                    return True, v
            self.err(path, f"expected one of {', '.join(_type_name(a) for a in args)}, got {data!r}")
            return False, None
        if origin is Literal:
            choices = get_args(tp)
            if data in choices:
                return True, data
            if isinstance(data, str) and data.lower() in choices:
                return True, data.lower()
            self.err(path, f"invalid value {data!r}; expected one of {', '.join(map(str, choices))}")
            return False, None
        if origin in (list, tuple) or tp in (list, tuple):
            largs = get_args(tp)
            item = largs[0] if largs else Any
            if data is None:
                empty: list[Any] | tuple[Any, ...] = [] if origin is list else ()
                return True, empty
            if not isinstance(data, list):
                self.err(path, f"expected a list, got {type(data).__name__}")
                return False, None
            out: list[Any] = []
            ok_all = True
            for i, d in enumerate(data):
                ok, v = self.value(item, d, f"{path}[{i}]")
                ok_all &= ok
                out.append(v)
            result: list[Any] | tuple[Any, ...] = out if origin is list else tuple(out)
            return ok_all, result
        if origin is dict or tp is dict:
            dargs = get_args(tp)
            vt = dargs[1] if len(dargs) == 2 else Any
            if data is None:
                return True, {}
            if not isinstance(data, dict):
                self.err(path, f"expected a mapping, got {type(data).__name__}")
                return False, None
            out_d: dict[str, Any] = {}
            ok_all = True
            for k, d in data.items():
                ok, v = self.value(vt, d, join_path(path, k))
                ok_all &= ok
                out_d[str(k)] = v
            return ok_all, out_d
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return self.dataclass(tp, data, path, None if base is dataclasses.MISSING else base)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            try:
                return True, tp(data)
            except ValueError:
                self.err(path, f"invalid value {data!r}; expected one of {', '.join(str(m.value) for m in tp)}")
                return False, None
        if tp is bool:
            if isinstance(data, bool):
                return True, data
            self.err(path, f"expected true or false, got {data!r}")
            return False, None
        if tp is int:
            if isinstance(data, int) and not isinstance(data, bool):
                return True, data
            self.err(path, f"expected an integer, got {data!r}")
            return False, None
        if tp is float:
            if isinstance(data, int | float) and not isinstance(data, bool):
                return True, float(data)
            self.err(path, f"expected a number, got {data!r}")
            return False, None
        if tp is str:
            if isinstance(data, str):
                return True, data
            if isinstance(data, int | float) and not isinstance(data, bool):
                return True, str(data)
            self.err(path, f"expected a string, got {type(data).__name__}")
            return False, None
        self.err(path, f"cannot decode type {tp!r}")
        return False, None

    def dataclass(self, cls: type[Any], data: Any, path: str, base: Any) -> tuple[bool, Any]:
        if base is None:
            base = cls()
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.err(path, f"expected a mapping, got {type(data).__name__}")
            return False, None
        hints = get_type_hints(cls, include_extras=True)
        fields = {(f.metadata.get("key") or f.name): f for f in dataclasses.fields(cls) if f.init}
        ok_all = True
        for key in data:
            if key not in fields:
                valid = ", ".join(sorted(fields))
                self.err(join_path(path, key), f"unknown key; valid keys: {valid}")
                ok_all = False
        kwargs: dict[str, Any] = {}
        for key, f in fields.items():
            fpath = join_path(path, key)
            if key in data:
                ok, v = self.value(hints[f.name], data[key], fpath, getattr(base, f.name))
                ok_all &= ok
                if ok:
                    kwargs[f.name] = v
                    if f.metadata.get("required") and v in ("", None, [], {}):
                        self.err(fpath, "required")
                        ok_all = False
            elif f.metadata.get("required") and getattr(base, f.name) in ("", None, [], {}):
                self.err(fpath, "required")
                ok_all = False
        try:
            obj = dataclasses.replace(base, **kwargs)
        except (TypeError, ValueError) as e:
            self.err(path, str(e))
            return False, None
        if ok_all:
            validate = getattr(obj, "validate", None)
            if callable(validate):
                for problem in validate() or ():
                    if isinstance(problem, tuple):
                        sub, msg = problem
                        self.err(join_path(path, sub) if sub else path, msg)
                    else:
                        self.err(path, str(problem))
                    ok_all = False
        return ok_all, obj


def decode(cls: type[T], data: Any, path: str = "") -> T:
    """Decode ``data`` (a YAML mapping or None) into ``cls``, over its defaults.

    Raises:
        ConfigErrors: every problem found, each with its path.
    """
    from agent.errors import ConfigErrors

    d = _Decoder()
    ok, obj = d.value(cls, data, path)
    if d.errors or not ok:
        raise ConfigErrors(d.errors or [ConfigError(path, "invalid")])
    return typing.cast(T, obj)


def collect(errors: Iterable[ConfigError]) -> list[ConfigError]:
    out: list[ConfigError] = []
    for e in errors:
        if hasattr(e, "errors"):
            out.extend(e.errors)
        else:
            out.append(e)
    return out
