"""Helpers for processor tests: item ids, makers per signal, controllable consumers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from agent.component import Signal
from agent.pdata import PData
from agent.pdata.attributes import value_to_python
from agent.testing import SinkConsumer, make_logs, make_metrics, make_traces

MAKERS: dict[Signal, Callable[..., PData]] = {
    Signal.TRACES: make_traces,
    Signal.METRICS: make_metrics,
    Signal.LOGS: make_logs,
}


def items_of(data: PData) -> list[Any]:
    """Every item (span, log record, metric data point) of ``data``, in order."""
    out: list[Any] = []
    rfield, sfield, ifield = data.fields
    for res in getattr(data.proto, rfield):
        for scope in getattr(res, sfield):
            for item in getattr(scope, ifield):
                if data.signal is Signal.METRICS:
                    which = item.WhichOneof("data")
                    if which is not None:
                        out.extend(getattr(item, which).data_points)
                else:
                    out.append(item)
    return out


def attrs_of(item: Any) -> dict[str, Any]:
    return {kv.key: value_to_python(kv.value) for kv in item.attributes}


def ids_of(batches: list[PData]) -> list[tuple[int, int]]:
    """``(batch_index, item_index)`` of every item, from the testing makers' attributes."""
    out = []
    for b in batches:
        for item in items_of(b):
            a = attrs_of(item)
            out.append((a["batch_index"], a["item_index"]))
    return out


class GateConsumer(SinkConsumer):
    """A sink whose calls wait until :meth:`open` (counts calls in flight)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls = 0

    def open(self) -> None:
        self.gate.set()

    async def _take(self, signal: Signal, data: PData) -> None:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.gate.wait()
        finally:
            self.in_flight -= 1
        await super()._take(signal, data)


class FlakyConsumer(SinkConsumer):
    """Raises ``errors.pop(0)`` while errors remain, then stores like a sink."""

    def __init__(self, errors: list[BaseException]) -> None:
        super().__init__()
        self.errors = list(errors)
        self.calls = 0

    async def _take(self, signal: Signal, data: PData) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        await super()._take(signal, data)
