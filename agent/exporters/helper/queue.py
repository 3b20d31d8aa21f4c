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

import asyncio
from collections import deque
from typing import Generic, TypeVar

from agent.errors import ShutdownError

__all__ = ["BoundedQueue"]

T = TypeVar("T")


class BoundedQueue(Generic[T]):
    """FIFO of entries, bounded by the sum of their sizes (see the module docstring).

    Args:
        capacity: the largest total size held, in the sizer's unit (> 0).
    """

    __slots__ = ("_capacity", "_closed", "_getters", "_items", "_putters", "_size")

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._capacity = capacity
        self._size = 0
        self._items: deque[tuple[T, int]] = deque()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    # -- statistics ------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def size(self) -> int:
        """Capacity in use: entries waiting plus entries taken but not yet released."""
        return self._size

    @property
    def closed(self) -> bool:
        return self._closed

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
            self._check(size)
        self._append(item, size)

    def _check(self, size: int) -> None:
        if self._closed:
            raise ShutdownError("the sending queue is closed")
        if size < 0 or size > self._capacity:
            raise ValueError(f"entry size {size} outside [0, capacity {self._capacity}]")

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
        loop = asyncio.get_running_loop()
        while not self._items:
            if self._closed:
                return None
            fut: asyncio.Future[None] = loop.create_future()
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
                if self._items:
                    self._wake(self._getters)
                raise
        return self._items.popleft()[0]

    def get_nowait(self) -> T | None:
        """Take the oldest entry if there is one, else None (never waits)."""
        return self._items.popleft()[0] if self._items else None

    def release(self, size: int) -> None:
        """Free the room of a finished entry and wake waiting producers."""
        self._size = max(0, self._size - size)
        for fut in self._putters:
            if not fut.done():
                fut.set_result(None)

    # -- lifecycle --------------------------------------------------------------------
    def close(self) -> None:
        """Refuse new entries; wake every waiting producer (ShutdownError) and consumer."""
        self._closed = True
        for fut in (*self._putters, *self._getters):
            if not fut.done():
                fut.set_result(None)

    def drain(self) -> list[T]:
        """Remove and return every waiting entry; their room is freed too."""
        out = [item for item, _ in self._items]
        self._size = max(0, self._size - sum(size for _, size in self._items))
        self._items.clear()
        return out

    @staticmethod
    def _wake(waiters: deque[asyncio.Future[None]]) -> None:
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
