"""The persistent sending queue: ``sending_queue.storage`` in asyncio form.

:class:`PersistentQueue` keeps one exporter signal's queue in a
:class:`~agent.extensions.storage.StorageClient` (a ``file_storage`` segment
log) instead of memory. It replaces the in-memory
:class:`~agent.exporters.helper.queue.BoundedQueue` of that lane; the helper's
workers, batching and retries are unchanged.

Semantics, in the style of trio's channel docs:

* **Accepted means written.** :meth:`put` returns once the request's wire bytes
  are written to the log (handed to the OS; also fsynced with the extension's
  ``fsync``), so the receiver's OK survives a crash of the process. Concurrent
  puts share one write (group commit). Disk I/O runs in worker threads, never
  on the event loop.
* **Capacity.** ``queue_size`` in the sizer's unit (requests, items or bytes)
  bounds the data not yet acknowledged: waiting on disk *and* in flight. Data
  recovered at start counts too, and may exceed the capacity if it was lowered;
  new data is then refused until the backlog drains below it. Memory holds only
  requests being written, read for a waiting consumer, or in flight.
* **Acknowledged means removed.** :meth:`ack` is called once a request was sent
  or dropped for good (permanent error, retries exhausted): it is never
  delivered again, and its space is reclaimed when its segment is fully
  acknowledged. Anything taken but not acknowledged when the process stops,
  cleanly or not, is delivered again at the next start: at least once. The
  acknowledgement state is written in the background, but new requests are
  read from disk only while fewer than ``read_batch`` acknowledgements wait to
  be written, so a crash re-delivers at most the requests in flight plus
  ``read_batch`` already sent ones (``read_batch`` is ``num_consumers``, or 64
  requests with batching).
* **Refusals.** Full (and not blocking): :meth:`put` returns False. A write
  that fails (``ENOSPC``: disk full, or any other ``OSError``) raises
  :class:`StorageError`, a retryable :class:`~agent.errors.ThrottleError`;
  nothing of the request is kept and the process carries on.
* **Closing.** After :meth:`close`, puts raise :class:`~agent.errors.ShutdownError`
  and :meth:`get` returns None at once, even if records are left: they stay on
  disk for the next start. :meth:`aclose` then finishes pending writes,
  persists the acknowledgement state and closes the files.
* **Cancellation.** A cancelled :meth:`put` may still have been written (it is
  then delivered, at least once); a cancelled :meth:`get` loses nothing.
* **Not thread-safe.** Use it from the event loop that runs its users.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from agent.component import Signal
from agent.errors import ShutdownError, ThrottleError
from agent.exporters.helper.config import Sizer
from agent.exporters.helper.queue import SizedWaitQueue
from agent.extensions.storage import Record, Recovery, StorageClient
from agent.pdata import PData, new_for

__all__ = ["STORAGE_RETRY_AFTER", "PersistentQueue", "StorageError", "StoredEntry"]

#: The ``retry_after`` hint of a refusal caused by a failed write, in seconds.
STORAGE_RETRY_AFTER: Final = 1.0
#: Most records, and bytes, one group-committed write takes.
_WRITE_RECORDS: Final = 256
_WRITE_BYTES: Final = 8 << 20
#: Most bytes one read takes (at least one record).
_READ_BYTES: Final = 4 << 20
#: Pause after a failed read or state write before trying again.
_IO_RETRY: Final = 1.0
#: Longest wait, at close, for a write, read or state write in progress (a hung disk).
_CLOSE_WAIT: Final = 10.0
_REPORT_INTERVAL: Final = 10.0


class StorageError(ThrottleError):
    """The persistent queue could not write a request (disk full, I/O error): retry later."""


@dataclass(slots=True)
class StoredEntry:
    """A request read back from the log for a consumer."""

    seq: int
    data: PData
    size: int
    items: int
    waiter: asyncio.Future[None] | None


@dataclass(slots=True)
class _Write:
    payload: bytes
    items: int
    size: int
    waiter: asyncio.Future[None] | None
    done: asyncio.Future[None]


class PersistentQueue(SizedWaitQueue):
    """A sizer-bounded FIFO on a storage client (see the module docstring).

    Args:
        client: the storage client of this exporter and signal.
        signal: the signal every record must carry.
        sizer: the unit of ``capacity``.
        capacity: ``queue_size``.
        read_batch: most records read ahead for waiting consumers at once.
        greedy: read ``read_batch`` records even with one consumer waiting
            (the batcher takes many in a row).
        logger: for I/O problems, rate-limited.
        on_corrupted: called with the number of damaged records skipped.
    """

    _closed_message = "the persistent sending queue is closed"

    def __init__(self, client: StorageClient, signal: Signal, sizer: Sizer, capacity: int, *,
                 read_batch: int = 1, greedy: bool = False, logger: logging.Logger | None = None,
                 on_corrupted: Callable[[int], None] | None = None) -> None:
        super().__init__(capacity)
        self._client = client
        self._signal = signal
        self._cls = new_for(signal)
        self._sizer: Sizer = sizer
        self._read_batch = max(1, read_batch)
        self._greedy = greedy
        self._log = logger or logging.getLogger("otel_sidecar.persistent_queue")
        self._on_corrupted = on_corrupted
        #: Records written and not yet read back.
        self._unread = 0
        #: Records and items not acknowledged (on disk or in flight).
        self._records = 0
        self._items = 0
        self._buffer: deque[StoredEntry] = deque()
        self._writes: deque[_Write] = deque()
        self._waiters: dict[int, asyncio.Future[None]] = {}
        self._acks: list[int] = []
        #: Acknowledgements not persisted yet (queued or being written).
        self._unpersisted = 0
        #: The last state write failed (disk full...): reads no longer wait for it.
        self._commit_failing = False
        #: Set while a read may start (see :meth:`_may_read`).
        self._read_gate = asyncio.Event()
        self._read_gate.set()
        self._writer: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._committer: asyncio.Task[None] | None = None
        self._opened = False
        self._client_closed = False
        self._reported: dict[str, float] = {}

    # -- statistics ------------------------------------------------------------------------
    @property
    def records(self) -> int:
        """Requests not acknowledged yet."""
        return self._records

    @property
    def items(self) -> int:
        """Items of the requests not acknowledged yet."""
        return self._items

    def __len__(self) -> int:
        """Requests waiting to be taken."""
        return self._unread + len(self._buffer)

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> Recovery:
        """Open the log (in a thread) and take over what earlier runs left unacknowledged.

        Raises:
            OSError: the log cannot be opened (the caller fails its start).
        """
        rec = await asyncio.to_thread(self._client.open)
        self._opened = True
        self._unread = rec.records
        self._records = rec.records
        self._items = rec.items
        self._size = rec.records if self._sizer == "requests" else rec.items if self._sizer == "items" else rec.bytes
        if rec.corrupted and self._on_corrupted is not None:
            self._on_corrupted(rec.corrupted)
        return rec

    def close(self) -> None:
        """Stop handing out and accepting data; wake every waiter (see the module docstring)."""
        self._read_gate.set()
        super().close()

    async def aclose(self) -> None:
        """:meth:`close`, finish pending writes, persist the state, close the log. Idempotent.

        Waits at most 10 s in all for the disk operations in progress; if one hangs,
        the log is left open (the next start redelivers whatever it did not record)."""
        self.close()
        tasks = [t for t in (self._writer, self._reader, self._committer) if t is not None and not t.done()]
        stuck: set[asyncio.Task[None]] = set()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=_CLOSE_WAIT)
        left = [*self._waiters.values(), *(e.waiter for e in self._buffer if e.waiter is not None)]
        for fut in left:
            if not fut.done():
                fut.set_exception(ShutdownError("the request was left in the persistent queue for the next start"))
        self._waiters.clear()
        if stuck:
            self._log.error("Persistent queue disk operations did not finish within %gs at shutdown; leaving the "
                            "queue files as they are.", _CLOSE_WAIT, extra={"signal": self._signal.value})
            return
        if self._opened and not self._client_closed:
            self._client_closed = True
            if self._acks:
                acks, self._acks = self._acks, []
                try:
                    await asyncio.to_thread(self._client.ack, acks)
                except OSError as e:
                    self._report("state", "Could not persist acknowledgements at shutdown: %s.", e)
            await asyncio.to_thread(self._client.close)

    # -- producers -----------------------------------------------------------------------------
    def size_of(self, items: int, nbytes: int) -> int:
        """A request's size in the sizer's unit."""
        return 1 if self._sizer == "requests" else items if self._sizer == "items" else nbytes

    async def put(self, data: PData, size: int, *, block: bool = False,
                  waiter: asyncio.Future[None] | None = None) -> bool:
        """Write ``data`` (of ``size`` sizer units) to the log.

        Args:
            block: wait for room instead of returning False when full.
            waiter: resolved by the consumer once this request is finished.

        Returns:
            False when full and not blocking (nothing written).

        Raises:
            StorageError: the write failed (disk full or I/O error): retryable.
            ShutdownError: the queue is or becomes closed.
            ValueError: ``size`` is negative or larger than the whole capacity.
        """
        if self._closed or not self._opened:
            raise ShutdownError(self._closed_message if self._opened else
                                "the persistent sending queue is not open yet")
        self._check_size(size)
        if self._size + size > self._capacity:
            if not block:
                return False
            await self._wait_for_room(size)
        payload = data.to_bytes()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._size += size
        self._writes.append(_Write(payload, data.item_count, size, waiter, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="persistent queue writer")
        await done
        return True

    async def _write_loop(self) -> None:
        while self._writes:
            batch: list[_Write] = []
            nbytes = 0
            while self._writes and len(batch) < _WRITE_RECORDS and (not batch or nbytes < _WRITE_BYTES):
                w = self._writes.popleft()
                batch.append(w)
                nbytes += len(w.payload)
            entries = [(self._signal, w.items, w.payload) for w in batch]
            try:
                first = await asyncio.to_thread(self._client.append, entries)
            except Exception as e:  # OSError normally; anything else must not kill the writer either
                for w in batch:
                    self._size -= w.size
                    if not w.done.done():
                        w.done.set_exception(_storage_error(e))
                self._wake_putters()
                self._report("write", "Persistent queue write failed; refusing data: %s.", e)
                continue
            for i, w in enumerate(batch):
                if w.waiter is not None:
                    self._waiters[first + i] = w.waiter
                self._items += w.items
                if not w.done.done():
                    w.done.set_result(None)
            self._records += len(batch)
            self._unread += len(batch)
            self._wake(self._getters, len(batch))

    # -- consumers -----------------------------------------------------------------------------
    def get_nowait(self) -> StoredEntry | None:
        """The oldest entry already read from disk, else None (never waits)."""
        if self._closed or not self._buffer:
            return None
        return self._buffer.popleft()

    async def get(self) -> StoredEntry | None:
        """Take the oldest entry, reading it from disk, waiting for one if needed.

        Returns:
            The entry, or None once the queue is closed.
        """
        while True:
            if self._closed:
                return None
            if self._buffer:
                return self._buffer.popleft()
            if self._unread > 0:
                if not self._read_gate.is_set():
                    await self._read_gate.wait()  # bound the acknowledgements a crash could lose
                    continue
                if self._reader is None or self._reader.done():
                    want = self._read_batch if self._greedy else min(self._read_batch, 1 + len(self._getters))
                    self._reader = asyncio.create_task(self._read(want), name="persistent queue reader")
                await asyncio.shield(self._reader)
                continue
            await self._wait_for_entry()

    async def _read(self, want: int) -> None:
        try:
            records = await asyncio.to_thread(self._client.read, want, _READ_BYTES)
        except Exception as e:
            self._report("read", "Persistent queue read failed; retrying in 1s: %s.", e)
            await asyncio.sleep(_IO_RETRY)
            return
        if not records and self._unread > 0:
            self._log.error("Persistent queue expected %d more records on disk but found none.", self._unread)
            self._unread = 0
            return
        self._unread = max(0, self._unread - len(records))
        for r in records:
            self._admit(r)
        if self._buffer:
            self._wake(self._getters, len(self._buffer))

    def _admit(self, r: Record) -> None:
        size = self.size_of(r.items, len(r.payload))
        if r.signal is not self._signal:
            # An intact record of another signal: not deliverable on this lane (a moved directory).
            self._log.error("Persistent queue record of %s found in the %s queue; dropping it.",
                            r.signal.value, self._signal.value)
            if self._on_corrupted is not None:
                self._on_corrupted(1)
            self.ack(r.seq, size, r.items)
            return
        data = self._cls(raw=r.payload, count=r.items)
        self._buffer.append(StoredEntry(r.seq, data, size, r.items, self._waiters.pop(r.seq, None)))

    def ack(self, seq: int, size: int, items: int) -> None:
        """Acknowledge a finished entry (sent or dropped for good): free its room, remove it for good.

        The state is persisted in the background; never blocks.
        """
        self._size = max(0, self._size - size)
        self._records = max(0, self._records - 1)
        self._items = max(0, self._items - items)
        self._acks.append(seq)
        self._unpersisted += 1
        self._update_read_gate()
        self._wake_putters()
        if not self._client_closed and (self._committer is None or self._committer.done()):
            self._committer = asyncio.get_running_loop().create_task(self._commit_loop(),
                                                                     name="persistent queue committer")

    async def _commit_loop(self) -> None:
        dirty = 0
        while (self._acks or dirty) and not self._client_closed:
            acks, self._acks = self._acks, []
            try:
                await asyncio.to_thread(self._client.ack, acks)
            except Exception as e:
                # The client applied the acknowledgements in memory; only the state write failed.
                dirty += len(acks)
                self._commit_failing = True
                self._update_read_gate()
                self._report("state", "Could not persist acknowledgements (retrying): %s.", e)
                if self._closed:
                    return  # aclose writes the state once more
                await asyncio.sleep(_IO_RETRY)
                continue
            self._unpersisted = max(0, self._unpersisted - len(acks) - dirty)
            dirty = 0
            self._commit_failing = False
            self._update_read_gate()

    def _update_read_gate(self) -> None:
        """Reads wait while ``read_batch`` or more acknowledgements are not persisted yet.

        So a crash re-delivers at most that many already-sent requests besides those
        in flight. A failing state write (full disk) lifts the wait: progress, which
        frees space, matters more than duplicates then.
        """
        if self._closed or self._commit_failing or self._unpersisted < self._read_batch:
            self._read_gate.set()
        else:
            self._read_gate.clear()

    # -- helpers ---------------------------------------------------------------------------------
    def _report(self, what: str, msg: str, err: BaseException) -> None:
        now = time.monotonic()
        if now - self._reported.get(what, -math.inf) >= _REPORT_INTERVAL:
            self._reported[what] = now
            self._log.warning(msg, err, extra={"signal": self._signal.value})


def _storage_error(err: BaseException) -> StorageError:
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        text = "persistent sending queue storage is full (no space left on device)"
    elif isinstance(err, OSError):
        text = f"persistent sending queue cannot write: {err.strerror or err}"
    else:
        text = f"persistent sending queue cannot write: {type(err).__name__}: {err}"
    out = StorageError(text, retry_after=STORAGE_RETRY_AFTER)
    out.__cause__ = err
    return out
