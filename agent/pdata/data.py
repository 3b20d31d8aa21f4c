"""pdata-style wrappers around OTLP export requests.

A :class:`PData` holds:

* the parsed request message (upb), created lazily from the wire bytes;
* the original wire bytes, kept while nothing has mutated the message, so an
  unmodified batch is forwarded (OTLP exporters) without re-encoding;
* a cached item count (spans, metric data points or log records);
* a ``read_only`` flag set by the fan-out when several consumers share it.

Invariants:

* Code that edits the message calls :meth:`PData.mutable` first; that drops
  the byte and count caches. Reading goes through :attr:`PData.proto`.
* Concatenated serialized OTLP requests are a valid request (repeated fields
  append), so :meth:`PData.merge` joins bytes and never copies messages.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Self

from agent.component import Signal
from agent.pdata import proto

__all__ = ["Logs", "Metrics", "PData", "ReadOnlyError", "Traces", "count_metric_points", "new_for"]


class ReadOnlyError(RuntimeError):
    """A consumer tried to edit data shared read-only with other consumers."""


def _count_traces(msg: Any) -> int:
    return sum(len(ss.spans) for rs in msg.resource_spans for ss in rs.scope_spans)


def _count_logs(msg: Any) -> int:
    return sum(len(sl.log_records) for rl in msg.resource_logs for sl in rl.scope_logs)


def count_metric_points(metric: Any) -> int:
    which = metric.WhichOneof("data")
    if which is None:
        return 0
    return len(getattr(metric, which).data_points)


def _count_metrics(msg: Any) -> int:
    return sum(
        count_metric_points(m) for rm in msg.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    )


class PData:
    """Base wrapper; use :class:`Traces`, :class:`Metrics` or :class:`Logs`."""

    signal: ClassVar[Signal]
    request_class: ClassVar[Any]
    response_class: ClassVar[Any]
    #: (resource list field, scope list field, item list field)
    fields: ClassVar[tuple[str, str, str]]
    _counter: ClassVar[staticmethod[[Any], int]]

    __slots__ = ("_count", "_msg", "_raw", "read_only")

    def __init__(self, msg: Any = None, *, raw: bytes | None = None, count: int | None = None) -> None:
        if msg is None and raw is None:
            msg = self.request_class()
        self._msg = msg
        self._raw = raw
        self._count = count
        self.read_only = False

    # -- construction -------------------------------------------------------
    @classmethod
    def parse(cls, raw: bytes) -> Self:
        """Decode wire bytes (eagerly, so a bad body is detected here) and keep them.

        Raises:
            google.protobuf.message.DecodeError: the bytes are not a valid request.
        """
        msg = cls.request_class()
        msg.ParseFromString(raw)
        return cls(msg, raw=bytes(raw))

    @classmethod
    def merge(cls, items: Sequence[PData]) -> Self:
        """One request holding every item of ``items`` (byte concatenation)."""
        if len(items) == 1 and type(items[0]) is cls:
            return items[0]  # type: ignore[return-value]
        raw = b"".join(i.to_bytes() for i in items)
        return cls(raw=raw, count=sum(i.item_count for i in items))

    # -- access --------------------------------------------------------------
    @property
    def proto(self) -> Any:
        """The request message, for reading. Do not edit it: use :meth:`mutable`."""
        msg = self._msg
        if msg is None:
            msg = self.request_class()
            msg.ParseFromString(self._raw)
            self._msg = msg
        return msg

    def mutable(self) -> Any:
        """The request message, for editing; drops the cached bytes and count."""
        if self.read_only:
            raise ReadOnlyError(f"{type(self).__name__} is shared read-only; declare mutates_data")
        msg = self.proto
        self._raw = None
        self._count = None
        return msg

    @property
    def has_original_bytes(self) -> bool:
        """True while the wire bytes received are still valid for this data."""
        return self._raw is not None

    def to_bytes(self) -> bytes:
        """Serialized request: the original bytes when unmodified."""
        raw = self._raw
        if raw is None:
            raw = self._msg.SerializeToString()
            self._raw = raw
        return raw

    @property
    def byte_size(self) -> int:
        return len(self._raw) if self._raw is not None else int(self._msg.ByteSize())

    @property
    def item_count(self) -> int:
        c = self._count
        if c is None:
            c = type(self)._counter(self.proto)  # staticmethod: no self
            self._count = c
        return c

    def resources(self) -> Any:
        return getattr(self.proto, self.fields[0])

    def __len__(self) -> int:
        return self.item_count

    def __repr__(self) -> str:
        return f"{type(self).__name__}(items={self.item_count}, bytes={self.byte_size})"

    # -- copies ----------------------------------------------------------------
    def clone(self) -> Self:
        """An independent copy (cheap when the original bytes are still held)."""
        if self._raw is not None:
            return type(self)(raw=self._raw, count=self._count)
        msg = self.request_class()
        msg.CopyFrom(self._msg)
        return type(self)(msg, count=self._count)

    def split(self, max_items: int) -> list[Self]:
        """Split into requests of at most ``max_items`` items, keeping resource and
        scope of each item. Returns ``[self]`` when already small enough."""
        if max_items <= 0 or self.item_count <= max_items:
            return [self]
        out: list[Self] = []
        for chunk in _split_chunks(self, max_items):
            out.append(type(self)(chunk))
        return out


def _split_chunks(data: PData, max_items: int) -> Iterator[Any]:
    """Yield request messages with at most ``max_items`` items each."""
    rfield, sfield, ifield = data.fields
    is_metrics = data.signal is Signal.METRICS
    cur = data.request_class()
    room = max_items
    for res in getattr(data.proto, rfield):
        cur_res = None
        for scope in getattr(res, sfield):
            cur_scope = None
            for item in getattr(scope, ifield):
                pieces = _split_metric(item, room, max_items) if is_metrics else [(item, 1)]
                for piece, n in pieces:
                    if n > room:
                        yield cur
                        cur = data.request_class()
                        room = max_items
                        cur_res = cur_scope = None
                    if cur_res is None:
                        cur_res = getattr(cur, rfield).add()
                        cur_res.resource.CopyFrom(res.resource)
                        cur_res.schema_url = res.schema_url
                    if cur_scope is None:
                        cur_scope = getattr(cur_res, sfield).add()
                        cur_scope.scope.CopyFrom(scope.scope)
                        cur_scope.schema_url = scope.schema_url
                    getattr(cur_scope, ifield).add().CopyFrom(piece)
                    room -= n
                    if room == 0:
                        yield cur
                        cur = data.request_class()
                        room = max_items
                        cur_res = cur_scope = None
    if len(getattr(cur, rfield)):
        yield cur


def _split_metric(metric: Any, room: int, max_items: int) -> list[tuple[Any, int]]:
    """Cut one metric into pieces: the first fits ``room`` points, then ``max_items`` each."""
    n = count_metric_points(metric)
    if n <= room:
        return [(metric, n)]
    which = metric.WhichOneof("data")
    points = getattr(metric, which).data_points
    pieces: list[tuple[Any, int]] = []
    start = 0
    size = room
    while start < n:
        piece = proto.Metric()
        piece.CopyFrom(metric)
        dp = getattr(piece, which).data_points
        del dp[:]
        end = min(n, start + size)
        for p in points[start:end]:
            dp.add().CopyFrom(p)
        pieces.append((piece, end - start))
        start = end
        size = max_items
    return pieces


class Traces(PData):
    signal = Signal.TRACES
    request_class = proto.ExportTraceServiceRequest
    response_class = proto.ExportTraceServiceResponse
    fields = ("resource_spans", "scope_spans", "spans")
    _counter = staticmethod(_count_traces)
    __slots__ = ()


class Metrics(PData):
    signal = Signal.METRICS
    request_class = proto.ExportMetricsServiceRequest
    response_class = proto.ExportMetricsServiceResponse
    fields = ("resource_metrics", "scope_metrics", "metrics")
    _counter = staticmethod(_count_metrics)
    __slots__ = ()


class Logs(PData):
    signal = Signal.LOGS
    request_class = proto.ExportLogsServiceRequest
    response_class = proto.ExportLogsServiceResponse
    fields = ("resource_logs", "scope_logs", "log_records")
    _counter = staticmethod(_count_logs)
    __slots__ = ()


_BY_SIGNAL: dict[Signal, type[PData]] = {Signal.TRACES: Traces, Signal.METRICS: Metrics, Signal.LOGS: Logs}


def new_for(signal: Signal) -> type[PData]:
    """The wrapper class of ``signal``."""
    return _BY_SIGNAL[signal]
