"""The series store: OTLP points folded into Prometheus series (last value, delta -> cumulative).

Role: the state behind both the ``prometheus`` (pull) and the
``prometheusremotewrite`` exporters. :meth:`Accumulator.ingest` walks an OTLP
request once and folds every point straight into its series; nothing is
converted to intermediate dicts. Renderers read a :meth:`Accumulator.snapshot`.

Identity. A Prometheus series is identified by its family name and its final
label set, so two OTLP streams can never produce duplicate exposition lines
(they share one series, last writer wins). To avoid recomputing labels per
point, each family keeps, per (resource, scope), a cache from the point's raw
attribute bytes to its series: the collector's key (scope + metric name +
point attributes + resource attributes).

Folding rules (one implementation for every point type; per-type arithmetic is
in :mod:`.values`):

* cumulative sums, gauges, summaries, cumulative histograms: the newest point
  wins; a point not newer than the stored one (``time <= stored time``: older,
  or a repeat) is ignored (counted ``out_of_order``); a new start time is a
  reset (the value and ``_created`` are replaced);
* delta sums and delta histograms (explicit and exponential): added to the
  stored value, keeping the first start time, when the point's window starts
  at or after the end of the last folded window (contiguous windows, and gaps
  the producer skipped because nothing was recorded); an overlapping or
  repeated window is dropped (``out_of_order``). A changed bucket layout
  restarts the series from the new point;
* non-monotonic delta sums (UpDownCounters exporting delta temporality, which
  the collector drops): accumulated the same way into a running sum, exposed
  as a **gauge** (the UpDownCounter's current value);
* ``UNSPECIFIED`` temporality: dropped (``unspecified_temporality``);
* a point flagged ``NO_RECORDED_VALUE`` removes its series at once;
* a series not updated for ``expiration`` seconds is removed by :meth:`expire`
  (the exporters call it from a timer, independent of scrapes).

Cardinality: at most ``max_series`` series in total and ``max_series_per_metric``
per family. A point of an unknown stream beyond a cap goes to its family's
overflow series ``{otel_metric_overflow="true"}`` (one per family, exempt from
the caps): additive types receive each refused stream's increase (deltas as
they come; cumulative values minus the previous value of that stream, tracked
in a table bounded to ``max(max_series, 1024)`` streams), gauges and summaries
the latest value. Each refused stream is counted once while it stays in that
table (``on_refused``). Once the global cap is reached, metrics that have no
series yet get neither a family nor an overflow series (their points are
dropped as ``cardinality_limit``), so memory stays bounded whatever the input.

Histogram and summary series drop an attribute label named ``le`` or
``quantile``: those names belong to the samples.

TYPE conflicts: the first metric to claim a name (or any sample name such as
``foo_bucket``) owns it; a later metric with another type or point kind is
dropped, counted (``type_conflict``) and logged once. HELP and UNIT: first wins.

Concurrency: not thread-safe; call :meth:`ingest` and :meth:`expire` from the
event loop. :meth:`snapshot` is cheap (list copies) and the values it
references are immutable, so a render may run in another thread while the
loop keeps folding (scalar fields of one series - value and start - may then
come from two consecutive points).
"""

from __future__ import annotations

import enum
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.exporters.prometheus import translate
from agent.exporters.prometheus.translate import Namer, attr_pairs, format_labels, merge_labels, parse_labels
from agent.exporters.prometheus.values import (
    EXP_OPS,
    GAUGE_OPS,
    HISTOGRAM_OPS,
    NUMBER_OPS,
    SUMMARY_OPS,
    Ops,
)
from agent.pdata import Metrics
from agent.pdata.attributes import value_to_str

__all__ = [
    "DROP_REASONS",
    "Accumulator",
    "Family",
    "Kind",
    "Series",
    "Snapshot",
    "TargetInfo",
]

log = logging.getLogger("otel_sidecar.exporter.prometheus")

_NO_RECORDED_VALUE = 1
_DELTA = 1
_CUMULATIVE = 2
OVERFLOW_LABEL = "otel_metric_overflow"
TARGET_INFO = "target_info"

#: Reasons a point is dropped (label values of the dropped-points self-metric).
DROP_REASONS = ("type_conflict", "unspecified_temporality", "out_of_order", "invalid", "cardinality_limit")
#: Names the exporter itself uses.
_RESERVED_NAMES = frozenset({TARGET_INFO, "target"})


class Kind(enum.Enum):
    """The Prometheus type of a family: (OpenMetrics type, text 0.0.4 type)."""

    COUNTER = ("counter", "counter")
    GAUGE = ("gauge", "gauge")
    HISTOGRAM = ("histogram", "histogram")
    SUMMARY = ("summary", "summary")
    UNKNOWN = ("unknown", "untyped")
    INFO = ("info", "gauge")
    STATESET = ("stateset", "gauge")

    @property
    def om(self) -> str:
        return self.value[0]

    @property
    def text(self) -> str:
        return self.value[1]


_METADATA_KINDS = {"unknown": Kind.UNKNOWN, "info": Kind.INFO, "stateset": Kind.STATESET}
_RESERVED_LABEL = {Kind.HISTOGRAM: "le", Kind.SUMMARY: "quantile"}


class Counter(Protocol):
    """What the accumulator increments (a prometheus_client child, or anything with ``inc``)."""

    def inc(self, amount: float = 1) -> None: ...


class _Count:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class Series:
    """One exposed series.

    Memory matters (one object per series): the label set is held once, as the
    pre-formatted block ``lb``; :attr:`labels` parses it back when an encoder
    needs pairs (and caches its encoding in ``pb``).

    Attributes:
        fam: its family.
        lb: the pre-formatted, escaped ``{...}`` label block (``""`` without labels).
        value: current value (see :mod:`.values`); None before the first point.
        start: start time of the current value (ns; ``_created``).
        time: time of the last folded point (ns).
        seen: accumulator clock at the last update (expiry).
        exemplar: ``Exemplar`` (sums), a tuple per bucket (histograms) or None.
        keys: the (group key, raw attribute key) entry pointing at it, or a list of them.
        res: its resource context (target_info reference counting).
        scope: its scope context (reference counting).
        overflow: True for the family's overflow series (exempt from caps).
        pb: encoded labels, cached by this accumulator's one protobuf encoder (exposition or remote write).
    """

    __slots__ = ("exemplar", "fam", "keys", "lb", "overflow", "pb", "res", "scope", "seen", "start", "time",
                 "value")

    def __init__(self, fam: Family, lb: str, res: _Resource | None) -> None:
        self.fam = fam
        self.lb = lb
        self.value: Any = None
        self.start = 0
        self.time = 0
        self.seen = 0.0
        self.exemplar: Any = None
        self.keys: Any = None
        self.res = res
        self.scope: _Scope | None = None
        self.overflow = False
        self.pb: Any = None

    @property
    def labels(self) -> tuple[tuple[str, str], ...]:
        """Sorted ``(name, value)`` pairs (parsed from ``lb``; not cached)."""
        return parse_labels(self.lb)

    def key_entries(self) -> list[tuple[Any, bytes]]:
        """Every (group key, raw attribute key) entry pointing at this series."""
        keys = self.keys
        if keys is None:
            return []
        return keys if isinstance(keys, list) else [keys]


@dataclass(eq=False)
class Family:
    """A metric family: name, type, metadata and series.

    Attributes:
        name: the text-format and protobuf name (``foo_total`` for counters with suffixes).
        base: the OpenMetrics family name (``foo`` for the counter ``foo_total``).
        kind: the Prometheus type.
        ops: per-point-type operations.
        help: HELP text (first description seen).
        unit: the unit word for OpenMetrics ``# UNIT`` ("" when it is not the name's suffix).
        series: series by label block.
        groups: per (resource, scope): raw attribute key -> series.
        layouts: interned histogram bound tuples.
        exp_bounds: classic bounds used for exponential histograms.
        cache: renderer-owned per-family cache (headers, templates).
    """

    name: str
    base: str
    kind: Kind
    ops: Ops
    help: str
    unit: str
    exp_bounds: tuple[float, ...]
    series: dict[str, Series] = field(default_factory=dict)
    groups: dict[tuple[Any, Any], dict[bytes, Series]] = field(default_factory=dict)
    layouts: dict[tuple[float, ...], tuple[float, ...]] = field(default_factory=dict)
    cache: dict[Any, Any] = field(default_factory=dict)
    overflow: Series | None = None
    n: int = 0

    @property
    def sample_name(self) -> str:
        """The sample name of a gauge-like family's value lines."""
        if self.kind is Kind.INFO:
            return self.base + "_info"
        return self.name

    def all_names(self, openmetrics: bool) -> set[str]:
        """Every name this family puts in an exposition (for conflict detection)."""
        names = {self.name, self.sample_name}
        if self.kind is Kind.HISTOGRAM:
            names |= {self.name + "_bucket", self.name + "_sum", self.name + "_count"}
        elif self.kind is Kind.SUMMARY:
            names |= {self.name + "_sum", self.name + "_count"}
        if openmetrics:
            names.add(self.base)
            if self.kind is Kind.COUNTER:
                names |= {self.base + "_total", self.base + "_created"}
            elif self.kind in (Kind.HISTOGRAM, Kind.SUMMARY):
                names.add(self.name + "_created")
        return names


@dataclass(eq=False)
class TargetInfo:
    """The ``target_info`` series of one (job, instance)."""

    labels: tuple[tuple[str, str], ...]
    lb: str
    refs: int = 0


@dataclass(eq=False)
class _Resource:
    pairs: tuple[tuple[str, str], ...]  # labels every series of this resource gets (exporter-added)
    target_labels: tuple[tuple[str, str], ...] | None  # None: no attributes for target_info
    target_key: tuple[str, str]
    refs: int = 0


@dataclass(eq=False)
class _Scope:
    pairs: tuple[tuple[str, str], ...]
    refs: int = 0


@dataclass(eq=False)
class _Route:
    family: Family | None
    ops: Ops
    delta: bool
    reason: str = ""
    cacheable: bool = True


@dataclass(eq=False)
class _Refused:
    """A refused stream's last point, for the overflow series' increases."""

    start: int
    time: int
    value: Any
    seen: float


@dataclass
class Snapshot:
    """What a render needs: families (sorted by name) with their series lists, and target infos.

    Lists are copies, values immutable: safe to read from another thread.
    """

    families: list[tuple[Family, list[Series]]]
    targets: list[TargetInfo]
    generation: int


def attr_key(raw: bytes, tag: int) -> bytes:
    """The concatenated ``attributes`` entries (wire tag ``tag``) of a serialized point.

    A cheap, deterministic identity of the point's attribute list: serializing
    the point (upb, C) and slicing it is about twice as fast as reading every
    ``KeyValue`` through the Python API.
    """
    i = 0
    n = len(raw)
    parts: list[bytes] = []
    while i < n:
        t = raw[i]
        i += 1
        wt = t & 7
        if t & 0x80:  # multi-byte tag (field numbers >= 16): never the attributes field here
            while raw[i] & 0x80:
                i += 1
            i += 1
            t = -1
        if wt == 2:
            ln = raw[i]
            i += 1
            if ln & 0x80:
                ln &= 0x7F
                shift = 7
                while True:
                    b = raw[i]
                    i += 1
                    ln |= (b & 0x7F) << shift
                    shift += 7
                    if not b & 0x80:
                        break
            if t == tag:
                parts.append(raw[i:i + ln])
            i += ln
        elif wt == 1:
            i += 8
        elif wt == 0:
            while raw[i] & 0x80:
                i += 1
            i += 1
        elif wt == 5:
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
    return b"\x00".join(parts) if len(parts) != 1 else parts[0]


class Accumulator:
    """Folds OTLP metrics into Prometheus series. See the module docstring.

    Args:
        namer: metric naming strategy.
        expiration: seconds without updates after which a series is removed (0: never).
        max_series: cap on all series (0: none).
        max_series_per_metric: cap per family (0: none).
        const_labels: labels added to every series and target_info.
        resource_to_labels: copy resource attributes onto every series.
        scope_info: add the ``otel_scope_*`` labels.
        openmetrics: OpenMetrics may be served (its names count for conflicts).
        exp_bounds: classic bounds for exponential histograms.
        clock: monotonic seconds (inject a fake one in tests).
        on_refused: incremented once per refused stream.
        on_dropped: reason -> counter of dropped points.
        on_remove: called with each removed series (remote write's stale markers).
        logger: where the once-per-name conflict warning goes.
    """

    def __init__(
        self,
        namer: Namer,
        *,
        expiration: float = 300.0,
        max_series: int = 0,
        max_series_per_metric: int = 0,
        const_labels: dict[str, str] | None = None,
        resource_to_labels: bool = False,
        scope_info: bool = True,
        openmetrics: bool = True,
        exp_bounds: tuple[float, ...] = (),
        clock: Callable[[], float] = time.monotonic,
        on_refused: Counter | None = None,
        on_dropped: dict[str, Counter] | None = None,
        on_remove: Callable[[Series], None] | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.namer = namer
        self.expiration = expiration
        self.max_series = max_series
        self.max_series_per_metric = max_series_per_metric
        self.const_pairs = tuple(sorted((k, v) for k, v in (const_labels or {}).items()))
        self.resource_to_labels = resource_to_labels
        self.scope_info = scope_info
        self.openmetrics = openmetrics
        self.exp_bounds = tuple(exp_bounds)
        self.clock = clock
        self.on_refused: Counter = on_refused if on_refused is not None else _Count()
        self.on_dropped: dict[str, Counter] = {r: (on_dropped or {}).get(r) or _Count() for r in DROP_REASONS}
        self.on_remove = on_remove
        self.log = logger or log
        #: Incremented on every change; renderers cache by it.
        self.generation = 0
        self.families: dict[str, Family] = {}
        self._names: dict[str, Family] = {}
        self._routes: dict[tuple[Any, ...], _Route] = {}
        self._resources: dict[bytes, _Resource] = {}
        self._scopes: dict[tuple[bytes, str], _Scope] = {}
        self._targets: dict[tuple[str, str], TargetInfo] = {}
        self._refused: OrderedDict[tuple[Any, ...], _Refused] = OrderedDict()
        self._warned: set[str] = set()
        self.count = 0

    # -- contexts -------------------------------------------------------------------
    def _resource(self, resource: Any) -> _Resource:
        key = resource.SerializeToString()
        ctx = self._resources.get(key)
        if ctx is not None:
            return ctx
        pairs = attr_pairs(resource.attributes)
        job, instance = translate.job_instance(pairs)
        added: list[tuple[str, str]] = []
        if job:
            added.append(("job", job))
        if instance:
            added.append(("instance", instance))
        series_pairs = tuple(added) + (tuple(pairs) if self.resource_to_labels else ())
        rest = [(k, v) for k, v in pairs if k not in (translate.SERVICE_NAME, translate.SERVICE_NAMESPACE,
                                                         translate.SERVICE_INSTANCE_ID)]
        labels = merge_labels([*rest, *added, *self.const_pairs]) if rest else None
        target = self._targets.get((job, instance))
        if labels is not None and target is not None and target.labels != labels:
            # The newest resource of a (job, instance) describes it.
            target.labels, target.lb = labels, format_labels(labels)
        ctx = self._resources[key] = _Resource(series_pairs, labels, (job, instance))
        return ctx

    def _scope(self, sm: Any) -> _Scope:
        key = (sm.scope.SerializeToString(), sm.schema_url)
        ctx = self._scopes.get(key)
        if ctx is not None:
            return ctx
        pairs: list[tuple[str, str]] = []
        if self.scope_info:
            scope = sm.scope
            fixed = {"otel_scope_name": scope.name, "otel_scope_version": scope.version,
                     "otel_scope_schema_url": sm.schema_url}
            pairs.extend((k, v) for k, v in fixed.items() if v)
            for kv in scope.attributes:
                name = "otel_scope_" + translate.label_name(kv.key)
                if name not in fixed:
                    pairs.append((name, value_to_str(kv.value)))
        ctx = self._scopes[key] = _Scope(tuple(pairs))
        return ctx

    # -- routing ----------------------------------------------------------------------
    def _route(self, m: Any, which: str, data: Any) -> _Route:
        temporality = getattr(data, "aggregation_temporality", _CUMULATIVE)
        monotonic = which == "sum" and data.is_monotonic
        meta = ""
        if which == "gauge" and len(m.metadata):
            for kv in m.metadata:
                if kv.key == "prometheus.type":
                    meta = kv.value.string_value
        key = (m.name, m.unit, which, monotonic, temporality, meta)
        route = self._routes.get(key)
        if route is None:
            route = self._new_route(m, which, monotonic, temporality, meta)
            if route.cacheable:
                self._routes[key] = route
        return route

    def _new_route(self, m: Any, which: str, monotonic: bool, temporality: int, meta: str) -> _Route:
        ops: Ops
        if which == "sum":
            ops, kind = NUMBER_OPS, (Kind.COUNTER if monotonic else Kind.GAUGE)
        elif which == "gauge":
            ops, kind = GAUGE_OPS, _METADATA_KINDS.get(meta, Kind.GAUGE)
        elif which == "histogram":
            ops, kind = HISTOGRAM_OPS, Kind.HISTOGRAM
        elif which == "exponential_histogram":
            ops, kind = EXP_OPS, Kind.HISTOGRAM
        else:
            ops, kind = SUMMARY_OPS, Kind.SUMMARY
        if temporality not in (_DELTA, _CUMULATIVE):
            return _Route(None, ops, False, "unspecified_temporality")
        name = self.namer.metric_name(m.name, m.unit, counter=kind is Kind.COUNTER, gauge=kind is Kind.GAUGE)
        if not name:
            return _Route(None, ops, False, "invalid")
        base = name[:-6] if kind is Kind.COUNTER and name.endswith("_total") else name
        if kind is Kind.INFO and name.endswith("_info"):
            base = name[:-5]
        fam = self.families.get(base)
        if fam is None:
            if self.max_series and self.count >= self.max_series:
                # At the global cap a new metric gets no family (nor cache entry): bounded memory.
                return _Route(None, ops, False, "cardinality_limit", cacheable=False)
            unit = translate.unit_word(m.unit, ratio=self.namer.unit_1_as_ratio and kind is Kind.GAUGE)
            if not unit or not base.endswith("_" + unit):
                unit = ""
            fam = Family(name, base, kind, ops, m.description, unit, self.exp_bounds)
            clash = {n for n in fam.all_names(self.openmetrics) if n in self._names or n in _RESERVED_NAMES}
            if clash:
                return self._conflict(m.name, name, f"its name clashes with {sorted(clash)[0]!r} of another metric")
            self.families[base] = fam
            for n in fam.all_names(self.openmetrics):
                self._names[n] = fam
        elif fam.kind is not kind or fam.ops is not ops or fam.name != name:
            return self._conflict(m.name, name, f"{base!r} is already a {fam.kind.om} from another point type")
        return _Route(fam, ops, temporality == _DELTA)

    def _conflict(self, otlp_name: str, name: str, why: str) -> _Route:
        if name not in self._warned and len(self._warned) < 10_000:
            self._warned.add(name)
            self.log.warning("Dropping metric %r: %s (Prometheus type conflict); further points are counted "
                             "in otelcol_exporter_prometheus_dropped_points_total{reason=\"type_conflict\"}.",
                             otlp_name, why)
        return _Route(None, NUMBER_OPS, False, "type_conflict")

    # -- ingest -----------------------------------------------------------------------
    def ingest(self, md: Metrics, touched: list[Series] | None = None) -> tuple[int, int]:
        """Fold every point of ``md``.

        Args:
            md: the request (read only).
            touched: when given, every series updated is appended (remote write).

        Returns:
            ``(folded, dropped)`` point counts.
        """
        now = self.clock()
        folded = dropped = 0
        for rm in md.proto.resource_metrics:
            res = self._resource(rm.resource)
            for sm in rm.scope_metrics:
                scope = self._scope(sm)
                for m in sm.metrics:
                    which = m.WhichOneof("data")
                    if which is None:
                        continue
                    data = getattr(m, which)
                    points = data.data_points
                    if not points:
                        continue
                    route = self._route(m, which, data)
                    fam = route.family
                    if fam is None:
                        dropped += len(points)
                        self.on_dropped[route.reason].inc(len(points))
                        continue
                    ops = route.ops
                    tag = ops.attr_tag
                    gkey = (res, scope)
                    group = fam.groups.get(gkey)
                    if group is None:
                        group = fam.groups[gkey] = {}
                    delta = route.delta
                    read = ops.read
                    for p in points:
                        key = attr_key(p.SerializeToString(), tag)
                        s = group.get(key)
                        if s is None:
                            if p.flags & _NO_RECORDED_VALUE:
                                folded += 1
                                continue
                            s = self._create(fam, group, gkey, key, p, res, scope)
                            if s is None:
                                if not fam.n:  # a metric with no series yet is not worth an overflow series
                                    self.on_dropped["cardinality_limit"].inc()
                                    dropped += 1
                                elif self._fold_overflow(route, gkey, key, p, now):
                                    folded += 1
                                else:
                                    dropped += 1
                                continue
                        elif p.flags & _NO_RECORDED_VALUE:
                            self._remove(s)
                            folded += 1
                            continue
                        # The one fold, for every type and temporality.
                        t = p.time_unix_nano
                        st = p.start_time_unix_nano
                        if delta:
                            if (st < s.time) if st else (t <= s.time):
                                self.on_dropped["out_of_order"].inc()
                                dropped += 1
                                continue
                            v = read(p, fam)
                            if v is None:
                                self._invalid(s)
                                dropped += 1
                                continue
                            cur = s.value
                            merged = None if cur is None else ops.add(cur, v)
                            if merged is None:
                                s.value = v
                                s.start = st
                            else:
                                s.value = merged
                        else:
                            if t <= s.time and s.value is not None:
                                self.on_dropped["out_of_order"].inc()
                                dropped += 1
                                continue
                            v = read(p, fam)
                            if v is None:
                                self._invalid(s)
                                dropped += 1
                                continue
                            s.value = v
                            s.start = st
                        s.time = t
                        if ops.has_exemplars and len(p.exemplars):
                            s.exemplar = ops.exemplars(p, s.value, s.exemplar, fam)
                        s.seen = now
                        folded += 1
                        if touched is not None:
                            touched.append(s)
        if folded:
            self.generation += 1
        return folded, dropped

    def _invalid(self, s: Series) -> None:
        """Count an invalid point; a series it was about to create is forgotten again."""
        self.on_dropped["invalid"].inc()
        if s.value is None:
            self._remove(s)

    def _create(self, fam: Family, group: dict[bytes, Series], gkey: tuple[Any, Any], key: bytes, p: Any,
                res: _Resource, scope: _Scope) -> Series | None:
        """The series for a new raw key, or None when a cap refuses it."""
        if (self.max_series and self.count >= self.max_series) or (
                self.max_series_per_metric and fam.n >= self.max_series_per_metric):
            return None
        labels = merge_labels([*attr_pairs(p.attributes), *res.pairs, *scope.pairs, *self.const_pairs])
        reserved = _RESERVED_LABEL.get(fam.kind)
        if reserved is not None:  # "le"/"quantile" belong to the samples, not to the series
            labels = tuple(kv for kv in labels if kv[0] != reserved)
        lb = format_labels(labels)
        s = fam.series.get(lb)
        if s is None:
            s = fam.series[lb] = Series(fam, lb, res)
            fam.n += 1
            self.count += 1
            res.refs += 1
            scope.refs += 1
            if res.target_labels is not None:
                target = self._targets.get(res.target_key)
                if target is None:
                    target = self._targets[res.target_key] = TargetInfo(res.target_labels,
                                                                        format_labels(res.target_labels))
                target.refs += 1
        entry = (gkey, key)
        if s.keys is None:
            s.keys = entry
        elif isinstance(s.keys, list):
            s.keys.append(entry)
        else:
            s.keys = [s.keys, entry]
        group[key] = s
        if s.scope is None:
            s.scope = scope
        return s

    def _overflow_series(self, fam: Family) -> Series:
        s = fam.overflow
        if s is None:
            labels = merge_labels([(OVERFLOW_LABEL, "true"), *self.const_pairs])
            s = fam.overflow = Series(fam, format_labels(labels), None)
            s.overflow = True
            fam.series[s.lb] = s
        return s

    def _fold_overflow(self, route: _Route, gkey: tuple[Any, Any], key: bytes, p: Any, now: float) -> bool:
        """Fold a refused stream's point into its family's overflow series."""
        fam = route.family
        assert fam is not None
        ops = route.ops
        rkey = (fam, gkey, key)
        prev = self._refused.get(rkey)
        if prev is None:
            self.on_refused.inc()
        if p.flags & _NO_RECORDED_VALUE:
            self._refused.pop(rkey, None)
            return True
        v = ops.read(p, fam)
        if v is None:
            self.on_dropped["invalid"].inc()
            return False
        t, st = p.time_unix_nano, p.start_time_unix_nano
        if prev is not None and ((st < prev.time) if (route.delta and st) else (t <= prev.time)):
            self.on_dropped["out_of_order"].inc()
            return False
        o = self._overflow_series(fam)
        inc = v
        if ops.additive and not route.delta and prev is not None and prev.start == st:
            inc = ops.sub(v, prev.value)
            if inc is None:
                inc = v
        if o.value is None or not ops.additive:
            o.value, o.start = inc, (st or t)
        else:
            merged = ops.add(o.value, inc)
            if merged is None:
                self.on_dropped["invalid"].inc()
                return False
            o.value = merged
        o.time = max(o.time, t)
        o.seen = now
        if prev is None:
            self._refused[rkey] = _Refused(st, t, v, now)
            limit = max(self.max_series, 1024)
            while len(self._refused) > limit:
                self._refused.popitem(last=False)
        else:
            prev.start, prev.time, prev.value, prev.seen = st, t, v, now
            self._refused.move_to_end(rkey)
        return True

    # -- removal ----------------------------------------------------------------------
    def _remove(self, s: Series) -> None:
        fam = s.fam
        if fam.series.pop(s.lb, None) is None:
            return
        self.generation += 1
        if s.overflow:
            fam.overflow = None
        else:
            fam.n -= 1
            self.count -= 1
            for gkey, key in s.key_entries():
                group = fam.groups.get(gkey)
                if group is not None:
                    group.pop(key, None)
                    if not group:
                        del fam.groups[gkey]
            if s.scope is not None:
                s.scope.refs -= 1
            res = s.res
            if res is not None:
                res.refs -= 1
                target = self._targets.get(res.target_key) if res.target_labels is not None else None
                if target is not None:
                    target.refs -= 1
                    if target.refs <= 0:
                        del self._targets[res.target_key]
        if self.on_remove is not None:
            self.on_remove(s)

    def remove_all(self) -> list[Series]:
        """Remove every series (shutdown); returns them."""
        gone = [s for fam in self.families.values() for s in fam.series.values()]
        for s in gone:
            self._remove(s)
        return gone

    def expire(self, now: float | None = None) -> int:
        """Remove every series not updated for ``expiration`` seconds; returns how many.

        One pass over the store (~10 ms per 100k series): cheaper overall than
        keeping series in update order, which costs memory and time on every point.
        """
        if self.expiration <= 0:
            return 0
        if now is None:
            now = self.clock()
        deadline = now - self.expiration
        stale = [s for fam in self.families.values() for s in fam.series.values() if s.seen <= deadline]
        for s in stale:
            self._remove(s)
        removed = len(stale)
        refused = self._refused
        while refused:
            k = next(iter(refused))
            if refused[k].seen > deadline:
                break
            del refused[k]
        self._prune()
        return removed

    def _prune(self) -> None:
        """Forget contexts, routes and families no series uses any more."""
        for key in [k for k, r in self._resources.items() if r.refs <= 0]:
            del self._resources[key]
        for skey in [k for k, sc in self._scopes.items() if sc.refs <= 0]:
            del self._scopes[skey]
        empty = [base for base, fam in self.families.items() if not fam.series]
        if empty:
            for base in empty:
                fam = self.families.pop(base)
                for n in fam.all_names(self.openmetrics):
                    if self._names.get(n) is fam:
                        del self._names[n]
            gone = set(empty)
            # Routes to removed families go; so do refused (conflicting) routes, which may now fit.
            for rkey in [k for k, r in self._routes.items() if r.family is None or r.family.base in gone]:
                del self._routes[rkey]

    # -- reading ----------------------------------------------------------------------
    @property
    def targets(self) -> list[TargetInfo]:
        return list(self._targets.values())

    @staticmethod
    def target_labels(s: Series) -> tuple[tuple[str, str], ...] | None:
        """The ``target_info`` labels of the resource that created ``s`` (None: no target_info)."""
        return s.res.target_labels if s.res is not None else None

    def snapshot(self) -> Snapshot:
        """Families sorted by name with copies of their series lists (see :class:`Snapshot`)."""
        fams = [(self.families[b], list(self.families[b].series.values())) for b in sorted(self.families)]
        return Snapshot([(f, s) for f, s in fams if s], list(self._targets.values()), self.generation)
