"""The sending chain every exporter uses: queue -> (batch) -> retry -> timeout -> push.

:class:`ExporterHelper` wraps one exporter's ``push(signal, data)`` coroutine
with the collector's ``exporterhelper`` behaviour and self-metrics. One helper
serves every signal of its exporter instance; like the collector (one helper
per signal), each signal has its own *lane*: its own queue of ``queue_size``,
its own ``num_consumers`` workers and its own ``otelcol_exporter_queue_size``
gauge (``data_type`` label).

Contract of ``consume_<signal>`` (see ``agent/consumer.py``):

* **Queue enabled** (default): returns once the data is queued. When the queue
  is full it raises :class:`~agent.errors.QueueFullError` (retryable, with a
  ``retry_after`` hint of 1 s) and counts ``otelcol_exporter_enqueue_failed_*``;
  with ``block_on_overflow`` it waits for room instead (backpressure reaches
  the caller). With ``wait_for_result`` it returns only after the send, raising
  the final error if the data was dropped. A request larger than the whole
  queue capacity can never fit: :class:`~agent.errors.PermanentError`.
* **Queue disabled**: sends inline with retries; after the last failure the
  error propagates to the caller (which still owns the data; the items are
  counted in ``send_failed`` as the collector does, logged at debug only).
* After :meth:`ExporterHelper.shutdown` began: :class:`~agent.errors.ShutdownError`.

Persistent queue (``sending_queue.storage: <extension id>``): each lane's queue
is a :class:`~agent.exporters.helper.persistent.PersistentQueue` on a client of
that storage extension (``file_storage``), opened by :meth:`ExporterHelper.start`
(which fails, clearly, when the id is not an extension in ``service.extensions``
or not a storage extension). Differences from the memory queue:

* ``consume`` returns once the request is *written to the queue file* (see
  that module); a failed write (disk full) is a retryable
  :class:`~agent.exporters.helper.persistent.StorageError` counted in
  ``otelcol_exporter_enqueue_failed_*``;
* a request is *acknowledged*, i.e. removed from disk for good, only once it was
  sent or dropped for good (permanent error, or retries exhausted after
  ``max_elapsed_time``: the collector's semantics, so set it to 0 to retry for
  as long as the queue has room); until then it is delivered again after a
  restart, crash included (at least once);
* records the recovery scan finds damaged are skipped and counted in
  ``otelcol_exporter_queue_corrupted_records_total`` (``exporter``, ``data_type``);
* shutdown does not drain: consumers stop taking data, a request in flight
  gets its current attempt (within the grace period) but no retry, and
  everything not sent stays on disk for the next start. Those requests are
  *persisted*, not dropped: they are not counted in ``send_failed`` (a log line
  at INFO says how many).

Delivery invariants:

* Every item taken into a queue ends in exactly one of
  ``otelcol_exporter_sent_*`` or ``otelcol_exporter_send_failed_*``.
* :class:`~agent.errors.PermanentError` is never retried. Other errors are
  retried with exponential backoff and jitter; the wait is
  ``max(backoff, error.retry_after)``; a request is given up when its next try
  would start more than ``max_elapsed_time`` after its first one.
* A dropped request is logged once, at ERROR, with its item count and reason,
  never its payload. Retries are logged at INFO; a full queue is reported at
  WARNING at most every 10 s.
* Capacity is held until a request is finished, so ``queue_size`` bounds the
  memory of queued *and* in-flight requests.

Shutdown (the service calls it after receivers stopped): new data is refused
(``ShutdownError``); workers drain the queue for at most
``settings.shutdown_grace`` seconds. During the drain a request gets its
current attempt and further retries only while they would start before the
deadline; a backoff wait in progress when shutdown begins is cut short (the
request is dropped at once if its retry would miss the deadline). At the
deadline the remaining work is cancelled and everything still queued, being
batched or in flight is counted in ``send_failed`` and logged once per lane.

Timing: backoff decisions use the injectable ``clock`` and ``sleep`` (tests
pass a fake clock, so no real seconds pass); the per-attempt ``timeout``, the
batch ``flush_timeout`` and the hard shutdown deadline use the event loop's
clock, because they bound real waiting.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, Final, Protocol

from agent.component import ComponentID, Host, Kind, Settings, Signal
from agent.config.decode import format_duration
from agent.errors import (
    ConsumerError,
    PermanentError,
    QueueFullError,
    ShutdownError,
    retry_after_of,
)
from agent.exporters.helper.config import BatchConfig, HelperConfig, QueueConfig, RetryConfig, Sizer
from agent.exporters.helper.persistent import PersistentQueue, StorageError, StoredEntry
from agent.exporters.helper.queue import BoundedQueue
from agent.exporters.helper.retry import Backoff
from agent.extensions.storage import StorageExtension
from agent.pdata import Logs, Metrics, PData, Traces, new_for

__all__ = ["QUEUE_FULL_RETRY_AFTER", "Clock", "ExporterHelper", "PushFn", "SleepFn"]

#: ``push(signal, data)``: send one request; raise PermanentError, ThrottleError or ConsumerError.
#: It may return the number of items the backend accepted the request without
#: (an OTLP ``partial_success``): those are counted as failed, the rest as sent.
PushFn = Callable[[Signal, PData], Awaitable[int | None]]
#: Seconds from an arbitrary origin, monotonic.
Clock = Callable[[], float]
#: ``await sleep(seconds)``.
SleepFn = Callable[[float], Awaitable[None]]

#: The ``retry_after`` hint carried by QueueFullError, in seconds.
QUEUE_FULL_RETRY_AFTER: Final = 1.0
_FULL_REPORT_INTERVAL: Final = 10.0
#: How long shutdown waits for cancelled tasks to unwind.
_CANCEL_WAIT: Final = 1.0
_MAX_ERROR_TEXT: Final = 300
#: Records the batcher reads from a persistent queue at once.
_BATCH_READ: Final = 64


def size_of(sizer: Sizer, data: PData) -> int:
    """Size of ``data`` in ``sizer`` units: 1 request, its item count, or its byte size."""
    if sizer == "requests":
        return 1
    if sizer == "items":
        return data.item_count
    return data.byte_size


def describe_error(err: BaseException) -> str:
    """A short, payload-free description for logs: ``Type: message`` (truncated)."""
    text = str(err)
    if not isinstance(err, ConsumerError):
        text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    if len(text) > _MAX_ERROR_TEXT:
        text = text[:_MAX_ERROR_TEXT] + "..."
    return text or type(err).__name__


def as_consumer_error(err: BaseException) -> ConsumerError:
    """``err`` itself when it is a ConsumerError, else a retryable wrapper of it."""
    if isinstance(err, ConsumerError):
        return err
    wrapped = ConsumerError(describe_error(err))
    wrapped.__cause__ = err
    return wrapped


class _Failure:
    """Why a request was not delivered.

    ``keep``: the request stays in its persistent queue (shutdown), neither
    acknowledged nor counted as failed.
    """

    __slots__ = ("error", "keep", "reason")

    def __init__(self, reason: str, error: BaseException, *, keep: bool = False) -> None:
        self.reason = reason
        self.error = error
        self.keep = keep


class _Request:
    """One ``consume`` call's data while it is queued or being sent.

    ``seq``: its record in a persistent queue (None in a memory queue).
    """

    __slots__ = ("data", "future", "items", "seq", "size")

    def __init__(self, data: PData, size: int, items: int, seq: int | None = None) -> None:
        self.data: PData | None = data
        self.size = size
        self.items = items
        self.seq = seq
        self.future: asyncio.Future[None] | None = None


class _Group:
    """Requests sent together (one, or a merged batch), finished when all units are settled."""

    __slots__ = ("error", "keep", "remaining", "requests")

    def __init__(self, requests: list[_Request], units: int) -> None:
        self.requests = requests
        self.remaining = units
        self.error: BaseException | None = None
        self.keep = False


class _Unit:
    """One request actually pushed (a request, a merged batch, or a piece of one)."""

    __slots__ = ("data", "group", "items", "settled")

    def __init__(self, data: PData, items: int, group: _Group) -> None:
        self.data: PData | None = data
        self.items = items
        self.group = group
        self.settled = False


class _Source(Protocol):
    """Where workers take requests from: a memory queue or a persistent one."""

    @property
    def closed(self) -> bool: ...

    async def get(self) -> _Request | None: ...

    def get_nowait(self) -> _Request | None: ...


class _StoreSource:
    """A :class:`PersistentQueue` seen as a :class:`_Source` of requests."""

    __slots__ = ("store",)

    def __init__(self, store: PersistentQueue) -> None:
        self.store = store

    @property
    def closed(self) -> bool:
        return self.store.closed

    async def get(self) -> _Request | None:
        return _request_of(await self.store.get())

    def get_nowait(self) -> _Request | None:
        return _request_of(self.store.get_nowait())


def _request_of(entry: StoredEntry | None) -> _Request | None:
    if entry is None:
        return None
    req = _Request(entry.data, entry.size, entry.items, entry.seq)
    req.future = entry.waiter
    return req


class _Lane:
    """Per-signal queue, workers and bookkeeping."""

    __slots__ = ("batch", "consumers", "full_refusals", "full_reported_at", "pending", "persistent", "queue",
                 "signal", "store", "store_refusals", "store_reported_at", "tasks", "units")

    def __init__(self, signal: Signal, queue: BoundedQueue[_Request] | None, batch: BatchConfig | None,
                 consumers: int, *, persistent: bool = False) -> None:
        self.signal = signal
        self.queue = queue
        #: The persistent queue (``sending_queue.storage``), once opened by ``start``.
        self.store: PersistentQueue | None = None
        self.persistent = persistent
        self.batch = batch
        self.consumers = consumers
        self.tasks: set[asyncio.Task[None]] = set()
        #: Units created and not yet settled (sending, or waiting for a consumer).
        self.units: set[_Unit] = set()
        #: Requests taken by the batcher and not yet flushed.
        self.pending: list[_Request] = []
        self.full_refusals = 0
        self.full_reported_at = -math.inf
        self.store_refusals = 0
        self.store_reported_at = -math.inf

    def size(self) -> int:
        """Capacity in use (queued plus in flight)."""
        if self.store is not None:
            return self.store.size
        return self.queue.size if self.queue is not None else 0

    def source(self) -> _Source | None:
        if self.store is not None:
            return _StoreSource(self.store)
        return self.queue


class ExporterHelper:
    """Queue, batching, retry, timeout and self-metrics around an exporter's push.

    Args:
        settings: the exporter's settings (id, telemetry, logger, shutdown_grace).
        config: anything with ``timeout``, ``sending_queue`` and ``retry_on_failure``
            (``None`` turns a block off).
        signals: the signals this exporter instance serves.
        push: ``await push(signal, data)`` sends one request; it raises
            :class:`~agent.errors.PermanentError` (drop), :class:`~agent.errors.ThrottleError`
            (retry, not before ``retry_after``) or any other exception (retry).
            It must not edit ``data`` (exporters declare ``mutates_data=False``).
        clock: monotonic seconds for backoff decisions (default ``time.monotonic``).
        sleep: backoff wait (default ``asyncio.sleep``).
        rng: randomness for the backoff jitter.
    """

    def __init__(self, settings: Settings, config: HelperConfig, signals: Iterable[Signal], push: PushFn, *,
                 clock: Clock | None = None, sleep: SleepFn | None = None,
                 rng: random.Random | None = None) -> None:
        self._id: ComponentID = settings.id
        self._grace = max(0.0, float(settings.shutdown_grace))
        self._log: logging.Logger = settings.logger
        self._push = push
        self._timeout = max(0.0, float(config.timeout))
        retry = config.retry_on_failure
        self._retry: RetryConfig | None = retry if retry is not None and retry.enabled else None
        queue = config.sending_queue
        self._queue_cfg: QueueConfig | None = queue if queue is not None and queue.enabled else None
        self._clock: Clock = clock or time.monotonic
        self._sleep: SleepFn = sleep or asyncio.sleep
        self._rng = rng or random.Random()
        telemetry = settings.telemetry
        self._obs = telemetry.exporter(settings.id)
        self._in_flight = telemetry.exporter_in_flight.labels(str(settings.id))
        self._lanes: dict[Signal, _Lane] = {}
        qc = self._queue_cfg
        if qc is not None and qc.blocking:
            self._log.warning("sending_queue.blocking is deprecated; use sending_queue.block_on_overflow.")
        self._storage: ComponentID | None = None
        if qc is not None and qc.storage:
            self._storage = ComponentID.parse(qc.storage, f"exporters.{settings.id}.sending_queue.storage")
        self._telemetry = telemetry
        for signal in sorted(set(signals)):
            q: BoundedQueue[_Request] | None = None
            if qc is not None and self._storage is None:
                q = BoundedQueue(qc.queue_size)
            lane = _Lane(signal, q, qc.batch if qc is not None else None,
                         qc.num_consumers if qc is not None else 0, persistent=self._storage is not None)
            if qc is not None:
                telemetry.queue_gauges(settings.id, signal.value, _size_reader(lane), qc.queue_size)
            self._lanes[signal] = lane
        self._started = False
        self._closed = False
        self._draining = False
        self._drain_deadline = math.inf
        self._stop = asyncio.Event()
        self._shutdown_task: asyncio.Future[None] | None = None

    # -- introspection ------------------------------------------------------------------
    @property
    def signals(self) -> frozenset[Signal]:
        """The signals this helper was created for (one lane each)."""
        return frozenset(self._lanes)

    @property
    def queued(self) -> bool:
        """True when ``consume`` enqueues (the sending queue is enabled)."""
        return self._queue_cfg is not None

    @property
    def persistent(self) -> bool:
        """True when the queue is kept in a storage extension (``sending_queue.storage``)."""
        return self._storage is not None

    def queue_size(self, signal: Signal) -> int:
        """Capacity in use in ``signal``'s queue (queued plus in flight); 0 without a queue."""
        return self._lane(signal).size()

    # -- consumer interface ---------------------------------------------------------------
    async def consume_traces(self, td: Traces) -> None:
        """:meth:`consume` for traces."""
        await self.consume(Signal.TRACES, td)

    async def consume_metrics(self, md: Metrics) -> None:
        """:meth:`consume` for metrics."""
        await self.consume(Signal.METRICS, md)

    async def consume_logs(self, ld: Logs) -> None:
        """:meth:`consume` for logs."""
        await self.consume(Signal.LOGS, ld)

    async def consume(self, signal: Signal, data: PData) -> None:
        """Accept ``data`` of ``signal`` (see the module docstring for the contract).

        Raises:
            QueueFullError: the queue is full (and does not block).
            ShutdownError: shutdown has begun.
            PermanentError: the request can never be queued or sent.
            ConsumerError: inline send or ``wait_for_result``: the final send error.
            TypeError: this helper was not created for ``signal``.
        """
        lane = self._lane(signal)
        if self._closed:
            raise ShutdownError(f"exporter {self._id} is shutting down")
        if lane.persistent:
            await self._enqueue_persistent(lane, data)
        elif lane.queue is None:
            await self._send_inline(signal, data)
        else:
            await self._enqueue(lane, lane.queue, data)

    def _lane(self, signal: Signal) -> _Lane:
        lane = self._lanes.get(signal)
        if lane is None:
            raise TypeError(f"exporter {self._id} was not created for {signal.value}")
        return lane

    async def _send_inline(self, signal: Signal, data: PData) -> None:
        items = data.item_count
        failure = await self._send(signal, data)
        if isinstance(failure, int):
            rejected = min(failure, items)
            self._obs.sent(signal, items - rejected)
            if rejected:
                self._obs.send_failed(signal, rejected)
            return
        self._obs.send_failed(signal, items)
        self._log.debug("Exporting failed; returning the error to the caller (%d %s, %s): %s.",
                        items, signal.item_name, failure.reason, describe_error(failure.error),
                        extra={"signal": signal.value, "failed_items": items, "reason": failure.reason})
        raise as_consumer_error(failure.error)

    async def _enqueue(self, lane: _Lane, q: BoundedQueue[_Request], data: PData) -> None:
        qc = self._queue_cfg
        assert qc is not None
        signal = lane.signal
        size = size_of(qc.queue_sizer, data)
        if size == 0:
            return  # an empty request under the items/bytes sizer: nothing to send (as the collector)
        items = data.item_count
        if size > q.capacity:
            self._obs.enqueue_failed(signal, items)
            raise PermanentError(f"request of {size} {qc.queue_sizer} exceeds the sending queue capacity "
                                 f"of exporter {self._id} ({q.capacity} {qc.queue_sizer})")
        req = _Request(data, size, items)
        if qc.wait_for_result:
            req.future = asyncio.get_running_loop().create_future()
        if qc.blocks:
            await q.put(req, size)
        elif not q.try_put(req, size):
            self._obs.enqueue_failed(signal, items)
            self._report_full(lane)
            raise QueueFullError(f"sending queue of exporter {self._id} is full",
                                 retry_after=QUEUE_FULL_RETRY_AFTER)
        if req.future is not None:
            await req.future

    async def _enqueue_persistent(self, lane: _Lane, data: PData) -> None:
        qc = self._queue_cfg
        assert qc is not None
        store = lane.store
        if store is None:
            raise ShutdownError(f"exporter {self._id} has not started its persistent queue")
        signal = lane.signal
        size = size_of(qc.queue_sizer, data)
        if size == 0:
            return
        items = data.item_count
        if size > store.capacity:
            self._obs.enqueue_failed(signal, items)
            raise PermanentError(f"request of {size} {qc.queue_sizer} exceeds the sending queue capacity "
                                 f"of exporter {self._id} ({store.capacity} {qc.queue_sizer})")
        waiter = asyncio.get_running_loop().create_future() if qc.wait_for_result else None
        try:
            ok = await store.put(data, size, block=qc.blocks, waiter=waiter)
        except StorageError:
            self._obs.enqueue_failed(signal, items)
            self._report_storage(lane)
            raise
        if not ok:
            self._obs.enqueue_failed(signal, items)
            self._report_full(lane)
            raise QueueFullError(f"sending queue of exporter {self._id} is full",
                                 retry_after=QUEUE_FULL_RETRY_AFTER)
        if waiter is not None:
            await waiter

    def _report_storage(self, lane: _Lane) -> None:
        lane.store_refusals += 1
        now = self._clock()
        if now - lane.store_reported_at >= _FULL_REPORT_INTERVAL:
            self._log.warning("Persistent sending queue cannot write; refusing %s (%d refusals since the last "
                              "report).", lane.signal.value, lane.store_refusals,
                              extra={"signal": lane.signal.value, "refusals": lane.store_refusals})
            lane.store_refusals = 0
            lane.store_reported_at = now

    def _report_full(self, lane: _Lane) -> None:
        lane.full_refusals += 1
        now = self._clock()
        if now - lane.full_reported_at >= _FULL_REPORT_INTERVAL:
            self._log.warning("Sending queue is full; refusing %s (%d refusals since the last report).",
                              lane.signal.value, lane.full_refusals,
                              extra={"signal": lane.signal.value, "refusals": lane.full_refusals})
            lane.full_refusals = 0
            lane.full_reported_at = now

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self, host: Host | None = None) -> None:
        """Open the persistent queues (if any), then start the queue workers (and batchers).

        Idempotent; a no-op after shutdown.

        Raises:
            RuntimeError: ``sending_queue.storage`` names no started storage
                extension (``host`` None counts as none), or a queue cannot be opened.
        """
        if self._started or self._closed:
            return
        if self._storage is not None:
            await self._open_stores(host)
        self._started = True
        for lane in self._lanes.values():
            source = lane.source()
            if source is None:
                continue
            if lane.batch is not None:
                self._spawn(lane, self._batcher(lane, source, lane.batch), "batcher")
            else:
                for i in range(lane.consumers):
                    self._spawn(lane, self._worker(lane, source), f"consumer-{i}")

    async def _open_stores(self, host: Host | None) -> None:
        sid = self._storage
        qc = self._queue_cfg
        assert sid is not None and qc is not None
        where = f"exporter {self._id}: sending_queue.storage"
        ext = host.get_extension(sid) if host is not None else None
        if ext is None:
            raise RuntimeError(f"{where}: storage extension {str(sid)!r} is not configured; define it under "
                               f"extensions and list it in service.extensions")
        if not isinstance(ext, StorageExtension):
            raise RuntimeError(f"{where}: extension {str(sid)!r} is not a storage extension")
        corrupted = self._telemetry.counter(
            "otelcol_exporter_queue_corrupted_records",
            "Number of damaged records (cut short or failing their checksum) skipped in persistent queues.",
            ("exporter", "data_type"))
        opened: list[PersistentQueue] = []
        try:
            for lane in self._lanes.values():
                client = ext.get_client(Kind.EXPORTER, self._id, lane.signal.value)
                store = PersistentQueue(
                    client, lane.signal, qc.queue_sizer, qc.queue_size,
                    read_batch=_BATCH_READ if lane.batch is not None else lane.consumers,
                    greedy=lane.batch is not None, logger=self._log,
                    on_corrupted=corrupted.labels(str(self._id), lane.signal.value).inc)
                try:
                    rec = await store.open()
                except Exception as e:
                    await asyncio.to_thread(client.close)
                    raise RuntimeError(f"{where}: cannot open the {lane.signal.value} queue: {e}") from e
                opened.append(store)
                lane.store = store
                if rec.records or rec.corrupted or not rec.state_valid:
                    self._log.info(
                        "Persistent queue recovered %d requests (%d %s) from an earlier run; %d damaged records "
                        "skipped.", rec.records, rec.items, lane.signal.item_name, rec.corrupted,
                        extra={"signal": lane.signal.value, "requests": rec.records, "items": rec.items,
                               "corrupted_records": rec.corrupted, "state_valid": rec.state_valid})
        except BaseException:
            for store in opened:
                await store.aclose()
            for lane in self._lanes.values():
                lane.store = None
            raise

    async def shutdown(self) -> None:
        """Stop accepting, drain within ``shutdown_grace``, then drop and count the rest.

        Safe to call twice (the second call waits for the first) and without start.
        """
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.ensure_future(self._shutdown())
        await asyncio.shield(self._shutdown_task)

    async def _shutdown(self) -> None:
        self._closed = True
        self._draining = True
        self._drain_deadline = self._clock() + self._grace
        self._stop.set()
        for lane in self._lanes.values():
            if lane.queue is not None:
                lane.queue.close()
            if lane.store is not None:
                lane.store.close()
        loop = asyncio.get_running_loop()
        hard_deadline = loop.time() + self._grace
        while True:
            tasks = {t for lane in self._lanes.values() for t in lane.tasks if not t.done()}
            remaining = hard_deadline - loop.time()
            if not tasks or remaining <= 0:
                break
            await asyncio.wait(tasks, timeout=remaining)
        leftover = {t for lane in self._lanes.values() for t in lane.tasks if not t.done()}
        if leftover:
            for t in leftover:
                t.cancel()
            _, stuck = await asyncio.wait(leftover, timeout=_CANCEL_WAIT)
            if stuck:
                self._log.warning("%d export tasks did not stop when cancelled.", len(stuck))
        for lane in self._lanes.values():
            self._drop_leftovers(lane)
        for lane in self._lanes.values():
            if lane.store is not None:
                await self._close_store(lane, lane.store)

    async def _close_store(self, lane: _Lane, store: PersistentQueue) -> None:
        try:
            await store.aclose()
        except Exception:
            self._log.exception("Persistent queue failed to close cleanly.", extra={"signal": lane.signal.value})
        if store.records:
            self._log.info("Persistent queue keeps %d requests (%d %s) for the next start.", store.records,
                           store.items, lane.signal.item_name,
                           extra={"signal": lane.signal.value, "requests": store.records, "items": store.items})

    def _spawn(self, lane: _Lane, coro: Coroutine[Any, Any, None], role: str) -> None:
        task = asyncio.create_task(coro, name=f"exporter {self._id} {lane.signal.value} {role}")
        lane.tasks.add(task)
        task.add_done_callback(self._task_done(lane))

    def _task_done(self, lane: _Lane) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            lane.tasks.discard(task)
            if not task.cancelled() and (exc := task.exception()) is not None:
                self._log.error("Export task failed unexpectedly.", exc_info=exc,
                                extra={"signal": lane.signal.value})
        return done

    # -- workers ----------------------------------------------------------------------------
    async def _worker(self, lane: _Lane, q: _Source) -> None:
        while True:
            req = await q.get()
            if req is None:
                return
            assert req.data is not None
            unit = _Unit(req.data, req.items, _Group([req], 1))
            lane.units.add(unit)
            await self._run(lane, unit)

    async def _batcher(self, lane: _Lane, q: _Source, cfg: BatchConfig) -> None:
        qc = self._queue_cfg
        assert qc is not None
        sizer = qc.batch_sizer
        loop = asyncio.get_running_loop()
        consumers = asyncio.Semaphore(lane.consumers)
        pending = lane.pending
        pending_size = 0
        deadline = 0.0
        while True:
            req = q.get_nowait()
            if req is None:
                if q.closed and lane.persistent:
                    return  # not drained: what was taken stays unacknowledged, on disk
                if pending and (q.closed or loop.time() >= deadline):
                    await self._flush(lane, consumers)
                    pending_size = 0
                    continue
                if q.closed:
                    return
                try:
                    if pending:
                        async with asyncio.timeout_at(deadline):
                            req = await q.get()
                    else:
                        req = await q.get()
                except TimeoutError:
                    continue
                if req is None:
                    continue
            assert req.data is not None
            if not pending:
                deadline = loop.time() + cfg.flush_timeout
            pending.append(req)
            pending_size += req.items if sizer == "items" else req.data.byte_size
            if pending_size >= cfg.min_size:
                await self._flush(lane, consumers)
                pending_size = 0

    async def _flush(self, lane: _Lane, consumers: asyncio.Semaphore) -> None:
        """Merge the pending requests, cut them to ``max_size`` and send each piece on a consumer."""
        reqs = list(lane.pending)
        lane.pending.clear()
        datas = [r.data for r in reqs if r.data is not None]
        merged = new_for(lane.signal).merge(datas)
        for r in reqs:
            r.data = None  # the merged request holds the data from now on
        pieces = self._cut(merged, lane.batch)
        group = _Group(reqs, len(pieces))
        units = [_Unit(p, p.item_count, group) for p in pieces]
        lane.units.update(units)
        for unit in units:
            await consumers.acquire()
            self._spawn(lane, self._run_then_release(lane, unit, consumers), "sender")

    def _cut(self, data: PData, cfg: BatchConfig | None) -> list[PData]:
        if cfg is None or cfg.max_size <= 0:
            return [data]
        qc = self._queue_cfg
        assert qc is not None
        if qc.batch_sizer == "items":
            return list(data.split(cfg.max_size))
        total = data.byte_size
        count = data.item_count
        if total <= cfg.max_size or count <= 1:
            return [data]
        return list(data.split(max(1, count * cfg.max_size // total)))

    async def _run_then_release(self, lane: _Lane, unit: _Unit, consumers: asyncio.Semaphore) -> None:
        try:
            await self._run(lane, unit)
        finally:
            consumers.release()

    async def _run(self, lane: _Lane, unit: _Unit) -> None:
        assert unit.data is not None
        result = await self._send(lane.signal, unit.data, persistent=lane.persistent)
        if isinstance(result, int):
            self._settle(lane, unit, None, rejected=result)
        else:
            self._settle(lane, unit, result)

    # -- retry and timeout -----------------------------------------------------------------
    async def _send(self, signal: Signal, data: PData, *, persistent: bool = False) -> _Failure | int:
        """Push with retries. Returns the number of items the backend rejected in a
        partial success (0 normally) when sent, else why it was given up.

        ``persistent``: once shutdown has begun, a retryable failure leaves the
        request in its persistent queue instead of retrying (``keep``)."""
        retry = self._retry
        backoff: Backoff | None = None
        deadline = math.inf
        if retry is not None and retry.max_elapsed_time > 0:
            deadline = self._clock() + retry.max_elapsed_time
        while True:
            try:
                return await self._attempt(signal, data)
            except PermanentError as e:
                return _Failure("permanent error", e)
            except Exception as e:
                err: Exception = e
            if persistent and self._draining:
                return _Failure("shutdown, left in the persistent queue", err, keep=True)
            if retry is None:
                return _Failure("not retried, retry_on_failure is disabled", err)
            if backoff is None:
                backoff = Backoff.from_config(retry, self._rng)
            delay = max(backoff.next(), retry_after_of(err))
            wake_at = self._clock() + delay
            if wake_at > deadline:
                return _Failure("retries exhausted (max_elapsed_time)", err)
            if self._draining and wake_at > self._drain_deadline:
                return _Failure("shutdown, the next retry would miss the shutdown grace period", err)
            self._log.info("Exporting failed. Will retry the request after %s: %s.",
                           format_duration(round(delay, 3)), describe_error(err),
                           extra={"signal": signal.value, "interval_seconds": round(delay, 3)})
            if not await self._backoff_sleep(delay, wake_at, persistent=persistent):
                if persistent:
                    return _Failure("shutdown, left in the persistent queue", err, keep=True)
                return _Failure("shutdown, the next retry would miss the shutdown grace period", err)

    async def _attempt(self, signal: Signal, data: PData) -> int:
        self._in_flight.inc()
        try:
            if self._timeout > 0:
                cm = asyncio.timeout(self._timeout)
                try:
                    async with cm:
                        return int(await self._push(signal, data) or 0)
                except TimeoutError as e:
                    if cm.expired():
                        raise ConsumerError(
                            f"export attempt timed out after {format_duration(self._timeout)}") from e
                    raise
            return int(await self._push(signal, data) or 0)
        finally:
            self._in_flight.dec()

    async def _backoff_sleep(self, delay: float, wake_at: float, *, persistent: bool = False) -> bool:
        """Wait before a retry. Returns False when shutdown makes the retry pointless
        (always, for a persistent queue: the request waits on disk instead)."""
        if self._draining:
            await self._sleep(delay)  # the caller checked that it ends before the drain deadline
            return True
        sleeper = asyncio.ensure_future(self._sleep(delay))
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait((sleeper, stopper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            stopper.cancel()
        if sleeper.done() and not sleeper.cancelled():
            sleeper.result()
            return True
        # Shutdown began during the wait: keep waiting only if the retry still fits the grace period.
        if persistent or wake_at > self._drain_deadline:
            return False
        remaining = wake_at - self._clock()
        if remaining > 0:
            await self._sleep(remaining)
        return True

    # -- accounting ---------------------------------------------------------------------------
    def _settle(self, lane: _Lane, unit: _Unit, failure: _Failure | None, *, log: bool = True,
                rejected: int = 0) -> None:
        if unit.settled:
            return
        unit.settled = True
        unit.data = None
        lane.units.discard(unit)
        group = unit.group
        if failure is None:
            rejected = min(rejected, unit.items)
            self._obs.sent(lane.signal, unit.items - rejected)
            if rejected:
                self._obs.send_failed(lane.signal, rejected)
        elif failure.keep:
            group.keep = True  # persisted for the next start: neither failed nor acknowledged
        else:
            self._obs.send_failed(lane.signal, unit.items)
            if log:
                self._log_drop(lane.signal, unit.items, failure)
        if failure is not None and group.error is None:
            group.error = failure.error
        group.remaining -= 1
        if group.remaining == 0:
            self._finish(lane, group.requests, group.error, release=True, keep=group.keep)

    def _finish(self, lane: _Lane, reqs: list[_Request], error: BaseException | None, *, release: bool,
                keep: bool = False) -> None:
        """Free the requests' queue room (a persistent queue: acknowledge them, unless
        ``keep``) and resolve their ``wait_for_result`` futures."""
        q = lane.queue
        store = lane.store
        for r in reqs:
            if release:
                if store is not None and r.seq is not None:
                    if not keep:
                        store.ack(r.seq, r.size, r.items)
                elif q is not None:
                    q.release(r.size)
            r.data = None
            f = r.future
            if f is not None and not f.done():
                if error is None:
                    f.set_result(None)
                else:
                    f.set_exception(as_consumer_error(error))

    def _drop_leftovers(self, lane: _Lane) -> None:
        """After the drain deadline: count everything not delivered as failed, log once.

        A persistent lane drops nothing: what is left stays unacknowledged on disk."""
        if lane.persistent:
            kept = _Failure("shutdown", ShutdownError("the request was left in the persistent queue for the "
                                                      "next start"), keep=True)
            for unit in list(lane.units):
                self._settle(lane, unit, kept, log=False)
            if lane.pending:
                self._finish(lane, list(lane.pending), kept.error, release=True, keep=True)
                lane.pending.clear()
            return
        failure = _Failure("shutdown", ShutdownError(f"exporter {self._id} stopped before the data was sent"))
        dropped = 0
        for unit in list(lane.units):
            dropped += unit.items
            self._settle(lane, unit, failure, log=False)
        waiting: list[_Request] = []
        if lane.pending:
            waiting.extend(lane.pending)
            self._finish(lane, list(lane.pending), failure.error, release=True)
            lane.pending.clear()
        if lane.queue is not None:
            queued = lane.queue.drain()
            self._finish(lane, queued, failure.error, release=False)
            waiting.extend(queued)
        waiting_items = sum(r.items for r in waiting)
        if waiting_items:
            self._obs.send_failed(lane.signal, waiting_items)
        dropped += waiting_items
        if dropped:
            self._log_drop(lane.signal, dropped, _Failure(
                "shutdown, still queued or in flight at the end of the shutdown grace period", failure.error))

    def _log_drop(self, signal: Signal, items: int, failure: _Failure) -> None:
        self._log.error("Exporting failed. Dropping %d %s (%s): %s.", items, signal.item_name, failure.reason,
                        describe_error(failure.error),
                        extra={"signal": signal.value, "dropped_items": items, "reason": failure.reason})


def _size_reader(lane: _Lane) -> Callable[[], float]:
    return lambda: float(lane.size())
