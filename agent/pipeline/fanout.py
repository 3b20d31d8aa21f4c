"""Fan-out of one signal to several consumers, cloning only for mutators.

Rules (the collector's ``fanoutconsumer``):

* one consumer: the data is passed through untouched;
* read-only consumers share one instance, flagged ``read_only``;
* each consumer that mutates gets its own clone, except that when no consumer
  is read-only the last mutator takes the original;
* every consumer is called even if an earlier one failed; the errors are
  combined: retryable if any is retryable (the client retries, which may
  duplicate data at consumers that succeeded: at-least-once, as the spec says).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from agent.component import Capabilities, Signal
from agent.consumer import capabilities_of, consume_fn
from agent.errors import ConsumerError, PermanentError
from agent.pdata import PData

__all__ = ["FanOut"]


class FanOut:
    """A consumer of one signal that forwards to ``consumers``."""

    def __init__(self, signal: Signal, consumers: Sequence[object], mutates: Sequence[bool] | None = None) -> None:
        """``mutates[i]`` overrides what ``consumers[i].capabilities()`` says (the
        graph passes whether any processor of a pipeline mutates)."""
        if not consumers:
            raise ValueError("fan-out needs at least one consumer")
        self.signal = signal
        self._readonly: list[Callable[[PData], Awaitable[None]]] = []
        self._mutating: list[Callable[[PData], Awaitable[None]]] = []
        for i, c in enumerate(consumers):
            fn = consume_fn(c, signal)
            mut = mutates[i] if mutates is not None else capabilities_of(c).mutates_data
            (self._mutating if mut else self._readonly).append(fn)
        self._single = consume_fn(consumers[0], signal) if len(consumers) == 1 else None
        setattr(self, "consume_" + signal.value, self.consume)

    def capabilities(self) -> Capabilities:
        return Capabilities(mutates_data=bool(self._mutating))

    async def consume(self, data: PData) -> None:
        if self._single is not None:
            await self._single(data)
            return
        errors: list[BaseException] = []
        calls: list[tuple[Callable[[PData], Awaitable[None]], PData]] = []
        for i, fn in enumerate(self._mutating):
            last = i == len(self._mutating) - 1
            calls.append((fn, data if last and not self._readonly else data.clone()))
        if self._readonly:
            data.read_only = True
            calls.extend((fn, data) for fn in self._readonly)
        for fn, d in calls:
            try:
                await fn(d)
            except ConsumerError as e:
                errors.append(e)
        if errors:
            if all(isinstance(e, PermanentError) for e in errors):
                raise errors[0]
            raise next(e for e in errors if not isinstance(e, PermanentError))
