"""Configuration of the ``tail_sampling`` processor (the collector's keys, a documented subset).

Top-level keys and defaults (``processor/tailsamplingprocessor``):

* ``decision_wait`` (30s): how long after a trace's *first* span the
  decision is made.
* ``num_traces`` (50000): traces buffered at most; when full, the oldest
  pending trace is decided early (see the processor's docstring).
* ``expected_new_traces_per_sec`` (0): accepted; a pre-allocation hint only.
* ``decision_cache``: ``sampled_cache_size`` / ``non_sampled_cache_size``
  (0: ``num_traces``): how many decided trace ids are remembered so late spans
  follow the decision.
* ``sample_on_first_match`` (false): stop evaluating at the first policy that
  samples.
* ``drop_pending_traces_on_shutdown`` (false): on shutdown, drop pending
  traces instead of deciding them at once.
* ``policies``: a list of ``{name, type, <type>: {...}}``.

Implemented policy types: ``always_sample``; ``status_code``
(``status_codes``: ERROR, OK, UNSET); ``latency`` (``threshold_ms``,
``upper_threshold_ms``); ``probabilistic`` (``sampling_percentage``,
``hash_salt``); ``string_attribute`` (``key``, ``values``,
``enabled_regex_matching``, ``cache_max_size``, ``invert_match``);
``numeric_attribute`` (``key``, ``min_value``, ``max_value``,
``invert_match``); ``and`` (``and_sub_policy``: leaf policies) and
``composite`` (``max_total_spans_per_second``, ``policy_order``,
``composite_sub_policy``: leaf or ``and`` policies, ``rate_allocation``:
``{policy, percent}``). Every other collector policy type (``rate_limiting``,
``bytes_limiting``, ``span_count``, ``boolean_attribute``, ``ottl_condition``,
``trace_state``, ``trace_flags``, ``drop``) is a validation error "not
implemented by otel-sidecar", located at its ``type``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.config.decode import REQUIRED, Duration

__all__ = [
    "AndConfig",
    "CompositeConfig",
    "CompositeSubPolicyConfig",
    "Config",
    "DecisionCacheConfig",
    "LatencyConfig",
    "NumericAttributeConfig",
    "PolicyConfig",
    "ProbabilisticConfig",
    "RateAllocationConfig",
    "StatusCodeConfig",
    "StringAttributeConfig",
    "SubPolicyConfig",
]

Problems = list[tuple[str, str]]

#: Leaf policy types implemented here.
LEAF_TYPES = ("always_sample", "latency", "numeric_attribute", "probabilistic", "status_code", "string_attribute")
#: Collector policy types otel-sidecar does not implement.
NOT_IMPLEMENTED_TYPES = ("rate_limiting", "bytes_limiting", "span_count", "boolean_attribute", "ottl_condition",
                         "trace_state", "trace_flags", "drop")


@dataclass(frozen=True, slots=True)
class DecisionCacheConfig:
    """``decision_cache``: sizes of the decided-trace-id caches (0: ``num_traces``)."""

    sampled_cache_size: int = 0
    non_sampled_cache_size: int = 0

    def validate(self) -> Problems:
        out: Problems = []
        for key in ("sampled_cache_size", "non_sampled_cache_size"):
            if getattr(self, key) < 0:
                out.append((key, "must be non-negative"))
        return out


@dataclass(frozen=True, slots=True)
class LatencyConfig:
    """``latency``: sample traces whose duration (last end - first start), in ms, is
    ``>= threshold_ms``, or within ``(threshold_ms, upper_threshold_ms]`` when an upper bound is set."""

    threshold_ms: int = 0
    upper_threshold_ms: int = 0

    def validate(self) -> Problems:
        out: Problems = []
        if self.threshold_ms < 0:
            out.append(("threshold_ms", "must be non-negative"))
        if self.upper_threshold_ms < 0:
            out.append(("upper_threshold_ms", "must be non-negative"))
        elif self.upper_threshold_ms and self.upper_threshold_ms < self.threshold_ms:
            out.append(("upper_threshold_ms", "must be greater than threshold_ms"))
        return out


@dataclass(frozen=True, slots=True)
class StatusCodeConfig:
    """``status_code``: sample traces with a span whose status is one of ``status_codes``."""

    status_codes: tuple[Literal["ERROR", "OK", "UNSET"], ...] = ()

    def validate(self) -> Problems:
        return [] if self.status_codes else [("status_codes", "at least one status code is required")]


@dataclass(frozen=True, slots=True)
class ProbabilisticConfig:
    """``probabilistic``: sample ``sampling_percentage`` % of traces by a salted FNV-1a hash of the trace id."""

    hash_salt: str = ""
    sampling_percentage: float = 0.0

    def validate(self) -> Problems:
        if not 0 <= self.sampling_percentage <= 100:
            return [("sampling_percentage", "must be within [0, 100]")]
        return []


@dataclass(frozen=True, slots=True)
class StringAttributeConfig:
    """``string_attribute``: sample traces where a span or its resource has ``key`` with one of ``values``.

    With ``enabled_regex_matching`` each value is a regular expression, searched
    (unanchored, like Go's ``MatchString``). ``invert_match`` inverts the
    decision and vetoes the trace when it matches (collector semantics).
    ``cache_max_size`` is accepted (regex results are not cached here).
    """

    key: str = ""
    values: tuple[str, ...] = ()
    enabled_regex_matching: bool = False
    cache_max_size: int = 0
    invert_match: bool = False

    def validate(self) -> Problems:
        out: Problems = []
        if not self.key:
            out.append(("key", "required"))
        if not self.values:
            out.append(("values", "at least one value is required"))
        if self.enabled_regex_matching:
            for i, v in enumerate(self.values):
                try:
                    re.compile(v)
                except re.error as e:
                    out.append((f"values[{i}]", f"invalid regular expression: {e}"))
        return out


@dataclass(frozen=True, slots=True)
class NumericAttributeConfig:
    """``numeric_attribute``: sample traces with a span whose numeric ``key`` lies in ``[min_value, max_value]``
    (an unset bound is open)."""

    key: str = ""
    min_value: int | None = None
    max_value: int | None = None
    invert_match: bool = False

    def validate(self) -> Problems:
        out: Problems = []
        if not self.key:
            out.append(("key", "required"))
        if self.min_value is None and self.max_value is None:
            out.append(("", "at least one of min_value or max_value must be set"))
        elif self.min_value is not None and self.max_value is not None and self.max_value < self.min_value:
            out.append(("max_value", "must be greater than or equal to min_value"))
        return out


def _type_problems(type_name: str, allowed: tuple[str, ...], where: str) -> Problems:
    if type_name in allowed:
        return []
    implemented = ", ".join(allowed)
    if type_name in NOT_IMPLEMENTED_TYPES or type_name in ("and", "composite"):
        return [("type", f"policy type {type_name!r} is not implemented by otel-sidecar{where}; "
                         f"implemented: {implemented}")]
    return [("type", f"unknown policy type {type_name!r}; valid types: {implemented}")]


@dataclass(frozen=True)
class SubPolicyConfig:
    """A leaf policy: ``name``, ``type`` and the block named after the type."""

    name: str = field(default="", metadata=REQUIRED)
    type: str = field(default="", metadata=REQUIRED)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    status_code: StatusCodeConfig = field(default_factory=StatusCodeConfig)
    probabilistic: ProbabilisticConfig = field(default_factory=ProbabilisticConfig)
    string_attribute: StringAttributeConfig = field(default_factory=StringAttributeConfig)
    numeric_attribute: NumericAttributeConfig = field(default_factory=NumericAttributeConfig)
    # Collector policy blocks accepted only so that their type gets a clear "not implemented" error.
    rate_limiting: dict[str, Any] | None = None
    bytes_limiting: dict[str, Any] | None = None
    span_count: dict[str, Any] | None = None
    boolean_attribute: dict[str, Any] | None = None
    ottl_condition: dict[str, Any] | None = None
    trace_state: dict[str, Any] | None = None
    trace_flags: dict[str, Any] | None = None

    #: Types valid at this nesting level.
    allowed_types: tuple[str, ...] = field(default=LEAF_TYPES, init=False, repr=False)
    _where: str = field(default=" inside and/composite", init=False, repr=False)

    def validate(self) -> Problems:
        return _type_problems(self.type, self.allowed_types, self._where)

    def block_problems(self) -> Problems:
        """Problems of the block selected by ``type`` (the others are never used)."""
        block = getattr(self, self.type, None) if self.type in LEAF_TYPES else None
        validate = getattr(block, "validate", None)
        if validate is None:
            return []
        return [(f"{self.type}.{sub}" if sub else self.type, msg) for sub, msg in validate()]


@dataclass(frozen=True)
class AndConfig:
    """``and``: sample when every sub-policy samples."""

    and_sub_policy: tuple[SubPolicyConfig, ...] = ()


@dataclass(frozen=True)
class CompositeSubPolicyConfig(SubPolicyConfig):
    """A ``composite`` sub-policy: a leaf policy or an ``and``."""

    and_: AndConfig = field(default_factory=AndConfig, metadata={"key": "and"})
    allowed_types: tuple[str, ...] = field(default=(*LEAF_TYPES, "and"), init=False, repr=False)
    _where: str = field(default=" inside composite", init=False, repr=False)


@dataclass(frozen=True, slots=True)
class RateAllocationConfig:
    """``rate_allocation`` entry: ``percent`` of ``max_total_spans_per_second`` for ``policy``."""

    policy: str = ""
    percent: int = 0

    def validate(self) -> Problems:
        return [] if 0 <= self.percent <= 100 else [("percent", "must be within [0, 100]")]


@dataclass(frozen=True)
class CompositeConfig:
    """``composite``: sub-policies evaluated in ``policy_order``, each with a spans-per-second budget.

    A trace is sampled by the first sub-policy (in order) that samples it *and*
    still has budget in the current second; a sub-policy without a
    ``rate_allocation`` entry gets an equal share
    (``max_total_spans_per_second / number of sub-policies``). Sub-policies
    missing from ``policy_order`` are evaluated after the listed ones.
    """

    max_total_spans_per_second: int = 0
    policy_order: tuple[str, ...] = ()
    composite_sub_policy: tuple[CompositeSubPolicyConfig, ...] = ()
    rate_allocation: tuple[RateAllocationConfig, ...] = ()

    def validate(self) -> Problems:
        out: Problems = []
        if self.max_total_spans_per_second <= 0:
            out.append(("max_total_spans_per_second", "must be positive"))
        names = [p.name for p in self.composite_sub_policy]
        if not names:
            out.append(("composite_sub_policy", "at least one sub-policy is required"))
        for i, name in enumerate(self.policy_order):
            if name not in names:
                out.append((f"policy_order[{i}]", f"no sub-policy named {name!r}"))
        for i, ra in enumerate(self.rate_allocation):
            if ra.policy not in names:
                out.append((f"rate_allocation[{i}].policy", f"no sub-policy named {ra.policy!r}"))
        if sum(ra.percent for ra in self.rate_allocation) > 100:
            out.append(("rate_allocation", "percentages add up to more than 100"))
        return out


@dataclass(frozen=True)
class PolicyConfig(SubPolicyConfig):
    """A top-level policy: a leaf policy, ``and`` or ``composite``."""

    and_: AndConfig = field(default_factory=AndConfig, metadata={"key": "and"})
    composite: CompositeConfig = field(default_factory=CompositeConfig)
    drop: dict[str, Any] | None = None
    allowed_types: tuple[str, ...] = field(default=(*LEAF_TYPES, "and", "composite"), init=False, repr=False)
    _where: str = field(default="", init=False, repr=False)


def _policy_problems(p: SubPolicyConfig, path: str) -> Problems:
    """Block problems of ``p`` and of its nested policies, with paths relative to the policy list."""
    out = [(f"{path}.{sub}", msg) for sub, msg in p.block_problems()]
    if p.type == "and":
        subs = p.and_.and_sub_policy  # type: ignore[attr-defined]
        if not subs:
            out.append((f"{path}.and.and_sub_policy", "at least one sub-policy is required"))
        for i, sp in enumerate(subs):
            out.extend(_policy_problems(sp, f"{path}.and.and_sub_policy[{i}]"))
    elif p.type == "composite":
        for i, sp in enumerate(p.composite.composite_sub_policy):  # type: ignore[attr-defined]
            out.extend(_policy_problems(sp, f"{path}.composite.composite_sub_policy[{i}]"))
    return out


@dataclass(frozen=True)
class Config:
    """The ``tail_sampling`` processor's config (see the module docstring)."""

    decision_wait: Duration = 30.0
    num_traces: int = 50000
    expected_new_traces_per_sec: int = 0
    decision_cache: DecisionCacheConfig = field(default_factory=DecisionCacheConfig)
    sample_on_first_match: bool = False
    drop_pending_traces_on_shutdown: bool = False
    policies: tuple[PolicyConfig, ...] = ()

    def validate(self) -> Problems:
        out: Problems = []
        if self.decision_wait <= 0:
            out.append(("decision_wait", "must be positive"))
        if self.num_traces <= 0:
            out.append(("num_traces", "must be positive"))
        if self.expected_new_traces_per_sec < 0:
            out.append(("expected_new_traces_per_sec", "must be non-negative"))
        if not self.policies:
            out.append(("policies", "at least one sampling policy is required"))
        seen: set[str] = set()
        for i, p in enumerate(self.policies):
            if p.name in seen:
                out.append((f"policies[{i}].name", f"duplicate policy name {p.name!r}"))
            seen.add(p.name)
            out.extend(_policy_problems(p, f"policies[{i}]"))
        return out
