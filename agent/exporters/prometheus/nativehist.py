"""Protobuf exposition (``io.prometheus.client.MetricFamily``, length-delimited) with native histograms.

Role: the only format in which Prometheus scrapes native histograms, so
exponential histograms are served here as native histograms (schema = scale,
zero threshold = OTLP value or ``1e-128`` when 0, spans + deltas); they also
carry their classic buckets over the configured bounds, so a scraper may use
either. Every other family is encoded too (the scraper chose this format for
the whole scrape).

A hand-written encoder of the few messages needed. Field numbers are those of
``prometheus/client_model:io/prometheus/client/metrics.proto`` (proto2) and its
proto3 copy ``prometheus/prometheus:prompb/io/prometheus/client/metrics.proto``::

    MetricFamily: name 1, help 2, type 3 (COUNTER 0, GAUGE 1, SUMMARY 2, UNTYPED 3, HISTOGRAM 4), metric 4, unit 5
    Metric:       label 1, gauge 2, counter 3, summary 4, untyped 5, timestamp_ms 6, histogram 7
    LabelPair:    name 1, value 2
    Gauge/Untyped: value 1
    Counter:      value 1, exemplar 2, created_timestamp 3
    Summary:      sample_count 1, sample_sum 2, quantile 3 (quantile 1, value 2), created_timestamp 4
    Histogram:    sample_count 1, sample_sum 2, bucket 3, created_timestamp 15, schema 5 (sint32),
                  zero_threshold 6, zero_count 7, negative_span 9, negative_delta 10 (sint64),
                  positive_span 12, positive_delta 13 (sint64), exemplars 16
    Bucket:       cumulative_count 1, upper_bound 2, exemplar 3
    BucketSpan:   offset 1 (sint32), length 2
    Exemplar:     label 1, value 2, timestamp 3 (google.protobuf.Timestamp: seconds 1, nanos 2)

Repeated scalars are written packed (every protobuf parser accepts both forms).
Each series' encoded label pairs are cached on the series (``Series`` is
created once per label set), so a scrape encodes values only.

Thread safety: as :func:`agent.exporters.prometheus.render.render`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from itertools import accumulate

from agent.exporters.prometheus import exphist
from agent.exporters.prometheus.accumulator import Family, Kind, Series, Snapshot
from agent.exporters.prometheus.render import TARGET_INFO_HELP, RenderOptions
from agent.exporters.prometheus.values import EXP_OPS, Exemplar, ExpValue, HistValue, SummaryValue

__all__ = ["encode_family", "encode_labels", "encode_varint", "length_delimited", "render_protobuf", "zigzag"]

_D = struct.Struct("<d")
COUNTER, GAUGE, SUMMARY, UNTYPED, HISTOGRAM = range(5)
_TYPES = {Kind.COUNTER: COUNTER, Kind.GAUGE: GAUGE, Kind.INFO: GAUGE, Kind.STATESET: GAUGE,
          Kind.UNKNOWN: UNTYPED, Kind.SUMMARY: SUMMARY, Kind.HISTOGRAM: HISTOGRAM}
#: Zero threshold of a native histogram whose OTLP threshold is 0 (the spec's value).
MIN_ZERO_THRESHOLD = 1e-128
_SMALL = [bytes((i,)) for i in range(128)]


def encode_varint(n: int) -> bytes:
    """Unsigned LEB128 (negative int64 values as their 10-byte two's complement)."""
    if 0 <= n < 0x80:
        return _SMALL[n]
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_v = encode_varint


def zigzag(n: int) -> int:
    """ZigZag encoding of a signed integer (``sint32``/``sint64``)."""
    return (n << 1) ^ (n >> 63)


_zigzag = zigzag


def _tag(field: int, wire: int) -> bytes:
    return _v(field << 3 | wire)


def length_delimited(field: int, payload: bytes) -> bytes:
    """A length-delimited field (message, string, bytes or packed scalars)."""
    return _tag(field, 2) + _v(len(payload)) + payload


_ld = length_delimited


def _dbl(field: int, v: float) -> bytes:
    return _tag(field, 1) + _D.pack(v)


def _uint(field: int, v: int) -> bytes:
    return _tag(field, 0) + _v(v)


def _str(field: int, s: str) -> bytes:
    return _ld(field, s.encode())


def _timestamp(field: int, ns: int) -> bytes:
    sec, nanos = divmod(ns, 1_000_000_000)
    body = (b"\x08" + _v(sec) if sec else b"") + (b"\x10" + _v(nanos) if nanos else b"")
    return _ld(field, body)


_NAMES: dict[str, bytes] = {}


def encode_labels(pairs: Iterable[tuple[str, str]]) -> bytes:
    """Repeated ``LabelPair`` (field 1) - the same bytes as remote write's repeated ``Label``.

    Label names' encodings are cached (they repeat)."""
    out = []
    for n, v in pairs:
        nb = _NAMES.get(n)
        if nb is None:
            if len(_NAMES) > 10_000:
                _NAMES.clear()
            nb = _NAMES[n] = _str(1, n)
        vb = v.encode()
        pair = nb + b"\x12" + _v(len(vb)) + vb
        out.append(b"\x0a" + _v(len(pair)) + pair)
    return b"".join(out)


def _exemplar(field: int, e: Exemplar) -> bytes:
    body = encode_labels(e.labels) + b"\x11" + _D.pack(e.value)
    if e.ts_ns:
        body += _timestamp(3, e.ts_ns)
    return _ld(field, body)


def _spans(field_span: int, field_delta: int, buckets: exphist.Buckets) -> bytes:
    spans, deltas = exphist.native_spans(*buckets)
    if not spans:
        return b""
    out = b"".join(_ld(field_span, b"\x08" + _v(_zigzag(off)) + b"\x10" + _v(ln)) for off, ln in spans)
    return out + _ld(field_delta, b"".join([_v(_zigzag(d)) for d in deltas]))


_BOUNDS: dict[tuple[float, ...], list[bytes]] = {}


def _bound_fields(bounds: tuple[float, ...]) -> list[bytes]:
    """``upper_bound`` fields of a layout (cached: layouts are few and interned)."""
    enc = _BOUNDS.get(bounds)
    if enc is None:
        if len(_BOUNDS) > 1000:
            _BOUNDS.clear()
        enc = _BOUNDS[bounds] = [b"\x11" + _D.pack(b) for b in bounds]
    return enc


def _classic(v: HistValue, exemplars: object) -> bytes:
    cum = list(accumulate(v.counts))
    ex = exemplars if isinstance(exemplars, tuple) and len(exemplars) == len(cum) else None
    out = [b"\x08" + _v(v.count)]
    if v.sum is not None:
        out.append(b"\x11" + _D.pack(v.sum))
    for i, bf in enumerate(_bound_fields(v.bounds)):
        body = b"\x08" + _v(cum[i]) + bf
        if ex is not None and ex[i] is not None:
            body += _exemplar(3, ex[i])
        out.append(b"\x1a" + _v(len(body)) + body)
    return b"".join(out)


def _native(v: ExpValue) -> bytes:
    out = [_uint(5, _zigzag(v.scale)), _dbl(6, v.zero_threshold or MIN_ZERO_THRESHOLD), _uint(7, v.zero_count),
           _spans(9, 10, v.negative)]
    positive = _spans(12, 13, v.positive)
    # A native histogram without buckets needs a no-op span to be told apart from a classic one.
    out.append(positive or _ld(12, b""))
    return b"".join(out)


_CREATED: dict[tuple[int, int], bytes] = {}


def _created(field: int, ns: int) -> bytes:
    """A created-timestamp field (cached: many series share their process start time)."""
    key = (field, ns)
    enc = _CREATED.get(key)
    if enc is None:
        if len(_CREATED) > 10_000:
            _CREATED.clear()
        enc = _CREATED[key] = _timestamp(field, ns)
    return enc


def _metric(fam: Family, s: Series, opts: RenderOptions) -> bytes:
    pb: bytes | None = s.pb
    if pb is None:
        pb = s.pb = encode_labels(s.labels)
    v = s.value
    kind = fam.kind
    if kind is Kind.COUNTER:
        body = b"\x09" + _D.pack(v)
        if isinstance(s.exemplar, Exemplar):
            body += _exemplar(2, s.exemplar)
        if s.start:
            body += _created(3, s.start)
        msg = b"\x1a" + _v(len(body)) + body
    elif kind is Kind.HISTOGRAM:
        if fam.ops is EXP_OPS:
            assert isinstance(v, ExpValue)
            body = _classic(v.classic(opts.exp_bounds), s.exemplar) + _native(v)
        else:
            body = _classic(v, s.exemplar)
        if s.start:
            body += _created(15, s.start)
        msg = b"\x3a" + _v(len(body)) + body
    elif kind is Kind.SUMMARY:
        assert isinstance(v, SummaryValue)
        body = _uint(1, v.count) + _dbl(2, v.sum) + b"".join(
            [_ld(3, b"\x09" + _D.pack(q) + b"\x11" + _D.pack(x)) for q, x in v.quantiles])
        if s.start:
            body += _created(4, s.start)
        msg = _ld(4, body)
    else:
        msg = (b"\x2a\x09\x09" if kind is Kind.UNKNOWN else b"\x12\x09\x09") + _D.pack(v)  # {value: 1}
    if opts.timestamps:
        msg += b"\x30" + _v(s.time // 1_000_000)
    return b"\x22" + _v(len(pb) + len(msg)) + pb + msg


def encode_family(name: str, help: str, mtype: int, metrics: Iterable[bytes], unit: str = "") -> bytes:
    """One length-delimited ``MetricFamily`` from already-encoded ``Metric`` fields."""
    body = _str(1, name) + (_str(2, help) if help else b"") + _uint(3, mtype) + b"".join(metrics)
    if unit:
        body += _str(5, unit)
    return encode_varint(len(body)) + body


def render_protobuf(snap: Snapshot, opts: RenderOptions) -> bytes:
    """The delimited protobuf exposition of ``snap``."""
    out: list[bytes] = []
    if snap.targets:
        out.append(encode_family("target_info", TARGET_INFO_HELP, GAUGE,
                                 (_ld(4, encode_labels(t.labels) + _ld(2, _dbl(1, 1.0))) for t in snap.targets)))
    for fam, series in snap.families:
        out.append(encode_family(fam.sample_name, fam.help, _TYPES[fam.kind], (_metric(fam, s, opts) for s in series),
                                 fam.unit))
    return b"".join(out)
