"""Stored values per OTLP point type, and the per-type operations the accumulator needs.

Role: everything that differs between number, histogram, exponential
histogram and summary points lives here, behind one small interface
(:class:`Ops`): read a point into an immutable value, add two values (delta
accumulation), subtract them (increase of a refused stream, for the overflow
series) and pick exemplars. The accumulator's temporality logic is written
once, against this interface.

Invariants:

* Values are immutable once stored (tuples and ``__slots__`` objects that are
  never edited): folding a point *replaces* a series' value. A render running
  in another thread reads ``series.value`` once and always sees a consistent
  value (copy-on-write).
* Histogram bucket counts are stored per bucket (not cumulative); the
  renderers accumulate them.
* ``add``/``sub`` return ``None`` when the two values cannot be combined
  (different bucket layout, a negative increase): the caller treats that as a
  reset.
"""

from __future__ import annotations

import abc
import math
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any, ClassVar

from agent.exporters.prometheus import exphist
from agent.exporters.prometheus.translate import label_name
from agent.pdata.attributes import value_to_str

__all__ = [
    "EXP_OPS",
    "GAUGE_OPS",
    "HISTOGRAM_OPS",
    "NUMBER_OPS",
    "SUMMARY_OPS",
    "Exemplar",
    "ExpValue",
    "HistValue",
    "Ops",
    "SummaryValue",
    "format_float",
]

#: OpenMetrics limit on an exemplar's label names plus values, in characters.
EXEMPLAR_LABEL_LIMIT = 128


def format_float(v: float) -> str:
    """A sample value as both exposition formats accept it (``NaN``, ``+Inf``, shortest repr)."""
    if type(v) is int:
        return str(v)
    if v - v == 0:
        return repr(float(v))
    if v != v:
        return "NaN"
    return "+Inf" if v > 0 else "-Inf"


class Exemplar:
    """One exemplar: label pairs (trace_id, span_id, filtered attributes), value, time."""

    __slots__ = ("_om", "labels", "ts_ns", "value")

    def __init__(self, labels: tuple[tuple[str, str], ...], value: float, ts_ns: int) -> None:
        self.labels = labels
        self.value = value
        self.ts_ns = ts_ns
        self._om: str | None = None

    @classmethod
    def from_otlp(cls, e: Any) -> Exemplar:
        """From an OTLP ``Exemplar``; ids in lower-case hex override attributes of the same name,
        then attributes are kept while the labels stay within 128 characters."""
        pairs: list[tuple[str, str]] = []
        if e.trace_id:
            pairs.append(("trace_id", e.trace_id.hex()))
        if e.span_id:
            pairs.append(("span_id", e.span_id.hex()))
        budget = EXEMPLAR_LABEL_LIMIT - sum(len(n) + len(v) for n, v in pairs)
        taken = {n for n, _ in pairs}
        for kv in e.filtered_attributes:
            name = label_name(kv.key)
            if not name or name in taken:
                continue
            text = value_to_str(kv.value)
            if len(name) + len(text) <= budget:
                pairs.append((name, text))
                taken.add(name)
                budget -= len(name) + len(text)
        value = e.as_double if e.WhichOneof("value") == "as_double" else float(e.as_int)
        return cls(tuple(pairs), value, e.time_unix_nano)

    def om(self) -> str:
        """The OpenMetrics suffix `` # {labels} value timestamp`` (cached)."""
        text = self._om
        if text is None:
            from agent.exporters.prometheus.translate import escape_label_value

            body = ",".join(f'{n}="{escape_label_value(v)}"' for n, v in self.labels)
            text = f" # {{{body}}} {format_float(self.value)}"
            if self.ts_ns:
                text += f" {self.ts_ns / 1e9!r}"
            self._om = text
        return text


def _latest(exemplars: Any) -> Any:
    best = exemplars[0]
    for e in exemplars:
        if e.time_unix_nano >= best.time_unix_nano:
            best = e
    return best


class HistValue:
    """An explicit-bounds histogram: per-bucket ``counts`` (``len(bounds) + 1``), count, sum."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...], counts: tuple[int, ...], count: int, sum: float | None) -> None:
        self.bounds = bounds
        self.counts = counts
        self.count = count
        self.sum = sum


class ExpValue:
    """An exponential histogram at ``scale`` <= 8, with its classic view cached on first use."""

    __slots__ = ("_classic", "count", "negative", "positive", "scale", "sum", "zero_count", "zero_threshold")

    def __init__(self, scale: int, zero_count: int, zero_threshold: float, positive: exphist.Buckets,
                 negative: exphist.Buckets, count: int, sum: float | None) -> None:
        self.scale = scale
        self.zero_count = zero_count
        self.zero_threshold = zero_threshold
        self.positive = positive
        self.negative = negative
        self.count = count
        self.sum = sum
        self._classic: HistValue | None = None

    def at_scale(self, scale: int) -> ExpValue:
        """This histogram at a scale not above its own."""
        by = self.scale - scale
        if by <= 0:
            return self
        return ExpValue(scale, self.zero_count, self.zero_threshold, exphist.downscale(*self.positive, by),
                        exphist.downscale(*self.negative, by), self.count, self.sum)

    def classic(self, bounds: tuple[float, ...]) -> HistValue:
        """This histogram over classic ``bounds`` (cached; ``bounds`` is fixed per exporter)."""
        c = self._classic
        if c is None or c.bounds is not bounds:
            counts = exphist.classic_counts(self.scale, self.zero_count, self.zero_threshold,
                                            self.positive, self.negative, bounds)
            c = self._classic = HistValue(bounds, counts, self.count, self.sum)
        return c


class SummaryValue:
    """A summary: count, sum and ``(quantile, value)`` pairs in ascending quantile order."""

    __slots__ = ("count", "quantiles", "sum")

    def __init__(self, count: int, sum: float, quantiles: tuple[tuple[float, float], ...]) -> None:
        self.count = count
        self.sum = sum
        self.quantiles = quantiles


def _add_opt(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


class Ops(abc.ABC):
    """Per-point-type operations (see the module docstring). Subclasses are stateless singletons.

    Attributes:
        attr_tag: wire tag (``field << 3 | 2``) of the point's ``attributes`` field.
        additive: values of this type add up (sums, histograms); gauges and
            summaries are last-value types.
    """

    attr_tag: ClassVar[int] = 0x3A
    additive: ClassVar[bool] = True
    has_exemplars: ClassVar[bool] = True

    @abc.abstractmethod
    def read(self, p: Any, fam: Any) -> Any:
        """The point's value, or ``None`` when the point is invalid and must be dropped."""

    def add(self, a: Any, b: Any) -> Any:
        """``a + b`` (delta accumulation), or ``None`` when incompatible."""
        return None

    def sub(self, a: Any, b: Any) -> Any:
        """The increase ``a - b``, or ``None`` on a reset or incompatible layouts."""
        return None

    def bucket_bounds(self, value: Any, fam: Any) -> Sequence[float] | None:
        """Bounds that exemplars are filed under (None: one exemplar for the series)."""
        return None

    def exemplars(self, p: Any, value: Any, old: Any, fam: Any) -> Any:
        """The series' exemplar state after ``p``: the latest one, or the latest per bucket.

        Args:
            p: the OTLP point (with at least one exemplar).
            value: the series' value after folding ``p``.
            old: the previous exemplar state.
            fam: the series' family (layout context).
        """
        bounds = self.bucket_bounds(value, fam)
        if bounds is None:
            return Exemplar.from_otlp(_latest(p.exemplars))
        n = len(bounds) + 1
        slots: list[Exemplar | None] = list(old) if isinstance(old, tuple) and len(old) == n else [None] * n
        for e in p.exemplars:  # in time order; later ones win
            ex = Exemplar.from_otlp(e)
            i = bisect_left(bounds, ex.value)
            cur = slots[i]
            if cur is None or ex.ts_ns >= cur.ts_ns:
                slots[i] = ex
        return tuple(slots)


class NumberOps(Ops):
    """Gauge and sum points: the value is an ``int`` or ``float``."""

    attr_tag = 0x3A  # field 7

    def read(self, p: Any, fam: Any) -> Any:
        return p.as_double or p.as_int

    def add(self, a: Any, b: Any) -> Any:
        return a + b

    def sub(self, a: Any, b: Any) -> Any:
        return a - b if a >= b else None


class GaugeOps(NumberOps):
    """Gauge points: last value wins, also in the overflow series."""

    additive = False
    has_exemplars = False  # the spec drops gauge exemplars


class HistogramOps(Ops):
    """Explicit-bounds histogram points."""

    attr_tag = 0x4A  # field 9

    def read(self, p: Any, fam: Any) -> Any:
        counts = tuple(p.bucket_counts)
        bounds = tuple(p.explicit_bounds)
        if counts and len(counts) != len(bounds) + 1:
            return None
        if not counts:
            bounds = ()
            counts = (p.count,)
        bounds = fam.layouts.setdefault(bounds, bounds)  # intern: one tuple per layout
        return HistValue(bounds, counts, p.count, p.sum if p.HasField("sum") else None)

    def add(self, a: HistValue, b: HistValue) -> HistValue | None:
        if a.bounds != b.bounds:
            return None
        return HistValue(a.bounds, tuple(x + y for x, y in zip(a.counts, b.counts, strict=True)),
                         a.count + b.count, _add_opt(a.sum, b.sum))

    def sub(self, a: HistValue, b: HistValue) -> HistValue | None:
        if a.bounds != b.bounds or a.count < b.count:
            return None
        counts = tuple(x - y for x, y in zip(a.counts, b.counts, strict=True))
        if any(c < 0 for c in counts):
            return None
        return HistValue(a.bounds, counts, a.count - b.count,
                         None if a.sum is None or b.sum is None else a.sum - b.sum)

    def bucket_bounds(self, value: HistValue, fam: Any) -> Sequence[float]:
        return value.bounds


class ExpHistogramOps(Ops):
    """Exponential histogram points: scale capped at 8 (downscaled), below -4 dropped, no sum dropped."""

    attr_tag = 0x0A  # field 1

    def read(self, p: Any, fam: Any) -> Any:
        scale = p.scale
        if scale < exphist.MIN_SCALE or not p.HasField("sum"):
            return None
        v = ExpValue(scale, p.zero_count, p.zero_threshold,
                     (p.positive.offset, tuple(p.positive.bucket_counts)),
                     (p.negative.offset, tuple(p.negative.bucket_counts)), p.count, p.sum)
        return v.at_scale(exphist.MAX_SCALE)

    @staticmethod
    def _pair(a: ExpValue, b: ExpValue) -> tuple[ExpValue, ExpValue] | None:
        if a.zero_threshold != b.zero_threshold:
            return None
        scale = min(a.scale, b.scale)
        return a.at_scale(scale), b.at_scale(scale)

    def add(self, a: ExpValue, b: ExpValue) -> ExpValue | None:
        pair = self._pair(a, b)
        if pair is None:
            return None
        x, y = pair
        return ExpValue(x.scale, x.zero_count + y.zero_count, x.zero_threshold,
                        exphist.add_buckets(x.positive, y.positive), exphist.add_buckets(x.negative, y.negative),
                        x.count + y.count, _add_opt(x.sum, y.sum))

    def sub(self, a: ExpValue, b: ExpValue) -> ExpValue | None:
        pair = self._pair(a, b)
        if pair is None:
            return None
        x, y = pair
        pos = exphist.sub_buckets(x.positive, y.positive)
        neg = exphist.sub_buckets(x.negative, y.negative)
        if pos is None or neg is None or x.zero_count < y.zero_count or x.count < y.count:
            return None
        return ExpValue(x.scale, x.zero_count - y.zero_count, x.zero_threshold, pos, neg, x.count - y.count,
                        None if x.sum is None or y.sum is None else x.sum - y.sum)

    def bucket_bounds(self, value: ExpValue, fam: Any) -> Sequence[float]:
        bounds: tuple[float, ...] = fam.exp_bounds
        return bounds


class SummaryOps(Ops):
    """Summary points (always cumulative; last value wins)."""

    attr_tag = 0x3A  # field 7
    additive = False
    has_exemplars = False

    def read(self, p: Any, fam: Any) -> Any:
        qs = sorted((q.quantile, q.value) for q in p.quantile_values)
        if any(not 0.0 <= q <= 1.0 or math.isnan(q) for q, _ in qs):
            return None
        return SummaryValue(p.count, p.sum, tuple(qs))


NUMBER_OPS = NumberOps()
GAUGE_OPS = GaugeOps()
HISTOGRAM_OPS = HistogramOps()
EXP_OPS = ExpHistogramOps()
SUMMARY_OPS = SummaryOps()
