"""The ``batch`` processor: buffers items and sends them on in larger requests.

Role
    Groups the small requests of instrumented apps into requests of about
    ``send_batch_size`` items (spans, metric points or log records) so the
    exporters send fewer, better-compressed requests. Items are never copied
    to be grouped: :meth:`agent.pdata.PData.merge` concatenates wire bytes
    (concatenated OTLP requests are a valid request). Only the cut needed to
    respect ``send_batch_max_size`` copies items (:func:`split_head`).

When a batch is sent
    * **Size:** as soon as the buffer holds ``send_batch_size`` items. With
      ``send_batch_max_size`` set, batches of at most that many items are sent
      while the buffer holds ``send_batch_size`` or more; the remainder waits.
    * **Age:** when the oldest buffered item has waited ``timeout``. This bounds
      every item's wait by ``timeout`` (plus the time the sender spends on the
      batch before it). The collector instead restarts a fixed timer after every
      send; both bound the wait, ours also sends nothing while idle.
    * **Shutdown:** :meth:`BatchProcessor.shutdown` sends everything still
      buffered before it returns.
    * **No buffering** when ``timeout`` or ``send_batch_size`` is 0 (the
      collector's semantics: "data will be sent immediately, subject only to
      send_batch_max_size"): each request is forwarded in the caller's task,
      split by ``send_batch_max_size``, and the next consumer's errors reach
      the caller. No timer task runs in this mode.

Acknowledgement and errors
    ``consume_*`` returns once the data is buffered: the caller (ultimately the
    client) is told OK before the batch is exported, as in the collector. An
    error of the next consumer on a buffered batch therefore cannot reach the
    client: it is logged once per batch (counts only, no payload) and the
    batch's items are counted in ``otelcol_processor_dropped_*``. Durability
    lives in the exporters' ``sending_queue`` (bounded, retried, optionally
    persistent), not here: put ``batch`` in front of an exporter with a queue
    and keep the queue's consumers busy, or use no ``batch`` at all and rely on
    the queue's own batching.

Backpressure and memory bound
    The buffer holds at most about ``BUFFER_LIMIT_FACTOR × max(send_batch_size,
    send_batch_max_size)`` items (32768 with the defaults). It only grows past
    one batch when the next consumer is slower than the producers, because a
    single sender task exports one batch at a time. A ``consume`` call that
    finds the buffer at or over that limit does not add to it: it first takes
    the oldest batch and exports it itself, awaiting the next consumer in the
    caller's task (one such inline export at a time; other callers queue behind
    it in FIFO order). So producers slow down to the pace of the next consumer,
    and memory stays bounded by the limit plus one request plus two batches in
    flight (the sender's and the inline one).

    If that inline export fails with a retryable error (the next consumer is
    refusing, e.g. a full sending queue), the caller's own data is refused with
    a retryable :class:`~agent.errors.ConsumerError` (a
    :class:`~agent.errors.ThrottleError` carrying the next consumer's retry
    hint when it has one), counted in ``otelcol_processor_refused_*``: the
    client retries instead of the processor dropping more data. The failed
    batch itself, already acknowledged to its senders, is counted as dropped.

Concurrency
    Everything runs on the event loop. Taking items off the buffer happens
    without an ``await``, so the timer task and concurrent callers can never
    send the same item twice or lose one; only the awaits on the next consumer
    interleave. Once shutdown has begun, ``consume`` forwards straight to the
    next consumer (split by ``send_batch_max_size``) and its errors reach the
    caller, so data arriving late is never stranded in the buffer.

Self-metrics
    ``otelcol_processor_{incoming,outgoing}_items`` (outgoing counts items
    handed to the next consumer, whatever the outcome),
    ``otelcol_processor_dropped_*``, ``otelcol_processor_refused_*``,
    ``otelcol_processor_batch_batch_send_size`` (successful sends),
    ``otelcol_processor_batch_batch_size_trigger_send`` and
    ``otelcol_processor_batch_timeout_trigger_send`` (shutdown flushes count as
    timeout sends, as in the collector).
"""

from __future__ import annotations

import asyncio
import collections
import enum
from typing import Final

from agent.component import Host, Settings, Signal
from agent.errors import ConsumerError, ThrottleError, is_permanent, retry_after_of
from agent.pdata import PData, new_for
from agent.processors.base import ProcessorBase
from agent.processors.batch.config import Config
from agent.processors.batch.split import split_head

__all__ = ["BUFFER_LIMIT_FACTOR", "BatchProcessor"]

#: The buffer holds at most this many times max(send_batch_size, send_batch_max_size) items.
BUFFER_LIMIT_FACTOR: Final = 4


class _Trigger(enum.Enum):
    SIZE = "size"
    TIMEOUT = "timeout"


class BatchProcessor(ProcessorBase):
    """Buffers items of one signal and sends them on by size or age.

    Args:
        settings: the component's settings (id, telemetry, logger, pipeline).
        config: the decoded ``processors.batch`` config.
        signal: the signal of the pipeline.
        next_consumer: the consumer batches are sent to.
    """

    mutates_data = False

    def __init__(self, settings: Settings, config: Config, signal: Signal, next_consumer: object) -> None:
        super().__init__(settings, signal, next_consumer)
        self._cls = new_for(signal)
        self._size = config.send_batch_size
        self._max = config.send_batch_max_size
        self._timeout = config.timeout
        self._passthrough = config.passthrough
        self._limit = BUFFER_LIMIT_FACTOR * max(self._size, self._max)
        self._buf: collections.deque[tuple[PData, float]] = collections.deque()
        self._buf_items = 0
        self._wake = asyncio.Event()
        self._drain_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        pid = str(settings.id)
        tel = settings.telemetry
        self._send_size = tel.batch_send_size.labels(pid)
        self._triggers = {
            _Trigger.SIZE: tel.batch_size_trigger.labels(pid),
            _Trigger.TIMEOUT: tel.batch_timeout_trigger.labels(pid),
        }
        self._items_word = signal.item_name.replace("_", " ")

    # -- introspection -------------------------------------------------------
    @property
    def buffered_items(self) -> int:
        """Items currently waiting in the buffer."""
        return self._buf_items

    @property
    def buffer_limit(self) -> int:
        """Item count at which ``consume`` starts exporting inline (0 when not buffering)."""
        return 0 if self._passthrough else self._limit

    # -- lifecycle -----------------------------------------------------------
    async def start(self, host: Host) -> None:
        """Start the sender task (none when not buffering). Before ``start``, buffered
        data only leaves through the inline path or ``shutdown``."""
        if self._passthrough or self._task is not None or self._closing:
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"processor {self.id} ({self.pipeline or self.signal.value}) batch sender")

    async def shutdown(self) -> None:
        """Stop the sender task and send everything still buffered.

        Returns once every buffered item has been handed to the next consumer;
        failures are counted as dropped. A batch being sent is finished, not
        abandoned. If this coroutine is cancelled, the sender task is cancelled
        too and the rest of the buffer is counted as dropped. Safe to call twice
        and without ``start``.
        """
        if self._closing:
            return
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        try:
            if task is not None:
                try:
                    await task
                except asyncio.CancelledError:
                    task.cancel()
                    raise
                except Exception:
                    self._logger.exception("Batch sender of processor %s failed.", self.id)
            while self._buf:
                await self._export(self._take(), _Trigger.TIMEOUT)
        except asyncio.CancelledError:
            if self._buf_items:
                self._obs.dropped(self.signal, self._buf_items)
                self._logger.error("Shutdown of processor %s was cancelled: %d buffered %s dropped.",
                                   self.id, self._buf_items, self._items_word)
                self._buf.clear()
                self._buf_items = 0
            raise

    # -- data path -----------------------------------------------------------
    async def _consume(self, data: PData) -> None:
        n = data.item_count
        self._obs.incoming(self.signal, n)
        if n == 0:
            return
        if self._passthrough or self._closing:
            await self._forward(data)
            return
        while self._buf_items >= self._limit and not self._closing:
            async with self._drain_lock:
                if self._buf_items < self._limit or self._closing:
                    break
                err = await self._export(self._take(), _Trigger.SIZE)
                if err is not None and not is_permanent(err):
                    self._obs.refused(self.signal, n)
                    raise _refusal(self, err) from err
        if self._closing:
            await self._forward(data)
            return
        self._append(data, n)

    def _append(self, data: PData, n: int) -> None:
        """Buffer ``data`` (cut to ``send_batch_max_size`` pieces) and wake the sender if needed."""
        pieces = data.split(self._max) if self._max and n > self._max else [data]
        now = asyncio.get_running_loop().time()
        was_empty = not self._buf
        for piece in pieces:
            self._buf.append((piece, now))
        self._buf_items += n
        if was_empty or self._buf_items >= self._size:
            self._wake.set()

    def _take(self) -> PData:
        """Remove and merge the oldest items: at most ``send_batch_max_size``, or all when 0.

        Never awaits, so no other task can see the buffer half-taken.
        """
        buf = self._buf
        if not self._max:
            items = [d for d, _ in buf]
            buf.clear()
            self._buf_items = 0
            return self._cls.merge(items)
        room = self._max
        taken: list[PData] = []
        while buf and room:
            data, ts = buf[0]
            count = data.item_count
            if count <= room:
                buf.popleft()
                taken.append(data)
                room -= count
            else:
                head, tail = split_head(data, room)
                buf[0] = (tail, ts)
                taken.append(head)
                room = 0
        self._buf_items -= self._max - room
        return self._cls.merge(taken)

    async def _export(self, batch: PData, trigger: _Trigger) -> Exception | None:
        """Hand one batch to the next consumer; returns its error (already counted and logged)."""
        n = batch.item_count
        self._obs.outgoing(self.signal, n)
        try:
            await self._next(batch)
        except asyncio.CancelledError:
            self._obs.dropped(self.signal, n)
            raise
        except Exception as err:
            self._obs.dropped(self.signal, n)
            self._logger.warning(
                "Processor %s (pipeline %s) dropped a batch of %d %s: the next consumer failed: %s: %s",
                self.id, self.pipeline or self.signal.value, n, self._items_word, type(err).__name__, err)
            return err
        self._send_size.observe(n)
        self._triggers[trigger].inc()
        return None

    async def _forward(self, data: PData) -> None:
        """Send ``data`` now, in pieces of at most ``send_batch_max_size``; errors reach the caller."""
        for piece in data.split(self._max) if self._max else [data]:
            n = piece.item_count
            self._obs.outgoing(self.signal, n)
            await self._next(piece)
            self._send_size.observe(n)
            self._triggers[_Trigger.SIZE].inc()

    async def _run(self) -> None:
        """The sender task: sends by size as soon as possible, by age at the deadline."""
        loop = asyncio.get_running_loop()
        buf = self._buf
        while not self._closing:
            if not buf:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._buf_items >= self._size:
                await self._export(self._take(), _Trigger.SIZE)
                continue
            deadline = buf[0][1] + self._timeout
            if loop.time() >= deadline:
                await self._export(self._take(), _Trigger.TIMEOUT)
                continue
            self._wake.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._wake.wait()
            except TimeoutError:
                pass


def _refusal(proc: BatchProcessor, err: Exception) -> ConsumerError:
    """The retryable error a caller gets when the inline export made no room."""
    msg = (f"processor {proc.id}: buffer full and the next consumer is refusing data "
           f"({type(err).__name__}: {err}); retry later")
    hint = retry_after_of(err)
    return ThrottleError(msg, retry_after=hint) if hint > 0 else ConsumerError(msg)
