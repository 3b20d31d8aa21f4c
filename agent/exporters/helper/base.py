"""A base class that turns a ``push`` coroutine into a complete exporter component.

:class:`BaseExporter` owns an :class:`~agent.exporters.helper.ExporterHelper`
and provides what the pipeline graph needs from an exporter: the three
``consume_<signal>`` methods (delegating to the helper), ``capabilities()``
(read-only), ``start(host)`` and ``shutdown()``. A concrete exporter implements
:meth:`BaseExporter.push` and, when it holds connections or files, the
:meth:`BaseExporter.start_backend` / :meth:`BaseExporter.shutdown_backend` hooks.

Ordering: ``start`` opens the backend, then the persistent queue if any (a
failure there shuts the exporter down again before re-raising), then runs the
queue workers; ``shutdown`` drains the helper (within ``shutdown_grace``)
before closing the backend, so queued data can still be pushed. ``shutdown``
is idempotent, safe without ``start``, and a concurrent second call waits for
the first.
"""

from __future__ import annotations

import abc
import asyncio
import random
from collections.abc import Iterable

from agent.component import Capabilities, Host, Settings, Signal
from agent.exporters.helper.config import HelperConfig
from agent.exporters.helper.helper import Clock, ExporterHelper, SleepFn
from agent.pdata import Logs, Metrics, PData, Traces

__all__ = ["BaseExporter"]


class BaseExporter(abc.ABC):
    """Exporter component built on :class:`ExporterHelper`.

    Args:
        settings: from the factory's ``create``.
        config: the exporter's config (``timeout``, ``sending_queue``, ``retry_on_failure``).
        signals: the signals this instance serves.
        clock: optional backoff clock for tests (see :class:`ExporterHelper`).
        sleep: optional backoff sleep for tests.
        rng: optional jitter randomness for tests.
    """

    def __init__(self, settings: Settings, config: HelperConfig, signals: Iterable[Signal], *,
                 clock: Clock | None = None, sleep: SleepFn | None = None,
                 rng: random.Random | None = None) -> None:
        self.settings = settings
        self.logger = settings.logger
        self.signals = frozenset(signals)
        self.helper = ExporterHelper(settings, config, self.signals, self.push, clock=clock, sleep=sleep, rng=rng)
        self._started = False
        self._shutdown_task: asyncio.Future[None] | None = None

    @abc.abstractmethod
    async def push(self, signal: Signal, data: PData) -> int | None:
        """Send one request to the backend.

        Returns:
            None, or the number of items the backend dropped from an otherwise
            accepted request (OTLP partial success): counted as failed, not retried.

        Raises:
            PermanentError: the backend will never accept it (dropped, counted).
            ThrottleError: retry, not before ``retry_after`` seconds.
            ConsumerError: any other failure (retried).
        """

    async def start_backend(self, host: Host) -> None:
        """Open connections or files; called by :meth:`start` before the workers run."""
        return None

    async def shutdown_backend(self) -> None:
        """Close connections or files; called by :meth:`shutdown` after the drain.

        Called once, even when :meth:`start` was not called or failed."""
        return None

    def capabilities(self) -> Capabilities:
        """Exporters only read the data they are handed."""
        return Capabilities(mutates_data=False)

    async def consume_traces(self, td: Traces) -> None:
        """Queue (or send) traces; see :meth:`ExporterHelper.consume`."""
        await self.helper.consume(Signal.TRACES, td)

    async def consume_metrics(self, md: Metrics) -> None:
        """Queue (or send) metrics; see :meth:`ExporterHelper.consume`."""
        await self.helper.consume(Signal.METRICS, md)

    async def consume_logs(self, ld: Logs) -> None:
        """Queue (or send) logs; see :meth:`ExporterHelper.consume`."""
        await self.helper.consume(Signal.LOGS, ld)

    async def start(self, host: Host) -> None:
        """Open the backend, then the persistent queue if any, then start the queue workers (idempotent)."""
        if self._started:
            return
        self._started = True
        await self.start_backend(host)
        try:
            await self.helper.start(host)
        except BaseException:
            await self.shutdown()  # the graph does not stop a component whose start failed
            raise

    async def shutdown(self) -> None:
        """Drain the helper within ``shutdown_grace``, then close the backend (idempotent)."""
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.ensure_future(self._shutdown())
        await asyncio.shield(self._shutdown_task)

    async def _shutdown(self) -> None:
        try:
            await self.helper.shutdown()
        finally:
            await self.shutdown_backend()
