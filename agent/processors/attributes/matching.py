"""``include`` / ``exclude`` matching of the ``attributes`` processor (contrib ``filterconfig``).

An item (span, log record, or metric for data points) is processed when it
matches ``include`` (if set) and does not match ``exclude`` (if set). Within
one block every property given must match (AND); within a list of strings one
entry must match (OR).

``match_type`` decides how strings compare: ``strict`` is equality, ``regexp``
is a search with the pattern (unanchored, Go RE2 syntax, see
:func:`agent.processors.attributes.actions.compile_go_regex`). ``expr`` is not
implemented by otel-sidecar. The optional ``regexp`` block (``cacheenabled``,
``cachemaxnumentries``) caches match results per string, bounded.

Properties and where they apply:

============================  ======  ====  =======  ==============================================
property                      traces  logs  metrics  compares
============================  ======  ====  =======  ==============================================
services                      yes     no    no       resource ``service.name`` (as a string)
span_names, span_kinds        yes     no    no       span name, ``SPAN_KIND_SERVER``...
log_bodies                    no      yes   no       the body as a string
log_severity_texts            no      yes   no       severity text
log_severity_number           no      yes   no       severity number >= ``min`` (name or number)
metric_names                  no      no    yes      metric name
attributes                    yes     yes   no       item attributes; every entry must match
resources                     yes     yes   yes      resource attributes; every entry must match
libraries                     yes     yes   no       scope name (and version if given)
============================  ======  ====  =======  ==============================================

An ``attributes``/``resources`` entry without ``value`` matches when the key
exists. With ``strict`` the value must be equal in type and value; with
``regexp`` the value must be a string pattern, matched against the attribute's
string form (strings, bools, ints and doubles; other types never match).
For metrics, ``resources`` is honoured (the collector validates it but its
name matcher ignores it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Literal

from agent.component import Signal
from agent.config.decode import REQUIRED
from agent.pdata.attributes import set_any_value, value_to_str
from agent.pdata.proto import AnyValue, Span
from agent.processors.attributes.actions import compile_go_regex

__all__ = [
    "AttributeMatch",
    "LibraryMatch",
    "MatchProperties",
    "Matcher",
    "RegexpOptions",
    "SeverityNumberMatch",
    "severity_number",
]

#: Stands for a missing ``service.name`` (the collector's placeholder).
NIL_SERVICE_NAME: Final = "<nil-service-name>"

_SPAN_KINDS: Final = {v: k for k, v in Span.SpanKind.items()}
_SEVERITY_BASES: Final = (("TRACE", 1), ("DEBUG", 5), ("INFO", 9), ("WARN", 13), ("ERROR", 17), ("FATAL", 21))
_SEVERITY_NAMES: Final = {
    f"{name}{'' if i == 0 else i + 1}": base + i for name, base in _SEVERITY_BASES for i in range(4)
} | {"UNSPECIFIED": 0}


def severity_number(value: int | str) -> int:
    """A severity number from a number (0-24) or a name (``INFO``, ``warn2``, ``SEVERITY_NUMBER_ERROR``).

    Raises:
        ValueError: unknown name or out of range.
    """
    if isinstance(value, int):
        if 0 <= value <= 24:
            return value
        raise ValueError(f"severity number {value} outside 0..24")
    name = value.strip().upper().removeprefix("SEVERITY_NUMBER_")
    if name.isdigit():
        return severity_number(int(name))
    try:
        return _SEVERITY_NAMES[name]
    except KeyError:
        raise ValueError(f"unknown severity {value!r}; expected TRACE, DEBUG, INFO, WARN, ERROR or FATAL "
                         "(optionally with 2-4), or a number 0-24") from None


@dataclass(frozen=True, slots=True)
class AttributeMatch:
    """``{key, value}``: the key must exist; with a value, the value must match too."""

    key: str = field(default="", metadata=REQUIRED)
    value: Any = None


@dataclass(frozen=True, slots=True)
class LibraryMatch:
    """``{name, version}`` of the instrumentation scope; no version matches any version."""

    name: str = ""
    version: str | None = None


@dataclass(frozen=True, slots=True)
class SeverityNumberMatch:
    """``log_severity_number``: ``min`` as a number or name; ``match_undefined`` for severity 0."""

    min: int | str = 0
    match_undefined: bool = False


@dataclass(frozen=True, slots=True)
class RegexpOptions:
    """``regexp``: cache match results (``cachemaxnumentries`` 0 = the default bound)."""

    cacheenabled: bool = False
    cachemaxnumentries: int = 0


_STRING_LISTS: Final = ("services", "span_names", "span_kinds", "log_bodies", "log_severity_texts", "metric_names")
_ALLOWED: Final = {
    Signal.TRACES: frozenset({"services", "span_names", "span_kinds", "attributes", "resources", "libraries"}),
    Signal.LOGS: frozenset({"log_bodies", "log_severity_texts", "log_severity_number", "attributes", "resources",
                            "libraries"}),
    Signal.METRICS: frozenset({"metric_names", "resources"}),
}
_PROPERTIES: Final = (*_STRING_LISTS, "log_severity_number", "attributes", "resources", "libraries")


@dataclass(frozen=True, slots=True)
class MatchProperties:
    """One ``include`` or ``exclude`` block."""

    match_type: Literal["strict", "regexp", "expr"] | None = field(default=None, metadata=REQUIRED)
    regexp: RegexpOptions | None = None
    services: list[str] = field(default_factory=list)
    span_names: list[str] = field(default_factory=list)
    span_kinds: list[str] = field(default_factory=list)
    log_bodies: list[str] = field(default_factory=list)
    log_severity_texts: list[str] = field(default_factory=list)
    log_severity_number: SeverityNumberMatch | None = None
    metric_names: list[str] = field(default_factory=list)
    attributes: list[AttributeMatch] = field(default_factory=list)
    resources: list[AttributeMatch] = field(default_factory=list)
    libraries: list[LibraryMatch] = field(default_factory=list)

    def set_properties(self) -> list[str]:
        """Names of the properties given a non-empty value."""
        return [p for p in _PROPERTIES if getattr(self, p) not in (None, [])]

    def validate(self) -> list[tuple[str, str]]:
        """Checks that do not depend on the signal."""
        problems: list[tuple[str, str]] = []
        if self.match_type is None:
            return problems
        if self.match_type == "expr":
            return [("match_type", "expr is not implemented by otel-sidecar; use strict or regexp")]
        if not self.set_properties():
            problems.append(("", f"at least one of {', '.join(_PROPERTIES)} must be set"))
        regexp = self.match_type == "regexp"
        if regexp:
            for prop in _STRING_LISTS:
                for i, pattern in enumerate(getattr(self, prop)):
                    problems.extend(_regex_problem(f"{prop}[{i}]", pattern))
            for i, lib in enumerate(self.libraries):
                problems.extend(_regex_problem(f"libraries[{i}].name", lib.name))
                if lib.version is not None:
                    problems.extend(_regex_problem(f"libraries[{i}].version", lib.version))
        else:
            valid = sorted(k for k in _SPAN_KINDS.values() if k != "SPAN_KIND_UNSPECIFIED")
            for i, kind in enumerate(self.span_kinds):
                if kind not in valid:
                    problems.append((f"span_kinds[{i}]", f"invalid span kind {kind!r} with match_type strict; "
                                     f"expected one of {', '.join(valid)}"))
        for prop in ("attributes", "resources"):
            for i, am in enumerate(getattr(self, prop)):
                if am.value is None:
                    continue
                path = f"{prop}[{i}].value"
                if regexp:
                    if not isinstance(am.value, str):
                        problems.append((path, "match_type regexp needs a string pattern"))
                    else:
                        problems.extend(_regex_problem(path, am.value))
                else:
                    try:
                        set_any_value(AnyValue(), am.value)
                    except (TypeError, ValueError) as e:
                        problems.append((path, f"cannot be compared with an attribute value: {e}"))
        if self.log_severity_number is not None:
            try:
                severity_number(self.log_severity_number.min)
            except ValueError as e:
                problems.append(("log_severity_number.min", str(e)))
        if self.regexp is not None and self.regexp.cachemaxnumentries < 0:
            problems.append(("regexp.cachemaxnumentries", "must not be negative"))
        return problems

    def problems_for(self, signal: Signal) -> list[tuple[str, str]]:
        """Properties that do not apply to ``signal``, or none that does."""
        allowed = _ALLOWED[signal]
        given = self.set_properties()
        problems = [(p, f"not valid for {signal.value}; valid properties: {', '.join(sorted(allowed))}")
                    for p in given if p not in allowed]
        if not problems and not given:
            problems.append(("", f"at least one of {', '.join(sorted(allowed))} must be set for {signal.value}"))
        return problems


def _regex_problem(path: str, pattern: str) -> list[tuple[str, str]]:
    try:
        compile_go_regex(pattern)
    except re.error as e:
        return [(path, f"invalid regular expression {pattern!r}: {e}")]
    return []


# --- compiled matchers ---------------------------------------------------------------

#: Bound of a regexp result cache when cachemaxnumentries is 0.
DEFAULT_CACHE_ENTRIES: Final = 10_000

StrPred = Callable[[str], bool]


def _string_set(patterns: Sequence[str], regexp: bool, options: RegexpOptions | None) -> StrPred:
    """A predicate true when a string matches one of ``patterns``."""
    if not regexp:
        exact = frozenset(patterns)
        return exact.__contains__
    regexes = [compile_go_regex(p) for p in dict.fromkeys(patterns)]

    def search(s: str) -> bool:
        return any(r.search(s) is not None for r in regexes)

    if options is None or not options.cacheenabled:
        return search
    limit = options.cachemaxnumentries or DEFAULT_CACHE_ENTRIES
    cache: dict[str, bool] = {}

    def cached(s: str) -> bool:
        hit = cache.get(s)
        if hit is None:
            if len(cache) >= limit:
                cache.clear()
            hit = cache[s] = search(s)
        return hit

    return cached


def _go_float_str(d: float) -> str:
    """``strconv.FormatFloat(d, 'f', -1, 64)``: shortest round-trip digits, no exponent."""
    if d != d:
        return "NaN"
    if d in (float("inf"), float("-inf")):
        return "+Inf" if d > 0 else "-Inf"
    text = format(Decimal(repr(d)), "f")
    return text[:-2] if text.endswith(".0") else text


def _attr_string(v: AnyValue) -> str | None:
    """The string a regexp attribute matcher compares (None: type never matches)."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "bool_value":
        return "true" if v.bool_value else "false"
    if which == "int_value":
        return str(v.int_value)
    if which == "double_value":
        return _go_float_str(v.double_value)
    return None


class _AttrMatcher:
    """Every entry must match: key present and, if given, value equal (strict) or matching (regexp)."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Sequence[AttributeMatch], regexp: bool, options: RegexpOptions | None) -> None:
        self._entries: list[tuple[str, AnyValue | None, StrPred | None]] = []
        for e in entries:
            if e.value is None:
                self._entries.append((e.key, None, None))
            elif regexp:
                self._entries.append((e.key, None, _string_set([str(e.value)], True, options)))
            else:
                expected = AnyValue()
                set_any_value(expected, e.value)
                self._entries.append((e.key, expected, None))

    def __call__(self, attrs: Any) -> bool:
        if not attrs:
            return False
        for key, expected, pred in self._entries:
            value = None
            for kv in attrs:
                if kv.key == key:
                    value = kv.value
                    break
            if value is None:
                return False
            if expected is not None:
                if value != expected:
                    return False
            elif pred is not None:
                text = _attr_string(value)
                if text is None or not pred(text):
                    return False
        return True


def _service_name(resource: Any) -> str:
    for kv in resource.attributes:
        if kv.key == "service.name":
            return value_to_str(kv.value)
    return NIL_SERVICE_NAME


class Matcher:
    """A compiled ``include`` or ``exclude`` block for one signal.

    The checks are split by level so the processor evaluates each resource
    and each scope once, not once per item.

    Args:
        props: a validated block (see :meth:`MatchProperties.problems_for`).
    """

    __slots__ = (
        "_attributes",
        "_body",
        "_kinds",
        "_libraries",
        "_metric_names",
        "_names",
        "_resources",
        "_services",
        "_severity",
        "_severity_texts",
    )

    def __init__(self, props: MatchProperties) -> None:
        rx = props.match_type == "regexp"
        opts = props.regexp

        def strings(values: list[str]) -> StrPred | None:
            return _string_set(values, rx, opts) if values else None

        self._services = strings(props.services)
        self._names = strings(props.span_names)
        self._kinds = strings(props.span_kinds)
        self._body = strings(props.log_bodies)
        self._severity_texts = strings(props.log_severity_texts)
        self._metric_names = strings(props.metric_names)
        sev = props.log_severity_number
        self._severity = None if sev is None else (severity_number(sev.min), sev.match_undefined)
        self._attributes = _AttrMatcher(props.attributes, rx, opts) if props.attributes else None
        self._resources = _AttrMatcher(props.resources, rx, opts) if props.resources else None
        self._libraries = [
            (_string_set([lib.name], rx, opts), None if lib.version is None else _string_set([lib.version], rx, opts))
            for lib in props.libraries
        ]

    def resource(self, resource: Any) -> bool:
        """``services`` and ``resources`` against one resource."""
        if self._services is not None and not self._services(_service_name(resource)):
            return False
        return self._resources is None or self._resources(resource.attributes)

    def scope(self, scope: Any) -> bool:
        """``libraries`` against one instrumentation scope (every entry must match)."""
        for name, version in self._libraries:
            if not name(scope.name):
                return False
            if version is not None and not version(scope.version):
                return False
        return True

    def span(self, span: Any) -> bool:
        """``span_names``, ``span_kinds`` and ``attributes`` against one span."""
        if self._names is not None and not self._names(span.name):
            return False
        if self._kinds is not None and not self._kinds(_SPAN_KINDS.get(span.kind, "SPAN_KIND_UNSPECIFIED")):
            return False
        return self._attributes is None or self._attributes(span.attributes)

    def log(self, record: Any) -> bool:
        """``log_bodies``, ``log_severity_*`` and ``attributes`` against one log record."""
        if self._body is not None and not self._body(value_to_str(record.body)):
            return False
        if self._severity_texts is not None and not self._severity_texts(record.severity_text):
            return False
        if self._severity is not None:
            minimum, match_undefined = self._severity
            number = record.severity_number
            if not (match_undefined if number == 0 else number >= minimum):
                return False
        return self._attributes is None or self._attributes(record.attributes)

    def metric(self, metric: Any) -> bool:
        """``metric_names`` against one metric."""
        return self._metric_names is None or self._metric_names(metric.name)
