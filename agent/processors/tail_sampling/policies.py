"""Sampling policies: evaluate one buffered trace, combine decisions as the collector does.

Each policy sees a :class:`TraceData` (the trace id and its decoded spans, each
with its resource) and returns a :class:`Decision`. The final decision
(:func:`final_decision`) follows the collector's ``tailsamplingprocessor``:

* any ``INVERT_NOT_SAMPLED`` (an ``invert_match`` policy that matched) vetoes
  the trace;
* otherwise any ``SAMPLED`` samples it;
* otherwise ``INVERT_SAMPLED`` samples it unless some policy said ``NOT_SAMPLED``.

Policies are pure functions of the trace except ``composite``, whose per-second
span budgets read the injected clock.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final, Protocol

from agent.processors.tail_sampling.config import PolicyConfig, SubPolicyConfig

__all__ = ["Decision", "Policy", "TraceData", "build_policy", "final_decision", "fnv1a64"]

_STATUS: Final = {"UNSET": 0, "OK": 1, "ERROR": 2}
_DEFAULT_SALT: Final = "default-hash-seed"
_FNV_OFFSET: Final = 0xCBF29CE484222325
_FNV_PRIME: Final = 0x100000001B3
_U64: Final = (1 << 64) - 1


class Decision(enum.IntEnum):
    NOT_SAMPLED = 0
    SAMPLED = 1
    INVERT_SAMPLED = 2
    INVERT_NOT_SAMPLED = 3


class TraceData:
    """What policies read: the trace id and ``(resource, span)`` pairs of decoded protobuf messages."""

    __slots__ = ("span_count", "spans", "trace_id")

    def __init__(self, trace_id: bytes, spans: list[tuple[Any, Any]]) -> None:
        self.trace_id = trace_id
        self.spans = spans
        self.span_count = len(spans)


class Policy(Protocol):
    name: str

    def evaluate(self, trace: TraceData) -> Decision: ...


def fnv1a64(data: bytes, h: int = _FNV_OFFSET) -> int:
    """64-bit FNV-1a of ``data`` (continuing from state ``h``)."""
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _U64
    return h


class AlwaysSample:
    def __init__(self, name: str) -> None:
        self.name = name

    def evaluate(self, trace: TraceData) -> Decision:
        return Decision.SAMPLED


class Latency:
    """Trace duration = latest end - earliest start, truncated to whole milliseconds."""

    def __init__(self, name: str, threshold_ms: int, upper_threshold_ms: int) -> None:
        self.name = name
        self.lower = threshold_ms
        self.upper = upper_threshold_ms

    def evaluate(self, trace: TraceData) -> Decision:
        if not trace.spans:
            return Decision.NOT_SAMPLED
        start = min(s.start_time_unix_nano for _, s in trace.spans)
        end = max(s.end_time_unix_nano for _, s in trace.spans)
        ms = max(0, end - start) // 1_000_000
        ok = ms >= self.lower if not self.upper else self.lower < ms <= self.upper
        return Decision.SAMPLED if ok else Decision.NOT_SAMPLED


class StatusCode:
    def __init__(self, name: str, codes: Iterable[str]) -> None:
        self.name = name
        self.codes = frozenset(_STATUS[c] for c in codes)

    def evaluate(self, trace: TraceData) -> Decision:
        codes = self.codes
        for _, s in trace.spans:
            if s.status.code in codes:
                return Decision.SAMPLED
        return Decision.NOT_SAMPLED


class Probabilistic:
    """Samples when FNV-1a(salt + trace id) <= percentage of the 64-bit range (the collector's hash)."""

    def __init__(self, name: str, percentage: float, salt: str) -> None:
        self.name = name
        ratio = Fraction(Decimal(repr(float(percentage)))) / 100
        self.threshold = min(_U64, int(_U64 * ratio))
        self.never = percentage <= 0
        self._state = fnv1a64((salt or _DEFAULT_SALT).encode())

    def evaluate(self, trace: TraceData) -> Decision:
        if self.never:
            return Decision.NOT_SAMPLED
        ok = fnv1a64(trace.trace_id, self._state) <= self.threshold
        return Decision.SAMPLED if ok else Decision.NOT_SAMPLED


def _inverted(matched: bool, invert: bool) -> Decision:
    if invert:
        return Decision.INVERT_NOT_SAMPLED if matched else Decision.INVERT_SAMPLED
    return Decision.SAMPLED if matched else Decision.NOT_SAMPLED


class StringAttribute:
    """Matches string values of ``key`` in span and resource attributes."""

    def __init__(self, name: str, key: str, values: Sequence[str], regex: bool, invert: bool) -> None:
        self.name = name
        self.key = key
        self.invert = invert
        self._exact = frozenset(values) if not regex else frozenset()
        self._patterns = [re.compile(v) for v in values] if regex else []

    def _match(self, attrs: Any) -> bool:
        key = self.key
        for kv in attrs:
            if kv.key == key and kv.value.WhichOneof("value") == "string_value":
                value = kv.value.string_value
                if value in self._exact or any(p.search(value) for p in self._patterns):
                    return True
        return False

    def evaluate(self, trace: TraceData) -> Decision:
        seen: set[int] = set()
        for resource, span in trace.spans:
            if id(resource) not in seen:
                seen.add(id(resource))
                if self._match(resource.attributes):
                    return _inverted(True, self.invert)
            if self._match(span.attributes):
                return _inverted(True, self.invert)
        return _inverted(False, self.invert)


class NumericAttribute:
    """Matches int (or double) span attributes ``key`` within ``[min, max]`` (unset bound: open)."""

    def __init__(self, name: str, key: str, lo: int | None, hi: int | None, invert: bool) -> None:
        self.name = name
        self.key = key
        self.lo = lo
        self.hi = hi
        self.invert = invert

    def evaluate(self, trace: TraceData) -> Decision:
        key, lo, hi = self.key, self.lo, self.hi
        for _, span in trace.spans:
            for kv in span.attributes:
                if kv.key != key:
                    continue
                which = kv.value.WhichOneof("value")
                if which == "int_value":
                    v: float = kv.value.int_value
                elif which == "double_value":
                    v = kv.value.double_value
                else:
                    continue
                if (lo is None or v >= lo) and (hi is None or v <= hi):
                    return _inverted(True, self.invert)
        return _inverted(False, self.invert)


class And:
    """Samples when every sub-policy samples (or invert-samples)."""

    def __init__(self, name: str, subs: list[Policy]) -> None:
        self.name = name
        self.subs = subs

    def evaluate(self, trace: TraceData) -> Decision:
        for sub in self.subs:
            if sub.evaluate(trace) in (Decision.NOT_SAMPLED, Decision.INVERT_NOT_SAMPLED):
                return Decision.NOT_SAMPLED
        return Decision.SAMPLED


class Composite:
    """Sub-policies in order, each with a spans-per-second budget (see ``CompositeConfig``)."""

    def __init__(self, name: str, max_total: int, subs: list[tuple[Policy, int]], clock: Callable[[], float]) -> None:
        self.name = name
        self.max_total = max_total
        self.subs = subs
        self._clock = clock
        self._second = -1
        self._spent = [0] * len(subs)
        self._total = 0

    def evaluate(self, trace: TraceData) -> Decision:
        second = int(self._clock())
        if second != self._second:
            self._second = second
            self._spent = [0] * len(self.subs)
            self._total = 0
        n = trace.span_count
        for i, (sub, budget) in enumerate(self.subs):
            sampled = sub.evaluate(trace) in (Decision.SAMPLED, Decision.INVERT_SAMPLED)
            if sampled and self._spent[i] + n <= budget and self._total + n <= self.max_total:
                self._spent[i] += n
                self._total += n
                return Decision.SAMPLED
        return Decision.NOT_SAMPLED


def _leaf(cfg: SubPolicyConfig) -> Policy:
    t = cfg.type
    if t == "always_sample":
        return AlwaysSample(cfg.name)
    if t == "latency":
        return Latency(cfg.name, cfg.latency.threshold_ms, cfg.latency.upper_threshold_ms)
    if t == "status_code":
        return StatusCode(cfg.name, cfg.status_code.status_codes)
    if t == "probabilistic":
        return Probabilistic(cfg.name, cfg.probabilistic.sampling_percentage, cfg.probabilistic.hash_salt)
    if t == "string_attribute":
        c = cfg.string_attribute
        return StringAttribute(cfg.name, c.key, c.values, c.enabled_regex_matching, c.invert_match)
    if t == "numeric_attribute":
        n = cfg.numeric_attribute
        return NumericAttribute(cfg.name, n.key, n.min_value, n.max_value, n.invert_match)
    if t == "and":
        return And(cfg.name, [_leaf(sp) for sp in cfg.and_.and_sub_policy])  # type: ignore[attr-defined]
    raise ValueError(f"policy {cfg.name!r}: type {t!r} is not implemented")


def build_policy(cfg: PolicyConfig, clock: Callable[[], float]) -> Policy:
    """The evaluator of one validated top-level policy.

    Raises:
        ValueError: an unimplemented type (prevented by config validation).
    """
    if cfg.type != "composite":
        return _leaf(cfg)
    c = cfg.composite
    by_name = {sp.name: sp for sp in c.composite_sub_policy}
    order = [n for n in c.policy_order if n in by_name]
    order += [sp.name for sp in c.composite_sub_policy if sp.name not in order]
    alloc = {ra.policy: ra.percent * c.max_total_spans_per_second // 100 for ra in c.rate_allocation}
    share = c.max_total_spans_per_second // max(1, len(by_name))
    subs = [(_leaf(by_name[n]), alloc.get(n, share)) for n in order]
    return Composite(cfg.name, c.max_total_spans_per_second, subs, clock)


def final_decision(decisions: Iterable[Decision]) -> bool:
    """Combine the top-level policies' decisions (collector semantics; see the module docstring)."""
    seen = set(decisions)
    if Decision.INVERT_NOT_SAMPLED in seen:
        return False
    if Decision.SAMPLED in seen:
        return True
    return Decision.INVERT_SAMPLED in seen and Decision.NOT_SAMPLED not in seen
