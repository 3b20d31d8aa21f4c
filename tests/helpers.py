"""Async helpers shared by the unit and integration tests: run a test double for a block, wait for a condition."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Protocol, TypeVar


class Startable(Protocol):
    """A test double (backend, collector, Loki...) started and stopped on the event loop."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


D = TypeVar("D", bound=Startable)


@contextlib.asynccontextmanager
async def running(double: D) -> AsyncIterator[D]:
    """Start ``double`` for the block and stop it afterwards, also when the block fails."""
    await double.start()
    try:
        yield double
    finally:
        await double.stop()


async def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    """Poll ``check`` every 50 ms until it is true.

    Raises:
        AssertionError: ``check`` was still false after ``timeout`` seconds.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
