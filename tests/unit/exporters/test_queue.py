"""BoundedQueue: sizer-bounded capacity held until release, blocking, closing, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from agent.errors import ShutdownError
from agent.exporters.helper import BoundedQueue


async def test_capacity_is_held_until_release() -> None:
    q: BoundedQueue[str] = BoundedQueue(5)
    assert q.try_put("a", 3)
    assert not q.try_put("b", 3)
    assert await q.get() == "a"
    assert q.size == 3 and len(q) == 0
    assert not q.try_put("b", 3)  # taken but not released: still counted
    q.release(3)
    assert q.try_put("b", 3) and q.size == 3


async def test_put_waits_for_room() -> None:
    q: BoundedQueue[int] = BoundedQueue(1)
    await q.put(1, 1)
    waiter = asyncio.create_task(q.put(2, 1))
    await asyncio.sleep(0)
    assert not waiter.done()
    assert await q.get() == 1
    q.release(1)
    await asyncio.wait_for(waiter, 1)
    assert await q.get() == 2


async def test_oversize_and_negative_entries_are_rejected() -> None:
    q: BoundedQueue[int] = BoundedQueue(2)
    with pytest.raises(ValueError):
        q.try_put(1, 3)
    with pytest.raises(ValueError):
        await q.put(1, -1)
    with pytest.raises(ValueError):
        BoundedQueue(0)


async def test_close_wakes_producers_and_consumers() -> None:
    q: BoundedQueue[int] = BoundedQueue(1)
    await q.put(1, 1)
    producer = asyncio.create_task(q.put(2, 1))
    await asyncio.sleep(0)
    q.close()
    with pytest.raises(ShutdownError):
        await producer
    with pytest.raises(ShutdownError):
        q.try_put(3, 1)
    assert await q.get() == 1  # queued entries are still delivered
    assert await q.get() is None
    consumer = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert consumer.done() and consumer.result() is None


async def test_waiting_consumer_is_woken_by_close() -> None:
    q: BoundedQueue[int] = BoundedQueue(1)
    consumer = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.close()
    assert await asyncio.wait_for(consumer, 1) is None


async def test_cancelled_get_loses_nothing() -> None:
    q: BoundedQueue[int] = BoundedQueue(3)
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.try_put(7, 1)  # wakes `first`...
    first.cancel()  # ...which is cancelled before it runs: the wake-up passes to `second`
    assert await asyncio.wait_for(second, 1) == 7
    assert first.cancelled()


async def test_drain_returns_waiting_entries_and_frees_their_room() -> None:
    q: BoundedQueue[int] = BoundedQueue(10)
    for i in range(3):
        q.try_put(i, 2)
    assert await q.get() == 0
    assert q.drain() == [1, 2]
    assert q.size == 2  # the taken entry still holds its room
    assert q.get_nowait() is None
