"""Hand-written exposition: text 0.0.4 and OpenMetrics 1.0, plus content negotiation.

Role: turn a :class:`~.accumulator.Snapshot` into text, fast. Label blocks
are formatted and escaped once per series (``Series.lb``) when the series is
created; a render only formats values. Per family and bucket layout, one
``%`` template renders all lines of a histogram or summary series in a single
call; the template holds only the numbers' slots and short constants, and the
label block is spliced into the bucket lines by one ``str.replace`` (see
"templates" below: %-formatting costs about a nanosecond per template
character, so a long template dominated the render). :func:`render_chunks`
yields the text in pieces so a large exposition is streamed (and gzipped)
without ever being held whole.
Figures: ``bench/bench_prometheus.py``.

Formats (``shared/docs/protocols.md`` 2.6):

* text 0.0.4: ``# HELP``/``# TYPE``; counters as ``foo_total``; timestamps in ms;
  no exemplars, no ``_created``;
* OpenMetrics 1.0: ``# TYPE``/``# UNIT``/``# HELP`` on the family name
  (``foo`` for ``foo_total``), ``_created`` (seconds) for counters, histograms
  and summaries, exemplars on counter samples and histogram buckets (latest
  per bucket), ``le``/``quantile`` as canonical floats, ``_sum`` and
  ``_count`` together or not at all, ``# EOF``;
* exponential histograms appear as classic histograms over the configured
  bounds (native histograms need the protobuf format, :mod:`.nativehist`);
* ``target_info`` first: one series per (job, instance).

Negotiation follows the collector: OpenMetrics only when the exporter enables
it *and* the scraper prefers it; protobuf whenever the scraper prefers it
(needed for native histograms); otherwise text 0.0.4. ``q`` weights are
honoured, ties keep the scraper's order.

Thread safety: :func:`render` only reads the snapshot and immutable values, and
writes the per-family template cache (dict set of an immutable string: safe
under the GIL); it may run in a worker thread.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import accumulate, chain, repeat
from typing import Any

from agent.exporters.prometheus.accumulator import Family, Kind, Series, Snapshot, TargetInfo
from agent.exporters.prometheus.translate import escape_help_om, escape_help_text
from agent.exporters.prometheus.values import EXP_OPS, HistValue, format_float

__all__ = ["Format", "RenderOptions", "accepts_gzip", "negotiate", "render", "render_chunks"]

TARGET_INFO_HELP = "Target metadata"


class Format(enum.Enum):
    """An exposition format, by the Content-Type it is served with."""

    TEXT = "text/plain; version=0.0.4; charset=utf-8"
    OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
    OPENMETRICS_0_0_1 = "application/openmetrics-text; version=0.0.1; charset=utf-8"
    PROTOBUF = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"

    @property
    def content_type(self) -> str:
        return self.value

    @property
    def is_openmetrics(self) -> bool:
        return self in (Format.OPENMETRICS, Format.OPENMETRICS_0_0_1)


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """Render settings fixed per exporter.

    Attributes:
        timestamps: write each sample's point time (``send_timestamps``).
        exp_bounds: classic bounds for exponential histograms.
    """

    timestamps: bool = False
    exp_bounds: tuple[float, ...] = ()


# -- negotiation ---------------------------------------------------------------------------
def _params(part: str) -> tuple[str, float, dict[str, str]]:
    media, *rest = part.split(";")
    q = 1.0
    params: dict[str, str] = {}
    for item in rest:
        k, _, v = item.partition("=")
        k, v = k.strip().lower(), v.strip().strip('"')
        if k == "q":
            try:
                q = float(v)
            except ValueError:
                q = 0.0
        else:
            params[k] = v
    return media.strip().lower(), q, params


def _match(media: str, params: dict[str, str], openmetrics: bool) -> Format | None:
    if media == "application/vnd.google.protobuf":
        if params.get("proto") == "io.prometheus.client.MetricFamily" and params.get("encoding") == "delimited":
            return Format.PROTOBUF
        return None
    if media == "application/openmetrics-text":
        if not openmetrics:
            return None
        version = params.get("version", "1.0.0")
        if version == "1.0.0":
            return Format.OPENMETRICS
        return Format.OPENMETRICS_0_0_1 if version == "0.0.1" else None
    if media in ("text/plain", "text/*", "*/*"):
        return Format.TEXT
    return None


def negotiate(accept: str | None, *, openmetrics: bool) -> Format:
    """The format to answer an ``Accept`` header with (text 0.0.4 when nothing else fits)."""
    if not accept:
        return Format.TEXT
    offers = []
    for i, part in enumerate(accept.split(",")):
        if part.strip():
            media, q, params = _params(part)
            offers.append((-q, i, media, params))
    offers.sort(key=lambda o: (o[0], o[1]))
    for negq, _, media, params in offers:
        if negq >= 0:
            break
        fmt = _match(media, params, openmetrics)
        if fmt is not None:
            return fmt
    return Format.TEXT


def accepts_gzip(accept_encoding: str | None) -> bool:
    """True when ``Accept-Encoding`` allows gzip (``q`` > 0)."""
    if not accept_encoding:
        return False
    for part in accept_encoding.split(","):
        media, q, _ = _params(part)
        if media in ("gzip", "*"):
            return q > 0
    return False


# -- number formatting -----------------------------------------------------------------------
def _le_text(b: float) -> str:
    """Go's shortest float formatting, as client_golang writes ``le`` in text 0.0.4 (``1``, ``0.5``)."""
    if math.isinf(b):
        return "+Inf" if b > 0 else "-Inf"
    text = repr(float(b))
    return text[:-2] if text.endswith(".0") else text


def _le_om(b: float) -> str:
    """OpenMetrics canonical float text (``1.0``, ``0.001``, ``+Inf``)."""
    return format_float(float(b))


def _seconds(ns: int) -> str:
    return repr(ns / 1e9)


# -- templates --------------------------------------------------------------------------------
# A histogram or summary series is rendered with one %-template per (family, layout, flags). The
# cost of a render is in %-formatting (it scans the template's constant text char by char) and in
# number formatting, so the templates are kept short and only numbers go through "%":
#
# * marker style (no exemplars): each bucket (or quantile) line starts with MARK, which the open
#   label block prefixed with the sample name ("foo_bucket{labels,") replaces afterwards in one
#   ``str.replace`` limited to the bucket lines; the _sum/_count/_created lines take the closed label
#   block ("{labels}" or "") as "%s", the value and optionally a timestamp. Label text never goes
#   through the replace (it is only inserted after the last marker), so a label value containing
#   MARK is safe;
# * interleaved style (OpenMetrics exemplars): the bucket lines take "%s" for the open label block,
#   the value and "%s" for the exemplar (whose labels may contain anything), optionally a timestamp.
#   Arguments are interleaved with chain(zip(...)) at C speed.

#: Placeholder for the open label block of a bucket line (never in a metric name or a number).
MARK = "\x00"


def _bucketed_template(sample: str, name: str, extra: str, edges: list[str], *, value: str, exemplars: bool,
                       tail: list[tuple[str, str]], ts: bool) -> str:
    """Template for ``<sample>{..,<extra>="<edge>"}`` lines followed by ``tail`` lines.

    Args:
        sample: sample name of the bucket/quantile lines.
        name: family name the tail suffixes are appended to.
        extra: ``le`` or ``quantile``.
        edges: formatted bounds or quantiles.
        value: ``%d`` (integer counts) or ``%s`` (pre-formatted floats).
        exemplars: interleaved style with an exemplar field on every bucket line; otherwise
            marker style (see above).
        tail: ``(suffix, value conversion)`` of the lines after the buckets.
        ts: add a timestamp field to every line.
    """
    tsf = "%s" if ts else ""
    if exemplars:
        lines = [f'{sample}%s{extra}="{edge}"}} {value}%s{tsf}\n' for edge in edges]
    else:
        lines = [f'{MARK}{extra}="{edge}"}} {value}{tsf}\n' for edge in edges]
    lines.extend(f"{name}{suffix}%s {conv}{tsf}\n" for suffix, conv in tail)
    return "".join(lines)


def _lo(lb: str) -> str:
    return lb[:-1] + "," if lb else "{"


def _ts_text(s: Series) -> str:
    return f" {s.time // 1_000_000}"


def _ts_om(s: Series) -> str:
    return " " + _seconds(s.time)


# -- writers (one per sample shape) -------------------------------------------------------------
Writer = Callable[[Family, list[Series], list[str], Format, RenderOptions], None]


def _write_scalar(fam: Family, series: list[Series], out: list[str], fmt: Format, opts: RenderOptions) -> None:
    om = fmt.is_openmetrics
    ts = (_ts_om if om else _ts_text) if opts.timestamps else None
    ff = format_float
    if om and fam.kind is Kind.COUNTER:
        total, created = fam.base + "_total", fam.base + "_created"
        for s in series:
            tsx = ts(s) if ts else ""
            ex = s.exemplar.om() if s.exemplar is not None else ""
            out.append(f"{total}{s.lb} {ff(s.value)}{ex}{tsx}\n")
            if s.start:
                out.append(f"{created}{s.lb} {_seconds(s.start)}{tsx}\n")
        return
    name = fam.sample_name
    if ts is None:
        out.extend([f"{name}{s.lb} {ff(s.value)}\n" for s in series])
    else:
        out.extend([f"{name}{s.lb} {ff(s.value)}{ts(s)}\n" for s in series])


def _tail_args(lb: str, values: list[Any], tsx: str | None) -> list[Any]:
    if tsx is None:
        return [x for v in values for x in (lb, v)]
    return [x for v in values for x in (lb, v, tsx)]


def _write_histogram(fam: Family, series: list[Series], out: list[str], fmt: Format, opts: RenderOptions) -> None:
    om = fmt.is_openmetrics
    ts = (_ts_om if om else _ts_text) if opts.timestamps else None
    le = _le_om if om else _le_text
    cache = fam.cache
    exp = fam.ops is EXP_OPS
    bounds_exp = opts.exp_bounds
    ff = format_float
    append = out.append
    bucket = fam.name + "_bucket"
    bucket_open = bucket + "{"
    last: tuple[Any, ...] | None = None
    tmpl = ""
    n = 0
    for s in series:
        v: HistValue = s.value.classic(bounds_exp) if exp else s.value
        created = om and s.start > 0
        ex_state = s.exemplar if om else None
        total = v.sum
        flags = (v.bounds, total is not None, created, ex_state is not None)
        if flags != last:  # consecutive series nearly always share their layout
            last = flags
            n = len(v.bounds) + 1
            key = ("h", om, ts is not None, *flags)
            tmpl = cache.get(key) or cache.setdefault(key, _histogram_template(fam, le, om, ts is not None, *flags))
        cum = list(accumulate(v.counts))
        cum[-1] = v.count
        lb = s.lb
        if ts is None and ex_state is None:
            if total is not None:
                sum_text = repr(total) if type(total) is float and total - total == 0 else ff(total)
                if created:
                    text = tmpl % (*cum, lb, sum_text, lb, v.count, lb, _seconds(s.start))
                else:  # the common case
                    text = tmpl % (*cum, lb, sum_text, lb, v.count)
            elif om:
                text = tmpl % ((*cum, lb, _seconds(s.start)) if created else tuple(cum))
            else:
                text = tmpl % (*cum, lb, v.count)
            append(text.replace(MARK, f"{bucket}{lb[:-1]}," if lb else bucket_open, n))
            continue
        tsx = ts(s) if ts else None
        tail: list[Any] = [ff(total)] if total is not None else []
        if total is not None or not om:
            tail.append(v.count)
        if created:
            tail.append(_seconds(s.start))
        if ex_state is None:  # marker style, with timestamps
            text = tmpl % (*chain.from_iterable(zip(cum, repeat(tsx))), *_tail_args(lb, tail, tsx))
            append(text.replace(MARK, f"{bucket}{lb[:-1]}," if lb else bucket_open, n))
            continue
        cols: list[Any] = [repeat(_lo(lb), n), cum, [e.om() if e is not None else "" for e in _fit(ex_state, n)]]
        if tsx is not None:
            cols.append(repeat(tsx, n))
        append(tmpl % (*chain.from_iterable(zip(*cols, strict=True)), *_tail_args(lb, tail, tsx)))


def _histogram_template(fam: Family, le: Callable[[float], str], om: bool, ts: bool, bounds: tuple[float, ...],
                        has_sum: bool, created: bool, exemplars: bool) -> str:
    spec = [("_sum", "%s")] if has_sum else []
    if has_sum or not om:  # OpenMetrics: _sum and _count together or not at all
        spec.append(("_count", "%d"))
    if created:
        spec.append(("_created", "%s"))
    return _bucketed_template(fam.name + "_bucket", fam.name, "le", [le(b) for b in bounds] + ["+Inf"], value="%d",
                              exemplars=exemplars, tail=spec, ts=ts)


def _fit(ex: Any, n: int) -> tuple[Any, ...]:
    """Per-bucket exemplars, or none when the layout changed since they were filed."""
    if isinstance(ex, tuple) and len(ex) == n:
        return ex
    return (None,) * n


def _write_summary(fam: Family, series: list[Series], out: list[str], fmt: Format, opts: RenderOptions) -> None:
    om = fmt.is_openmetrics
    ts = (_ts_om if om else _ts_text) if opts.timestamps else None
    q_text = _le_om if om else _le_text
    cache = fam.cache
    name = fam.name
    ff = format_float
    for s in series:
        v = s.value
        created = om and s.start > 0
        qs = tuple(q for q, _ in v.quantiles)
        key = ("s", om, qs, created, ts is not None)
        tmpl = cache.get(key)
        if tmpl is None:
            spec = [("_sum", "%s"), ("_count", "%d")] + ([("_created", "%s")] if created else [])
            tmpl = cache[key] = _bucketed_template(name, name, "quantile", [q_text(q) for q in qs],
                                                   value="%s", exemplars=False, tail=spec, ts=ts is not None)
        lb = s.lb
        tsx = ts(s) if ts else None
        values = [ff(x) for _, x in v.quantiles]
        tail: list[Any] = [ff(v.sum), v.count]
        if created:
            tail.append(_seconds(s.start))
        if tsx is not None:
            values = list(chain.from_iterable(zip(values, repeat(tsx))))
        text = tmpl % (*values, *_tail_args(lb, tail, tsx))
        out.append(text.replace(MARK, f"{name}{lb[:-1]}," if lb else name + "{", len(qs)))


_WRITERS: dict[Kind, Writer] = {
    Kind.COUNTER: _write_scalar,
    Kind.GAUGE: _write_scalar,
    Kind.UNKNOWN: _write_scalar,
    Kind.INFO: _write_scalar,
    Kind.STATESET: _write_scalar,
    Kind.HISTOGRAM: _write_histogram,
    Kind.SUMMARY: _write_summary,
}


def _header(fam: Family, fmt: Format) -> str:
    key = ("hdr", fmt.is_openmetrics)
    text: str | None = fam.cache.get(key)
    if text is None:
        if fmt.is_openmetrics:
            text = f"# TYPE {fam.base} {fam.kind.om}\n"
            if fam.unit:
                text += f"# UNIT {fam.base} {fam.unit}\n"
            if fam.help:
                text += f"# HELP {fam.base} {escape_help_om(fam.help)}\n"
        else:
            name = fam.sample_name
            text = f"# HELP {name} {escape_help_text(fam.help)}\n" if fam.help else ""
            text += f"# TYPE {name} {fam.kind.text}\n"
        fam.cache[key] = text
    return text


def _targets(targets: list[TargetInfo], out: list[str], om: bool) -> None:
    if not targets:
        return
    if om:
        out.append(f"# TYPE target info\n# HELP target {TARGET_INFO_HELP}\n")
    else:
        out.append(f"# HELP target_info {TARGET_INFO_HELP}\n# TYPE target_info gauge\n")
    out.extend([f"target_info{t.lb} 1\n" for t in targets])


#: Series rendered between two yields of :func:`render_chunks`.
CHUNK_SERIES = 200


def render_chunks(snap: Snapshot, fmt: Format, opts: RenderOptions, chunk: int = CHUNK_SERIES) -> Iterator[str]:
    """The exposition of ``snap`` in a text format, in pieces of about ``chunk`` series.

    Streaming the pieces keeps memory flat: a 100k-histogram exposition is
    ~200 MB of text, which is never held whole.
    """
    out: list[str] = []
    om = fmt.is_openmetrics
    _targets(snap.targets, out, om)
    pending = len(snap.targets)
    for fam, series in snap.families:
        out.append(_header(fam, fmt))
        write = _WRITERS[fam.kind]
        for i in range(0, len(series), chunk):
            part = series[i:i + chunk]
            write(fam, part, out, fmt, opts)
            pending += len(part)
            if pending >= chunk:
                yield "".join(out)
                out = []
                pending = 0
    if om:
        out.append("# EOF\n")
    yield "".join(out)


def render(snap: Snapshot, fmt: Format, opts: RenderOptions) -> bytes:
    """The whole exposition of ``snap`` in a text format (use :mod:`.nativehist` for protobuf)."""
    return "".join(render_chunks(snap, fmt, opts)).encode()
