"""OTLP log records -> Loki streams, in one pass over the request.

:class:`Converter` walks an ``ExportLogsServiceRequest`` once and produces a
:class:`Batch`: the streams (one per distinct label set) with their entries
``(timestamp_ns, line, structured_metadata)``, each stream sorted by
timestamp, plus the counts of what the limits dropped or truncated.

Invariants:

* **Labels** = the resource labels (computed once per ``ResourceLogs``:
  Loki's default OTLP index attributes and ``labels.resource``, dots ->
  underscores), ``service_name`` always (``unknown_service`` when the resource
  has none, as Loki does), the ``level`` label from the severity, and
  ``labels.attributes``. Empty values are no labels. At most
  ``labels.max_label_names`` names: extras are dropped in a fixed order
  (attribute labels from the last configured, then resource labels from the
  end of the list, ``level`` and ``service_name`` last) and counted. Label
  values are cut to Loki's 2048-byte limit.
* **Structured metadata** (when enabled): ``trace_id`` and ``span_id`` (hex),
  ``severity_text``, ``severity_number``, then the selected attributes, then
  the selected resource attributes; at most ``max_entries`` pairs. In
  protobuf mode (``protobuf=True``) they are encoded straight into
  ``structuredMetadata`` fields here ("convert once, straight into the target
  form"); in JSON mode they stay ``(name, value)`` pairs.
* **Each attribute is written once**: as a label, as structured metadata, or
  in the line (see :mod:`agent.exporters.loki.config`).
* **Lines**: ``json`` ``{"body": <body>, "attributes": {...}}`` (``attributes``
  omitted when empty; map and array bodies stay structured), ``logfmt``
  (``msg=<body>`` or the body map's pairs, then ``key=value`` per attribute),
  ``raw`` (the body as a string). A line longer than ``max_line_size`` bytes is
  cut at a UTF-8 boundary (``truncate``) or the record is dropped (``drop``);
  both are counted.
* The timestamp is ``time_unix_nano``, else ``observed_time_unix_nano``, else
  the conversion time (Loki's OTLP rule).

Performance: the only per-record work is reading the fields once (string
values on a fast path, without ``WhichOneof``), a per-key routing memo, one
``orjson.dumps`` for json lines and a per-resource stream memo keyed by level.
No dicts or ``json_format`` round trips.
"""

from __future__ import annotations

import re
import time
from binascii import hexlify
from collections.abc import Callable, Iterator
from itertools import islice
from operator import itemgetter
from typing import Any, Final

import orjson

from agent.exporters.loki.config import DEFAULT_RESOURCE_LABELS, Config, sanitize_label_name
from agent.exporters.loki.wire import PairEncoder
from agent.pdata.attributes import value_to_jsonable, value_to_str

__all__ = ["LEVELS", "Batch", "Converter", "Entry", "Stream", "escape_label_value", "level_of", "logfmt_value"]

#: ``(timestamp_ns, line, structured metadata)``; the metadata is a ``{name: value}``
#: dict (JSON mode), the already encoded ``structuredMetadata`` fields (protobuf
#: mode), or None when there is none. Lines are ``str`` in both modes
#: (measured: keeping orjson's ``bytes`` alive costs more than decoding them).
Entry = tuple[int, str, dict[str, str] | bytes | None]

#: Loki's per-value label limit (``max_label_value_length``), in bytes.
MAX_LABEL_VALUE: Final = 2048
_SERVICE_NAME: Final = "service_name"
_UNKNOWN_SERVICE: Final = "unknown_service"

#: ``level`` label value per OTLP severity number (0 = unspecified).
LEVELS: Final[tuple[str, ...]] = (
    ("unknown",) + ("trace",) * 4 + ("debug",) * 4 + ("info",) * 4 + ("warn",) * 4 + ("error",) * 4 + ("fatal",) * 4
)
_TEXT_LEVELS: Final[dict[str, str]] = {
    "trace": "trace", "debug": "debug", "info": "info", "information": "info", "notice": "info",
    "warn": "warn", "warning": "warn", "error": "error", "err": "error", "fatal": "fatal",
    "critical": "fatal", "crit": "fatal", "panic": "fatal", "alert": "fatal", "emergency": "fatal",
    "emerg": "fatal",
}
_SEVNUM_STR: Final[tuple[str, ...]] = tuple(str(i) for i in range(25))
_first = itemgetter(0)
_LOGFMT_QUOTE: Final = re.compile(r'[\x00-\x20="\\\x7f]')
_LOGFMT_KEY_BAD: Final = re.compile(r'[\x00-\x20="]')

# Routes of a log attribute.
_TO_LINE: Final = 0
_TO_SM: Final = 1
_TO_LABEL: Final = 2
_DROP: Final = 3


def level_of(severity_number: int, severity_text: str) -> str:
    """The ``level`` label: from the severity number, else the text, else ``unknown``."""
    if 0 < severity_number < 25:
        return LEVELS[severity_number]
    if severity_text:
        return _TEXT_LEVELS.get(severity_text.strip().lower(), "unknown")
    return "unknown"


def escape_label_value(value: str) -> str:
    """Escape a label value for the ``{k="v"}`` label-set string (PromQL string rules)."""
    if "\\" in value or '"' in value or "\n" in value or "\r" in value or "\t" in value:
        value = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
                 .replace("\r", "\\r").replace("\t", "\\t"))
    return value


def _cut_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, at a character boundary."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", "ignore")


def logfmt_value(value: str) -> str:
    """A logfmt value, quoted when it holds spaces, ``=``, quotes or control characters."""
    if not value:
        return '""'
    if _LOGFMT_QUOTE.search(value) is not None:
        return orjson.dumps(value).decode()
    return value


class Stream:
    """One Loki stream of a batch: its label set and its entries."""

    __slots__ = ("entries", "labels", "pairs")

    def __init__(self, pairs: tuple[tuple[str, str], ...]) -> None:
        #: Sorted ``(name, value)`` label pairs.
        self.pairs = pairs
        #: The label-set string ``{a="1", b="2"}`` (Loki's ``StreamAdapter.labels``).
        self.labels = "{" + ", ".join(f'{k}="{escape_label_value(v)}"' for k, v in pairs) + "}"
        self.entries: list[Entry] = []

    def __repr__(self) -> str:
        return f"Stream({self.labels}, entries={len(self.entries)})"


class Batch:
    """The result of converting one request."""

    __slots__ = ("dropped_label_names", "dropped_lines", "dropped_metadata", "records", "streams",
                 "truncated_lines")

    def __init__(self) -> None:
        #: Streams in order of first appearance, entries sorted by timestamp.
        self.streams: list[Stream] = []
        #: Log records turned into entries.
        self.records = 0
        #: Records dropped because their line was too long (``line_too_long: drop``).
        self.dropped_lines = 0
        #: Lines cut to ``max_line_size``.
        self.truncated_lines = 0
        #: Label names left out of streams by ``max_label_names`` (counted per stream).
        self.dropped_label_names = 0
        #: Structured metadata pairs over ``max_entries``.
        self.dropped_metadata = 0


class _ResourceInfo:
    """What one ``ResourceLogs`` contributes to every entry."""

    __slots__ = ("labels", "metadata", "streams")

    def __init__(self, labels: list[tuple[str, str]], metadata: list[tuple[str, str]]) -> None:
        self.labels = labels
        self.metadata = metadata
        #: Memo: (level, attribute labels) -> stream of this batch.
        self.streams: dict[object, Stream] = {}


class Converter:
    """Turns OTLP logs into Loki streams (see the module docstring).

    Args:
        config: the exporter config.
        protobuf: encode structured metadata straight into ``push.proto``
            fields (for :class:`~agent.exporters.loki.encode.ProtobufEncoder`)
            instead of ``(name, value)`` pairs (for the JSON encoder).
        clock_ns: wall clock for records without timestamps.
    """

    def __init__(self, config: Config, *, protobuf: bool,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        labels = config.labels
        sm = config.structured_metadata
        self._protobuf = protobuf
        self._clock_ns = clock_ns
        self._format = config.line_format
        self._max_line = config.max_line_size
        self._drop_long = config.line_too_long == "drop"
        self._max_labels = labels.max_label_names
        self._level_label = labels.level
        res_map: dict[str, str] = {}
        if labels.default_resource:
            res_map.update({k: sanitize_label_name(k) for k in DEFAULT_RESOURCE_LABELS})
        res_map.update(labels.resource)
        self._resource_labels = res_map
        #: Resource label names in priority order (earlier = kept longer).
        order = [_SERVICE_NAME]
        order.extend(labels.resource.values())
        order.extend(sanitize_label_name(k) for k in DEFAULT_RESOURCE_LABELS if labels.default_resource)
        self._label_rank = {name: i for i, name in reversed(list(enumerate(order)))}
        self._attr_labels = dict(labels.attributes)
        self._attr_label_rank = {name: i for i, name in enumerate(labels.attributes.values())}
        self._sm_enabled = sm.enabled
        self._sm_max = sm.max_entries
        self._sm_attr = sm.attributes.matcher(default_all=self._format == "raw")
        self._sm_res = sm.resource_attributes.matcher(default_all=False)
        self._line_has_attrs = self._format != "raw"
        self._routes: dict[str, int] = {}
        self._pairs = PairEncoder()
        self._sevnum_fields = tuple(self._pairs.field("severity_number", str(i)) for i in range(25))
        self._sevtext_fields: dict[str, bytes] = {}
        # the bytes before a 32-character trace id / 16-character span id field value
        self._trace_head = self._pairs.fresh("trace_id", "0" * 32)[:-32]
        self._span_head = self._pairs.fresh("span_id", "0" * 16)[:-16]

    # -- routing ---------------------------------------------------------------------------
    def _route(self, key: str) -> int:
        if key in self._attr_labels:
            r = _TO_LABEL
        elif self._sm_enabled and self._sm_attr(key):
            r = _TO_SM
        elif self._line_has_attrs:
            r = _TO_LINE
        else:
            r = _DROP
        if len(self._routes) < 8192:
            self._routes[key] = r
        return r

    def _resource(self, attrs: Any) -> _ResourceInfo:
        labels: dict[str, str] = {}
        metadata: list[tuple[str, str]] = []
        res_map = self._resource_labels
        sm_res = self._sm_res if self._sm_enabled and not self._sm_res.none else None
        service = ""
        for kv in attrs:
            key = kv.key
            value = value_to_str(kv.value)
            if key == "service.name":
                service = value
            name = res_map.get(key)
            if name is not None:
                if value:
                    labels[name] = _cut_utf8(value, MAX_LABEL_VALUE)
            elif sm_res is not None and sm_res(key):
                metadata.append((key, value))
        if _SERVICE_NAME not in labels:
            labels[_SERVICE_NAME] = _cut_utf8(service, MAX_LABEL_VALUE) if service else _UNKNOWN_SERVICE
        return _ResourceInfo(list(labels.items()), metadata)

    def _new_stream(self, batch: Batch, streams: dict[tuple[tuple[str, str], ...], Stream],
                    res: _ResourceInfo, level: str, attr_labels: tuple[tuple[str, str], ...] | None) -> Stream:
        pairs: dict[str, str] = dict(res.labels)
        if self._level_label:
            pairs[self._level_label] = level
        if attr_labels:
            for name, value in attr_labels:
                pairs.setdefault(name, value)
        excess = len(pairs) - self._max_labels
        if excess > 0:
            batch.dropped_label_names += excess
            for name in self._drop_order(pairs)[:excess]:
                del pairs[name]
        key = tuple(sorted(pairs.items()))
        stream = streams.get(key)
        if stream is None:
            stream = streams[key] = Stream(key)
            batch.streams.append(stream)
        return stream

    def _drop_order(self, pairs: dict[str, str]) -> list[str]:
        """Label names in the order they are given up: attribute labels (last configured
        first), then resource labels (lowest priority first), then ``level``, ``service_name``."""
        attr_rank = self._attr_label_rank
        res_rank = self._label_rank
        big = len(res_rank) + 1

        def rank(name: str) -> tuple[int, int]:
            if name == _SERVICE_NAME:
                return (3, 0)
            if name == self._level_label:
                return (2, 0)
            if name in attr_rank and name not in res_rank:
                return (0, -attr_rank[name])
            return (1, -res_rank.get(name, big))

        return sorted(pairs, key=rank)

    # -- conversion --------------------------------------------------------------------------
    def convert(self, request: Any) -> Batch:
        """Convert an ``ExportLogsServiceRequest`` (read only) in one go."""
        batch = Batch()
        for _ in self.steps(request, batch):
            pass
        return batch

    def steps(self, request: Any, batch: Batch, chunk: int = 512) -> Iterator[None]:
        """Convert ``request`` into ``batch``, yielding after every ``chunk`` records.

        The caller may run other work between steps (the exporter lets the event
        loop breathe); the batch is complete when the generator is exhausted.
        """
        streams: dict[tuple[tuple[str, str], ...], Stream] = {}
        now = 0
        fmt = self._format
        max_line = self._max_line
        drop_long = self._drop_long
        sm_enabled = self._sm_enabled
        sm_max = self._sm_max
        routes = self._routes
        route_of = self._route
        attr_labels_cfg = self._attr_labels
        dumps = orjson.dumps
        json_line = fmt == "json"
        records = 0
        seen = 0
        pause = chunk
        pb = self._protobuf
        field = self._pairs.field
        fresh = self._pairs.fresh
        sevnum_fields = self._sevnum_fields
        sevtext_fields = self._sevtext_fields
        trace_head = self._trace_head
        span_head = self._span_head
        for rl in request.resource_logs:
            res = self._resource(rl.resource.attributes)
            res_sm: list[bytes] = [field(k, v) for k, v in res.metadata] if pb else []
            res_smd: dict[str, str] = {} if pb else dict(res.metadata)
            res_streams = res.streams
            for sl in rl.scope_logs:
                for r in sl.log_records:
                    seen += 1
                    if seen == pause:
                        pause += chunk
                        yield
                    ts = r.time_unix_nano or r.observed_time_unix_nano
                    if not ts:
                        if not now:
                            now = self._clock_ns()
                        ts = now
                    sevnum = r.severity_number
                    sevtext = r.severity_text
                    level = LEVELS[sevnum] if 0 < sevnum < 25 else level_of(sevnum, sevtext)
                    sm: list[bytes] | None = None  # protobuf mode: encoded fields
                    smd: dict[str, str] | None = None  # JSON mode: name -> value
                    if sm_enabled:
                        tid = r.trace_id
                        sid = r.span_id
                        if pb:
                            sm = []
                            if tid:
                                sm.append(trace_head + hexlify(tid) if len(tid) == 16 else fresh("trace_id", tid.hex()))
                            if sid:
                                sm.append(span_head + hexlify(sid) if len(sid) == 8 else fresh("span_id", sid.hex()))
                            if sevtext:
                                fb = sevtext_fields.get(sevtext)
                                if fb is None:
                                    fb = field("severity_text", sevtext)
                                    if len(sevtext_fields) < 64:
                                        sevtext_fields[sevtext] = fb
                                sm.append(fb)
                            if sevnum:
                                sm.append(sevnum_fields[sevnum] if 0 < sevnum < 25
                                          else field("severity_number", str(sevnum)))
                        else:
                            smd = {}
                            if tid:
                                smd["trace_id"] = tid.hex()
                            if sid:
                                smd["span_id"] = sid.hex()
                            if sevtext:
                                smd["severity_text"] = sevtext
                            if sevnum:
                                smd["severity_number"] = _SEVNUM_STR[sevnum] if 0 < sevnum < 25 else str(sevnum)
                    # attributes: one pass, each to its route
                    line_attrs: dict[str, Any] | None = None
                    attr_labels: list[tuple[str, str]] | None = None
                    for kv in r.attributes:
                        key = kv.key
                        route = routes.get(key)
                        if route is None:
                            route = route_of(key)
                        v = kv.value
                        s = v.string_value
                        if not s:
                            # non-string (or empty) values: ints inline, the rest through the helpers
                            which = v.WhichOneof("value")
                            if which == "int_value":
                                iv = v.int_value
                                s = iv if route == _TO_LINE and json_line else str(iv)
                            elif which is not None and which != "string_value":
                                s = value_to_jsonable(v) if route == _TO_LINE and json_line else value_to_str(v)
                        if route == _TO_LINE:
                            if line_attrs is None:
                                line_attrs = {key: s}
                            else:
                                line_attrs[key] = s
                        elif route == _TO_SM:
                            if s:  # an empty value says nothing
                                if pb:
                                    sm.append(field(key, s))  # type: ignore[union-attr]
                                else:
                                    smd[key] = s  # type: ignore[index]
                        elif route == _TO_LABEL and s:
                            if attr_labels is None:
                                attr_labels = []
                            attr_labels.append((attr_labels_cfg[key], _cut_utf8(s, MAX_LABEL_VALUE)))
                    # the line
                    b = r.body
                    body: Any = b.string_value
                    if fmt == "json":
                        if not body:
                            body = value_to_jsonable(b)
                        line: str = dumps({"body": body, "attributes": line_attrs} if line_attrs else
                                          {"body": body}).decode()
                    else:
                        if not body:
                            body = value_to_str(b) if b.WhichOneof("value") is not None else ""
                        line = _logfmt(b, body, line_attrs) if fmt == "logfmt" else body
                    if max_line and len(line) > max_line // 4 and len(line.encode()) > max_line:
                        if drop_long:
                            batch.dropped_lines += 1
                            continue
                        batch.truncated_lines += 1
                        line = _cut_utf8(line, max_line)
                    sm_out: dict[str, str] | bytes | None = None
                    if sm is not None:
                        if res_sm:
                            sm.extend(res_sm)
                        if len(sm) > sm_max:
                            batch.dropped_metadata += len(sm) - sm_max
                            del sm[sm_max:]
                        if sm:
                            sm_out = b"".join(sm)
                    elif smd is not None:
                        if res_smd:
                            for k, v in res_smd.items():
                                smd.setdefault(k, v)
                        if len(smd) > sm_max:
                            batch.dropped_metadata += len(smd) - sm_max
                            smd = dict(islice(smd.items(), sm_max))
                        if smd:
                            sm_out = smd
                    # the stream
                    if attr_labels is None:
                        stream = res_streams.get(level)
                        if stream is None:
                            stream = res_streams[level] = self._new_stream(batch, streams, res, level, None)
                    else:
                        skey = (level, tuple(attr_labels))
                        stream = res_streams.get(skey)
                        if stream is None:
                            stream = res_streams[skey] = self._new_stream(batch, streams, res, level, skey[1])
                    stream.entries.append((ts, line, sm_out))
                    records += 1
        batch.records = records
        for stream in batch.streams:
            entries = stream.entries
            if len(entries) > 1:
                entries.sort(key=_first)


def _logfmt(body_value: Any, body: str, attrs: dict[str, Any] | None) -> str:
    parts: list[str] = []
    if body_value.WhichOneof("value") == "kvlist_value":
        for kv in body_value.kvlist_value.values:
            parts.append(f"{_logfmt_key(kv.key)}={logfmt_value(value_to_str(kv.value))}")
    else:
        parts.append(f"msg={logfmt_value(body)}")
    if attrs:
        for k, v in attrs.items():
            parts.append(f"{_logfmt_key(k)}={logfmt_value(v)}")
    return " ".join(parts)


def _logfmt_key(key: str) -> str:
    return _LOGFMT_KEY_BAD.sub("_", key) or "_"
