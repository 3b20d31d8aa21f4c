"""Factory and behaviour of the ``forward`` connector (the collector's).

It joins pipelines of one signal: for instance two pipelines with different
processors feeding one common exporting pipeline. It never copies data; the
graph's fan-out decides about clones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agent.component import Capabilities, Factory, Host, Kind, Settings, Signal, Stability
from agent.consumer import consume_fn
from agent.pdata import Logs, Metrics, Traces

__all__ = ["FACTORY", "Config", "Forward"]


@dataclass(frozen=True)
class Config:
    """The forward connector has no options."""


class Forward:
    def __init__(self, consumers: Mapping[Signal, object]) -> None:
        self._next = {sig: consume_fn(c, sig) for sig, c in consumers.items()}

    def capabilities(self) -> Capabilities:
        return Capabilities(mutates_data=False)

    async def consume_traces(self, td: Traces) -> None:
        await self._next[Signal.TRACES](td)

    async def consume_metrics(self, md: Metrics) -> None:
        await self._next[Signal.METRICS](md)

    async def consume_logs(self, ld: Logs) -> None:
        await self._next[Signal.LOGS](ld)

    async def start(self, host: Host) -> None:
        return None

    async def shutdown(self) -> None:
        return None


def create(settings: Settings, config: Config, consumers: Mapping[Signal, object]) -> Forward:
    return Forward(consumers)


FACTORY = Factory(
    type="forward", kind=Kind.CONNECTOR, config_class=Config, create=create,
    connects=frozenset((s, s) for s in Signal), stability=Stability.BETA,
    description="forwards data between pipelines of the same signal",
)
