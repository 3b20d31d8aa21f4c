"""Doubles and helpers for exporter tests: a fake backoff clock, a scripted backend, a host without
extensions, and starting an exporter with a seeded rng."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import pytest

from agent.component import Settings, Signal
from agent.exporters.helper import ExporterHelper, QueueConfig, RetryConfig
from agent.pdata import PData
from agent.telemetry.metrics import SelfMetrics
from agent.testing import FakeClock


@dataclass(frozen=True)
class HelperCfg:
    """A minimal HelperConfig."""

    timeout: float = 0.0
    sending_queue: QueueConfig | None = None
    retry_on_failure: RetryConfig | None = None


class Backend:
    """A push coroutine: raises the scripted errors in order, then ``always`` (if set), else accepts.

    ``gate``: when set to an unset Event, every call waits for it first (a hanging backend).
    """

    def __init__(self, errors: list[BaseException] | None = None, *, always: BaseException | None = None,
                 gate: asyncio.Event | None = None) -> None:
        self.errors = list(errors or [])
        self.always = always
        self.gate = gate
        self.calls = 0
        self.received: list[tuple[Signal, PData]] = []
        self.changed = asyncio.Event()

    async def push(self, signal: Signal, data: PData) -> None:
        self.calls += 1
        self.changed.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.errors:
            raise self.errors.pop(0)
        if self.always is not None:
            raise self.always
        self.received.append((signal, data))
        self.changed.set()

    def count(self, signal: Signal = Signal.TRACES) -> int:
        return sum(d.item_count for s, d in self.received if s is signal)

    async def wait(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async def loop() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(loop(), timeout)


def metric(telemetry: SelfMetrics, name: str, **labels: str) -> float:
    return telemetry.value(name, labels)


class NoHost:
    """A host with no extensions that is always ready."""

    def get_extension(self, cid: object) -> None:
        return None

    def is_ready(self) -> bool:
        return True


class _Exporter(Protocol):
    async def start(self, host: Any) -> None: ...


E = TypeVar("E", bound=_Exporter)


async def start_exporter(exporter_class: Callable[..., E], settings: Settings, config: Any,
                         signals: Collection[Signal], *, seed: int, clock: FakeClock | None = None) -> E:
    """An exporter with ``random.Random(seed)`` as its rng (and ``clock``'s time and sleep, when given),
    started without a host."""
    kw: dict[str, Any] = {"rng": random.Random(seed)}
    if clock is not None:
        kw.update(clock=clock, sleep=clock.sleep)
    exp = exporter_class(settings, config, signals, **kw)
    await exp.start(None)
    return exp


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_helper(make_settings: Callable[..., Settings], clock: FakeClock) -> Callable[..., ExporterHelper]:
    def make(backend: Backend, *, queue: QueueConfig | None = None, retry: RetryConfig | None = None,
             timeout: float = 0.0, grace: float = 5.0, signals: frozenset[Signal] = frozenset(Signal),
             fake_time: bool = True, **kw: Any) -> ExporterHelper:
        settings = make_settings("otlp/x", shutdown_grace=grace)
        time_kw: dict[str, Any] = {"clock": clock, "sleep": clock.sleep} if fake_time else {}
        return ExporterHelper(settings, HelperCfg(timeout, queue, retry), signals, backend.push,
                              rng=random.Random(7), **time_kw, **kw)
    return make
