"""OTLP -> Prometheus names, units and labels (``prometheus/otlptranslator`` and the spec).

Role: pure functions, no state except small caches owned by callers. The
accumulator calls them once per *new* metric, resource, scope or series, never
per data point, so they favour clarity over speed.

Rules (``shared/docs/protocols.md`` 2.1-2.2):

* Metric names fit ``[a-zA-Z_:][a-zA-Z0-9_:]*``. With suffixes
  (``UnderscoreEscapingWithSuffixes``) the name is split on every character
  outside ``[a-zA-Z0-9:]`` and re-joined with ``_`` (collapsing runs and
  trimming the ends); the unit word is appended unless the name already
  contains it; monotonic sums get ``_total`` (an existing ``total`` token is
  moved to the end, not doubled); a leading digit gets a ``_`` prefix. Without
  suffixes only invalid characters are replaced.
* Units: the UCUM table below; ``{...}`` parts add nothing; ``a/b`` becomes
  ``a_per_b``; ``1`` adds nothing unless ``unit_1_as_ratio`` asks for ``_ratio``
  on gauges (otlptranslator's behaviour).
* Label names fit ``[a-zA-Z_][a-zA-Z0-9_]*``: invalid characters become ``_``,
  runs of ``_`` collapse (a leading ``__`` is kept), a leading digit gets
  ``key_``. When several original keys map to one label name (including the
  labels the exporter adds: ``job``, ``instance``, scope and constant labels),
  their values are joined with ``;`` in lexicographic order of the original
  keys. Labels with an empty value are omitted (Prometheus treats them as
  absent).
* ``job`` = ``service.namespace/service.name`` (or ``service.name``),
  ``instance`` = ``service.instance.id``; every other resource attribute goes
  to ``target_info``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from agent.pdata.attributes import value_to_str

__all__ = [
    "SERVICE_INSTANCE_ID",
    "SERVICE_NAME",
    "SERVICE_NAMESPACE",
    "Namer",
    "escape_help_om",
    "escape_help_text",
    "escape_label_value",
    "format_labels",
    "job_instance",
    "label_name",
    "merge_labels",
    "parse_labels",
    "unit_word",
]

SERVICE_NAME = "service.name"
SERVICE_NAMESPACE = "service.namespace"
SERVICE_INSTANCE_ID = "service.instance.id"

#: UCUM unit -> Prometheus word (the spec's table; ``TiBy`` spelled as the spec spells it).
UNIT_WORDS: dict[str, str] = {
    "d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds",
    "us": "microseconds", "ns": "nanoseconds",
    "By": "bytes", "KiBy": "kibibytes", "MiBy": "mebibytes", "GiBy": "gibibytes", "TiBy": "tebibytes",
    "kBy": "kilobytes", "KBy": "kilobytes", "MBy": "megabytes", "GBy": "gigabytes", "TBy": "terabytes",
    "m": "meters", "V": "volts", "A": "amperes", "J": "joules", "W": "watts", "g": "grams",
    "Cel": "celsius", "Hz": "hertz", "%": "percent",
}
#: Unit after ``/`` -> singular word used in ``_per_<word>``.
PER_UNIT_WORDS: dict[str, str] = {
    "s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year",
}

_NAME_SPLIT = re.compile(r"[^a-zA-Z0-9:]+")
_NAME_INVALID = re.compile(r"[^a-zA-Z0-9:_]+")
_LABEL_INVALID = re.compile(r"[^a-zA-Z0-9_]")
_UNDERSCORES = re.compile(r"_+")
_BRACES = re.compile(r"\{[^}]*\}")


def _tokens(text: str) -> list[str]:
    return [t for t in _NAME_SPLIT.split(text) if t]


def unit_word(unit: str, *, ratio: bool = False) -> str:
    """The Prometheus suffix of a UCUM ``unit`` (``By/s`` -> ``bytes_per_second``, ``{req}`` -> ``""``).

    Args:
        unit: the OTLP metric unit.
        ratio: map ``1`` to ``ratio`` (otherwise ``1`` has no suffix).
    """
    unit = unit.strip()
    if unit == "1":
        return "ratio" if ratio else ""
    main, sep, per = unit.partition("/")
    main, per = main.strip(), per.strip()
    words: list[str] = []
    if main and "{" not in main and "}" not in main and main != "1":
        words.extend(_tokens(UNIT_WORDS.get(main, main)))
    if sep and per and "{" not in per and "}" not in per:
        per_tokens = _tokens(PER_UNIT_WORDS.get(per, UNIT_WORDS.get(per, per)))
        if per_tokens:
            words.extend(["per", *per_tokens])
    return "_".join(words)


def _contains(tokens: list[str], sub: list[str]) -> bool:
    n = len(sub)
    return any(tokens[i:i + n] == sub for i in range(len(tokens) - n + 1))


@dataclass(frozen=True, slots=True)
class Namer:
    """Builds Prometheus metric names under one translation strategy.

    Attributes:
        namespace: prefix added as ``<namespace>_`` (sanitised).
        with_suffixes: append unit words and ``_total`` (``UnderscoreEscapingWithSuffixes``).
        unit_1_as_ratio: append ``_ratio`` to gauges whose unit is ``1``.
    """

    namespace: str = ""
    with_suffixes: bool = True
    unit_1_as_ratio: bool = False

    def metric_name(self, name: str, unit: str, *, counter: bool, gauge: bool) -> str:
        """The exposed name of an OTLP metric; ``""`` when nothing valid remains.

        Args:
            name: the OTLP metric name.
            unit: the OTLP unit.
            counter: a monotonic sum (gets ``_total``).
            gauge: exposed as a Prometheus gauge (``_ratio`` applies).
        """
        if not self.with_suffixes:
            body = "_".join(t for t in _NAME_INVALID.split(name) if t)
            if not body.strip("_"):
                return ""
            prefix = "_".join(t for t in _NAME_INVALID.split(self.namespace) if t)
            plain = f"{prefix}_{body}" if prefix else body
            return "_" + plain if plain[0].isdigit() else plain
        tokens = _tokens(name)
        if not tokens:
            return ""
        suffix = _tokens(unit_word(unit, ratio=self.unit_1_as_ratio and gauge))
        if suffix and not _contains(tokens, suffix):
            tokens.extend(suffix)
        if counter:
            tokens = [t for t in tokens if t != "total"]
            tokens.append("total")
        ns = _tokens(self.namespace)
        out = "_".join(ns + tokens)
        return "_" + out if out[0].isdigit() else out


_LABEL_NAMES: dict[str, str] = {}
_LABEL_CACHE_MAX = 100_000


def label_name(key: str) -> str:
    """A valid Prometheus label name for an attribute key (``""`` for an empty key); cached."""
    name = _LABEL_NAMES.get(key)
    if name is not None:
        return name
    name = _label_name(key)
    if len(_LABEL_NAMES) < _LABEL_CACHE_MAX:
        _LABEL_NAMES[key] = name
    return name


def _label_name(key: str) -> str:
    if not key:
        return ""
    prefix = ""
    if key.startswith("__"):
        prefix, key = "__", key[2:]
    name = _UNDERSCORES.sub("_", _LABEL_INVALID.sub("_", key))
    if prefix:
        name = prefix + name.lstrip("_")
    elif name[0].isdigit():
        name = "key_" + name
    return name


def merge_labels(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Sanitise and merge ``(original key, value)`` pairs into sorted label pairs.

    Keys mapping to one label name have their values joined with ``;`` in
    lexicographic order of the original keys (ties keep input order). Empty
    values and names are dropped.
    """
    names: dict[str, str] = {}
    keys: dict[str, str] = {}
    clashes: dict[str, list[tuple[str, str]]] | None = None
    for key, value in pairs:
        name = _LABEL_NAMES.get(key) or label_name(key)
        if not name:
            continue
        if name in names:
            if clashes is None:
                clashes = {}
            group = clashes.get(name)
            if group is None:
                group = clashes[name] = [(keys[name], names[name])]
            group.append((key, value))
        else:
            names[name] = value
            keys[name] = key
    if clashes:
        for name, group in clashes.items():
            group.sort(key=itemgetter(0))
            names[name] = ";".join(v for _, v in group)
    return tuple(sorted([(n, v) for n, v in names.items() if v]))


def attr_pairs(attrs: Any) -> list[tuple[str, str]]:
    """``(key, string value)`` of an OTLP ``KeyValue`` list; non-strings as JSON (spec)."""
    return [(kv.key, value_to_str(kv.value)) for kv in attrs]


def escape_label_value(value: str) -> str:
    """Escape ``\\``, ``"`` and newline for a label value (both text formats)."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def escape_help_text(text: str) -> str:
    """HELP escaping of text format 0.0.4: ``\\`` and newline."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def escape_help_om(text: str) -> str:
    """HELP escaping of OpenMetrics: ``\\``, ``"`` and newline."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_labels(pairs: Iterable[tuple[str, str]]) -> str:
    """``{a="x",b="y"}`` (escaped values), or ``""`` for no labels."""
    body = ",".join(f'{n}="{escape_label_value(v)}"' for n, v in pairs)
    return "{" + body + "}" if body else ""


_LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_ESCAPED = re.compile(r"\\(.)")


def _unescape(m: re.Match[str]) -> str:
    c = m.group(1)
    return "\n" if c == "n" else c


def parse_labels(lb: str) -> tuple[tuple[str, str], ...]:
    """The pairs of a label block made by :func:`format_labels` (its exact inverse)."""
    return tuple((n, _ESCAPED.sub(_unescape, v) if "\\" in v else v) for n, v in _LABEL_PAIR.findall(lb))


def job_instance(resource_attrs: Iterable[tuple[str, str]]) -> tuple[str, str]:
    """``(job, instance)`` from resource ``(key, value)`` pairs (``""`` when absent)."""
    found = dict(resource_attrs)
    name = found.get(SERVICE_NAME, "")
    namespace = found.get(SERVICE_NAMESPACE, "")
    job = f"{namespace}/{name}" if namespace and name else name
    return job, found.get(SERVICE_INSTANCE_ID, "")
