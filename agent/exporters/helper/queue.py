"""A bounded asyncio FIFO whose capacity is measured by a sizer, not by entry count.

:class:`BoundedQueue` is the memory behind ``sending_queue``. Each entry is put
with its size (1 per request, its item count, or its byte size) and the queue
refuses, or makes the producer wait, when ``size + new > capacity``.

Semantics, in the style of trio's channel docs:

* **Capacity covers work in progress.** Taking an entry with :meth:`get` does
  not free its room; the consumer calls :meth:`release` once the entry is
  finished (sent or dropped). ``size`` therefore counts queued *and* in-flight
  entries, like the collector's memory queue, so memory stays bounded while a
  slow backend holds many requests.
* **Blocking.** :meth:`try_put` never blocks; it returns False when full.
  :meth:`put` waits for room. Waiting producers are woken on every release and
  re-check; among several waiting producers the order is not strictly FIFO.
* **Closing.** After :meth:`close`, puts raise :class:`~agent.errors.ShutdownError`
  (waiting producers too); consumers still get every queued entry, then
  ``None``. :meth:`drain` removes what is left, for drop accounting.
* **Cancellation.** A cancelled :meth:`get` takes nothing: an entry it was
  woken for stays queued and the next consumer is woken instead. A cancelled
  :meth:`put` adds nothing.
* **Not thread-safe.** Use it from the event loop that runs its users.

Statistics: ``size`` (used capacity), ``capacity``, ``len(queue)`` (entries
waiting to be taken), ``closed``.
"""

from __future__ import annotations

import abc
import asyncio
from collections import deque
from typing import Generic, TypeVar

from agent.errors import ShutdownError

__all__ = ["BoundedQueue", "SizedWaitQueue"]

T = TypeVar("T")


class SizedWaitQueue(abc.ABC):
    """What the sizer-bounded queues share: capacity accounting and waiting producers and consumers.

    ``size`` is the capacity in use, in the sizer's unit; subclasses add to it when
    they accept an entry and take from it (then :meth:`_wake_putters`) when one is
    finished. ``len(queue)`` must be the number of entries waiting to be taken.

    Args:
        capacity: the largest total size held, in the sizer's unit (> 0).
    """

    __slots__ = ("_capacity", "_closed", "_getters", "_putters", "_size")

    #: The :class:`~agent.errors.ShutdownError` text of a put on a closed queue.
    _closed_message = "the sending queue is closed"

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._capacity = capacity
        self._size = 0
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of entries held."""

    # -- statistics ------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def size(self) -> int:
        """Capacity in use: entries waiting plus entries taken but not yet finished (released/acknowledged)."""
        return self._size

    @property
    def closed(self) -> bool:
        return self._closed

    # -- producers --------------------------------------------------------------------
    def _check_size(self, size: int) -> None:
        if size < 0 or size > self._capacity:
            raise ValueError(f"entry size {size} outside [0, capacity {self._capacity}]")

    async def _wait_for_room(self, size: int) -> None:
        """Wait until ``size`` more fits (woken on every release and re-checked).

        Raises:
            ShutdownError: the queue becomes closed while waiting.
        """
        loop = asyncio.get_running_loop()
        while self._size + size > self._capacity:
            fut: asyncio.Future[None] = loop.create_future()
            self._putters.append(fut)
            try:
                await fut
            finally:
                if not fut.done():
                    fut.cancel()
                try:
                    self._putters.remove(fut)
                except ValueError:
                    pass
            if self._closed:
                raise ShutdownError(self._closed_message)

    def _wake_putters(self) -> None:
        """Wake every waiting producer; each re-checks whether its entry fits now."""
        for fut in self._putters:
            if not fut.done():
                fut.set_result(None)

    # -- consumers --------------------------------------------------------------------
    async def _wait_for_entry(self) -> None:
        """Wait to be woken for an entry (or the close).

        A cancelled wait passes its wake-up on to the next consumer if entries wait.
        """
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._getters.append(fut)
        try:
            await fut
        except BaseException:
            fut.cancel()
            try:
                self._getters.remove(fut)
            except ValueError:
                pass
            # We were woken for an entry but will not take it: pass the wake-up on.
            if len(self):
                self._wake(self._getters)
            raise

    # -- lifecycle --------------------------------------------------------------------
    def close(self) -> None:
        """Refuse new entries; wake every waiting producer (ShutdownError) and consumer."""
        self._closed = True
        for fut in (*self._putters, *self._getters):
            if not fut.done():
                fut.set_result(None)

    @staticmethod
    def _wake(waiters: deque[asyncio.Future[None]], n: int = 1) -> None:
        """Wake the ``n`` oldest waiters still waiting."""
        while waiters and n > 0:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                n -= 1


class BoundedQueue(SizedWaitQueue, Generic[T]):
    """FIFO of entries, bounded by the sum of their sizes (see the module docstring).

    Args:
        capacity: the largest total size held, in the sizer's unit (> 0).
    """

    __slots__ = ("_items",)

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self._items: deque[tuple[T, int]] = deque()

    def __len__(self) -> int:
        """Entries waiting to be taken."""
        return len(self._items)

    # -- producers --------------------------------------------------------------------
    def try_put(self, item: T, size: int) -> bool:
        """Add ``item`` if it fits now.

        Returns:
            False when the queue is full (nothing added).

        Raises:
            ShutdownError: the queue is closed.
            ValueError: ``size`` is negative or larger than the whole capacity.
        """
        self._check(size)
        if self._size + size > self._capacity:
            return False
        self._append(item, size)
        return True

    async def put(self, item: T, size: int) -> None:
        """Add ``item``, waiting for room.

        Raises:
            ShutdownError: the queue is or becomes closed (nothing added).
            ValueError: ``size`` is negative or larger than the whole capacity.
        """
        self._check(size)
        if self._size + size > self._capacity:
            await self._wait_for_room(size)
        self._append(item, size)

    def _check(self, size: int) -> None:
        if self._closed:
            raise ShutdownError(self._closed_message)
        self._check_size(size)

    def _append(self, item: T, size: int) -> None:
        self._items.append((item, size))
        self._size += size
        self._wake(self._getters)

    # -- consumers --------------------------------------------------------------------
    async def get(self) -> T | None:
        """Take the oldest entry, waiting for one.

        Returns:
            The entry, or None once the queue is closed and empty.
        """
        while not self._items:
            if self._closed:
                return None
            await self._wait_for_entry()
        return self._items.popleft()[0]

    def get_nowait(self) -> T | None:
        """Take the oldest entry if there is one, else None (never waits)."""
        return self._items.popleft()[0] if self._items else None

    def release(self, size: int) -> None:
        """Free the room of a finished entry and wake waiting producers."""
        self._size = max(0, self._size - size)
        self._wake_putters()

    # -- lifecycle --------------------------------------------------------------------
    def drain(self) -> list[T]:
        """Remove and return every waiting entry; their room is freed too."""
        out = [item for item, _ in self._items]
        self._size = max(0, self._size - sum(size for _, size in self._items))
        self._items.clear()
        return out
