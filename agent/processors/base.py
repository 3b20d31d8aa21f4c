"""Plumbing shared by the processors: signal routing, self-metrics, next consumer.

A processor instance serves one signal (the collector creates one per
pipeline). :class:`ProcessorBase` exposes the three signal-named consume
methods so the instance satisfies the consumer protocols, checks that the
method called matches the signal the instance was built for, and hands the
data to :meth:`ProcessorBase._consume`, which subclasses implement.

:func:`processor_factory` builds the :class:`~agent.component.Factory` of a
processor type from its config and processor classes; each
``agent/processors/<type>/factory.py`` keeps its ``FACTORY`` (what the
registry imports) as one such call.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from agent.component import Capabilities, ComponentID, Factory, Host, Kind, Settings, Signal, Stability
from agent.consumer import capabilities_of, consume_fn
from agent.pdata import Logs, Metrics, PData, Traces
from agent.telemetry.metrics import ProcessorObs

__all__ = ["ProcessorBase", "processor_factory"]


class ProcessorBase(abc.ABC):
    """Base class of the processors in this package.

    Attributes:
        id: the processor's component id.
        signal: the signal this instance processes.
        pipeline: the id of the pipeline this instance belongs to ("" if unknown).
    """

    #: Whether the processor itself edits the data it is handed.
    mutates_data: bool = False

    def __init__(self, settings: Settings, signal: Signal, next_consumer: object) -> None:
        """Bind the next consumer and the self-metrics of this pipeline.

        Raises:
            TypeError: ``next_consumer`` does not consume ``signal``.
        """
        self.id: ComponentID = settings.id
        self.signal = signal
        self.pipeline = str(settings.extra.get("pipeline", ""))
        self._logger: logging.Logger = settings.logger
        self._next: Callable[[PData], Awaitable[None]] = consume_fn(next_consumer, signal)
        self._obs: ProcessorObs = settings.telemetry.processor(settings.id, self.pipeline)
        self._caps = Capabilities(mutates_data=self.mutates_data or capabilities_of(next_consumer).mutates_data)

    def capabilities(self) -> Capabilities:
        """Whether data handed to this processor may be edited, by it or further down the chain.

        A processor that does not edit (``batch``, ``memory_limiter``) passes
        the very object it was given to the next consumer, so it reports the
        next consumer's need: the pipeline's entry then tells the receiver's
        fan-out whether the pipeline needs a private copy (the collector ORs
        the capabilities of a pipeline's processors the same way).
        """
        return self._caps

    async def start(self, host: Host) -> None:  # noqa: B027 - optional hook
        """Start background work; the default has none."""

    async def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Stop background work; the default has none. Safe twice and without start."""

    async def consume_traces(self, td: Traces) -> None:
        """Process spans (only valid on an instance built for traces)."""
        self._check(Signal.TRACES)
        await self._consume(td)

    async def consume_metrics(self, md: Metrics) -> None:
        """Process metric points (only valid on an instance built for metrics)."""
        self._check(Signal.METRICS)
        await self._consume(md)

    async def consume_logs(self, ld: Logs) -> None:
        """Process log records (only valid on an instance built for logs)."""
        self._check(Signal.LOGS)
        await self._consume(ld)

    def _check(self, signal: Signal) -> None:
        if signal is not self.signal:
            raise TypeError(f"processor {self.id} was built for {self.signal.value}, not {signal.value}")

    @abc.abstractmethod
    async def _consume(self, data: PData) -> None:
        """Process ``data`` of :attr:`signal` and hand it on."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id}, signal={self.signal.value}, pipeline={self.pipeline!r})"


def processor_factory(type_name: str, config_class: type[Any], processor: type[ProcessorBase], *,
                      description: str, signals: frozenset[Signal] = frozenset(Signal),
                      stability: Stability = Stability.BETA, create: Callable[..., Any] | None = None) -> Factory:
    """The factory of a processor type.

    Args:
        type_name: the collector type name (``batch``, ``memory_limiter``...).
        config_class: the config dataclass of ``processors.<type_name>``.
        processor: the processor class; by default ``create(settings, config,
            signal, next_consumer)`` is ``processor(settings, config, signal,
            next_consumer)``, one instance per pipeline. Its ``mutates_data``
            is the factory's capability, so the two cannot disagree.
        description: one line for the component listing.
        signals: the signals the processor supports.
        stability: the component's stability level.
        create: replaces the plain constructor call (e.g. to share state
            between the instances of one id).
    """
    return Factory(
        type=type_name,
        kind=Kind.PROCESSOR,
        config_class=config_class,
        create=processor if create is None else create,
        signals=signals,
        capabilities=Capabilities(mutates_data=processor.mutates_data),
        stability=stability,
        description=description,
    )
