"""Remote write 1.0 ``WriteRequest`` encoding, straight from the shared series store.

Messages (``prometheus/prometheus:prompb/{remote,types}.proto``, package
``prometheus``; hand-encoded)::

    WriteRequest:   timeseries 1, metadata 3 (field 2 reserved)
    TimeSeries:     labels 1, samples 2, exemplars 3, histograms 4
    Label:          name 1, value 2
    Sample:         value 1 (double), timestamp 2 (int64 ms)
    MetricMetadata: type 1 (UNKNOWN 0, COUNTER 1, GAUGE 2, HISTOGRAM 3, GAUGEHISTOGRAM 4, SUMMARY 5,
                    INFO 6, STATESET 7), metric_family_name 2, help 4, unit 5
    Histogram:      count_int 1, sum 3, schema 4 (sint32), zero_threshold 5, zero_count_int 6,
                    negative_spans 8, negative_deltas 9 (sint64), positive_spans 11,
                    positive_deltas 12 (sint64), reset_hint 14, timestamp 15
    BucketSpan:     offset 1 (sint32), length 2

Rules (``shared/docs/protocols.md`` 5): every series carries its full label
set including ``__name__``, names sorted and unique; the naming of the pull
exporter applies unchanged (``_total``, ``_bucket``/``_sum``/``_count``,
``job``/``instance``, ``target_info``); values are the store's cumulative
values at the points' timestamps (ms). A series that ends (``NO_RECORDED_VALUE``
or expiry) gets the stale marker, the NaN with bits ``0x7ff0000000000002``
(written as raw bytes, so no float arithmetic can alter it), for every sample
name it had, at ``max(now, last timestamp + 1 ms)``.

Per series, the sorted label set (with the external labels) is encoded once
and cached in three segments around where ``__name__`` and ``le``/``quantile``
sort, so a sample's labels are a concatenation.
"""

from __future__ import annotations

import struct
from bisect import bisect_left
from collections.abc import Iterable
from itertools import accumulate
from typing import Final

from agent.exporters.prometheus.accumulator import Accumulator, Family, Kind, Series
from agent.exporters.prometheus.exphist import native_spans
from agent.exporters.prometheus.nativehist import (
    MIN_ZERO_THRESHOLD,
    encode_labels,
    encode_varint,
    length_delimited,
    zigzag,
)
from agent.exporters.prometheus.render import _le_text
from agent.exporters.prometheus.values import EXP_OPS, ExpValue, HistValue, SummaryValue

__all__ = ["STALE_NAN_BITS", "STALE_NAN_BYTES", "WriteRequestEncoder"]

#: Prometheus' stale marker: a NaN with this exact bit pattern.
STALE_NAN_BITS: Final = 0x7FF0000000000002
STALE_NAN_BYTES: Final = struct.pack("<Q", STALE_NAN_BITS)
_D = struct.Struct("<d")
_V = encode_varint
_EXTRA = {Kind.HISTOGRAM: "le", Kind.SUMMARY: "quantile"}
_METADATA_TYPES = {Kind.COUNTER: 1, Kind.GAUGE: 2, Kind.HISTOGRAM: 3, Kind.SUMMARY: 5, Kind.INFO: 6,
                   Kind.STATESET: 7, Kind.UNKNOWN: 0}

#: One sample: (sample name, extra label value or None, value).
Sample = tuple[str, str | None, float]


def _label(name: str, value: str) -> bytes:
    return encode_labels(((name, value),))


def _sample(value_field: bytes, ts_ms: int) -> bytes:
    body = b"\x09" + value_field + b"\x10" + _V(ts_ms)
    return b"\x12" + _V(len(body)) + body


def _timeseries(body: bytes) -> bytes:
    return b"\x0a" + _V(len(body)) + body


class WriteRequestEncoder:
    """Turns series of one :class:`Accumulator` into ``WriteRequest`` bytes (uncompressed).

    Args:
        accumulator: the store (for target_info lookups).
        external_labels: added to every series that lacks them.
        target_info: send one ``target_info`` series per (job, instance) touched.
        created: send ``_created`` samples for counters, histograms and summaries.
        metadata: add ``MetricMetadata`` for every family in the request.
        native: exponential histograms as native histograms (else classic buckets over ``exp_bounds``).
        exp_bounds: classic bounds for exponential histograms.
    """

    def __init__(self, accumulator: Accumulator, *, external_labels: dict[str, str], target_info: bool = True,
                 created: bool = False, metadata: bool = False, native: bool = True,
                 exp_bounds: tuple[float, ...] = ()) -> None:
        self.acc = accumulator
        self.external = tuple(sorted(external_labels.items()))
        self.target_info = target_info
        self.created = created
        self.metadata = metadata
        self.native = native
        self.exp_bounds = exp_bounds
        self._names: dict[str, bytes] = {}

    # -- labels -----------------------------------------------------------------------
    def _segments(self, s: Series) -> tuple[bytes, bytes, bytes]:
        seg: tuple[bytes, bytes, bytes] | None = s.pb
        if seg is None:
            seg = s.pb = self._split(s.labels, _EXTRA.get(s.fam.kind))
        return seg

    def _split(self, labels: Iterable[tuple[str, str]], extra: str | None) -> tuple[bytes, bytes, bytes]:
        pairs = dict(labels)
        for k, v in self.external:
            pairs.setdefault(k, v)
        pairs.pop("__name__", None)
        items = sorted(pairs.items())
        names = [n for n, _ in items]
        i = bisect_left(names, "__name__")
        j = bisect_left(names, extra) if extra else len(names)
        enc = [_label(n, v) for n, v in items]
        return b"".join(enc[:i]), b"".join(enc[i:j]), b"".join(enc[j:])

    def _name(self, name: str) -> bytes:
        enc = self._names.get(name)
        if enc is None:
            if len(self._names) > 10_000:
                self._names.clear()
            enc = self._names[name] = _label("__name__", name)
        return enc

    def _labels_for(self, seg: tuple[bytes, bytes, bytes], name: str, extra: str | None,
                    extra_value: str | None) -> bytes:
        mid = _label(extra, extra_value) if extra is not None and extra_value is not None else b""
        return seg[0] + self._name(name) + seg[1] + mid + seg[2]

    # -- samples ------------------------------------------------------------------------
    def samples(self, fam: Family, s: Series) -> list[Sample]:
        """Every sample (name, extra label value, value) of ``s`` except native histograms."""
        v = s.value
        kind = fam.kind
        out: list[Sample] = []
        if kind is Kind.HISTOGRAM:
            h: HistValue = v.classic(self.exp_bounds) if isinstance(v, ExpValue) else v
            name = fam.name
            cum = list(accumulate(h.counts))
            for b, c in zip(h.bounds, cum, strict=False):
                out.append((name + "_bucket", _le_text(b), float(c)))
            out.append((name + "_bucket", "+Inf", float(h.count)))
            if h.sum is not None:
                out.append((name + "_sum", None, h.sum))
            out.append((name + "_count", None, float(h.count)))
        elif kind is Kind.SUMMARY:
            sv: SummaryValue = v
            out.extend((fam.name, _le_text(q), x) for q, x in sv.quantiles)
            out.append((fam.name + "_sum", None, sv.sum))
            out.append((fam.name + "_count", None, float(sv.count)))
        else:
            out.append((fam.sample_name, None, float(v)))
        if self.created and s.start and kind in (Kind.COUNTER, Kind.HISTOGRAM, Kind.SUMMARY):
            out.append(((fam.base if kind is Kind.COUNTER else fam.name) + "_created", None, s.start / 1e9))
        return out

    def _is_native(self, fam: Family) -> bool:
        return self.native and fam.ops is EXP_OPS

    def _native(self, v: ExpValue | None, ts_ms: int) -> bytes:
        """A remote-write ``Histogram`` (None: the stale marker)."""
        if v is None:
            body = b"\x19" + STALE_NAN_BYTES + b"\x78" + _V(ts_ms)
            return length_delimited(4, body)
        parts = [b"\x08" + _V(v.count)]
        if v.sum is not None:
            parts.append(b"\x19" + _D.pack(v.sum))
        parts += [b"\x20" + _V(zigzag(v.scale)), b"\x29" + _D.pack(v.zero_threshold or MIN_ZERO_THRESHOLD),
                  b"\x30" + _V(v.zero_count)]
        for spans_field, deltas_field, buckets in ((8, 9, v.negative), (11, 12, v.positive)):
            spans, deltas = native_spans(*buckets)
            for off, ln in spans:
                parts.append(length_delimited(spans_field, b"\x08" + _V(zigzag(off)) + b"\x10" + _V(ln)))
            if deltas:
                parts.append(length_delimited(deltas_field, b"".join(_V(zigzag(d)) for d in deltas)))
        parts.append(b"\x78" + _V(ts_ms))
        return length_delimited(4, b"".join(parts))

    def _series(self, s: Series, out: list[bytes], stale_ts: int | None = None) -> None:
        fam = s.fam
        seg = self._segments(s)
        ts = stale_ts if stale_ts is not None else s.time // 1_000_000
        extra = _EXTRA.get(fam.kind)
        if self._is_native(fam):
            out.append(_timeseries(seg[0] + self._name(fam.name) + seg[1] + seg[2]
                                   + self._native(None if stale_ts is not None else s.value, ts)))
            if not (self.created and s.start):
                return
        for name, extra_value, value in self.samples(fam, s):
            if self._is_native(fam) and not name.endswith("_created"):
                continue
            field = STALE_NAN_BYTES if stale_ts is not None else _D.pack(value)
            out.append(_timeseries(self._labels_for(seg, name, extra, extra_value) + _sample(field, ts)))

    # -- requests -------------------------------------------------------------------------
    def request(self, touched: list[Series], removed: list[Series], now_ms: int) -> bytes:
        """The WriteRequest for the series updated by one ingest and those that ended."""
        out: list[bytes] = []
        families: dict[str, Family] = {}
        targets: dict[tuple[tuple[str, str], ...], int] = {}
        for s in dict.fromkeys(touched):
            if s.value is None:
                continue
            self._series(s, out)
            families[s.fam.base] = s.fam
            if self.target_info:
                labels = self.acc.target_labels(s)
                if labels is not None:
                    ts = s.time // 1_000_000
                    if targets.get(labels, -1) < ts:
                        targets[labels] = ts
        for labels, ts in targets.items():
            seg = self._split(labels, None)
            out.append(_timeseries(self._labels_for(seg, "target_info", None, None) + _sample(_D.pack(1.0), ts)))
        for s in removed:
            if s.value is not None:
                self._series(s, out, stale_ts=max(now_ms, s.time // 1_000_000 + 1))
        if self.metadata:
            out.extend(self._metadata(fam) for fam in families.values())
        return b"".join(out)

    @staticmethod
    def _metadata(fam: Family) -> bytes:
        body = b"\x08" + _V(_METADATA_TYPES[fam.kind]) + length_delimited(2, fam.name.encode())
        if fam.help:
            body += length_delimited(4, fam.help.encode())
        if fam.unit:
            body += length_delimited(5, fam.unit.encode())
        return length_delimited(3, body)
