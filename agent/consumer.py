"""Signal-named asynchronous consumer interfaces.

Contract (the collector's, in asyncio form):

* ``await consume_traces(td)`` returns once the data is *accepted*: queued by an
  exporter's sending queue, buffered by a batch processor, or delivered when
  there is no queue. Raising means "not accepted"; the error says whether the
  sender may retry (``agent.errors``).
* The consumer owns the data it is handed for as long as it keeps it. Data
  flagged ``read_only`` is shared with other consumers and must not be edited;
  a consumer that edits declares ``Capabilities(mutates_data=True)`` and the
  fan-out hands it a private copy.
* Consumers never block the event loop: slow work is awaited, not spun.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from agent.component import Capabilities, Signal
from agent.pdata import Logs, Metrics, PData, Traces

__all__ = [
    "ConsumeFn",
    "Consumer",
    "LogsConsumer",
    "MetricsConsumer",
    "TracesConsumer",
    "consume_fn",
    "method_name",
]


@runtime_checkable
class TracesConsumer(Protocol):
    async def consume_traces(self, td: Traces) -> None: ...


@runtime_checkable
class MetricsConsumer(Protocol):
    async def consume_metrics(self, md: Metrics) -> None: ...


@runtime_checkable
class LogsConsumer(Protocol):
    async def consume_logs(self, ld: Logs) -> None: ...


Consumer = TracesConsumer | MetricsConsumer | LogsConsumer
ConsumeFn = Callable[[Any], Awaitable[None]]


def method_name(signal: Signal) -> str:
    """``consume_traces``, ``consume_metrics`` or ``consume_logs``."""
    return "consume_" + signal.value


def consume_fn(consumer: object, signal: Signal) -> Callable[[PData], Awaitable[None]]:
    """The bound ``consume_<signal>`` method of ``consumer``.

    Raises:
        TypeError: the consumer does not take that signal.
    """
    fn = getattr(consumer, method_name(signal), None)
    if fn is None:
        raise TypeError(f"{type(consumer).__name__} does not consume {signal.value}")
    return fn  # type: ignore[no-any-return]


def capabilities_of(consumer: object) -> Capabilities:
    caps = getattr(consumer, "capabilities", None)
    if callable(caps):
        caps = caps()
    return caps if isinstance(caps, Capabilities) else Capabilities()
