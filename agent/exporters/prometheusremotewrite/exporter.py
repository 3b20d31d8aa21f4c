"""The ``prometheusremotewrite`` exporter: cumulative series pushed with remote write 1.0.

Data path:

1. ``consume_metrics`` folds the request into the series store shared with the
   ``prometheus`` exporter (:class:`~agent.exporters.prometheus.accumulator.Accumulator`:
   delta -> cumulative, resets, caps, conflicts), on the event loop;
2. the series it updated (and those it ended with ``NO_RECORDED_VALUE``) are
   encoded into one ``WriteRequest`` (:mod:`.writerequest`) and
   snappy-compressed (block format, ``cramjam.snappy.compress_raw``) right
   away, so a later point cannot change what this request says;
3. the compressed request goes through the exporter helper (queue -> retry
   -> timeout -> :meth:`RemoteWriteExporter.push`).

Because requests carry cumulative values, a request refused by a full queue
loses nothing for good: the next request of a series carries its total.

HTTP (``protocols.md`` 5): ``POST`` with ``Content-Encoding: snappy``,
``Content-Type: application/x-protobuf``, ``User-Agent: otel-sidecar/<version>``,
``X-Prometheus-Remote-Write-Version: 0.1.0`` and the configured ``headers``.
2xx: done. 429: :class:`~agent.errors.ThrottleError` (``Retry-After``
honoured). 5xx: retryable (``Retry-After`` honoured when present). Any other
status: :class:`~agent.errors.PermanentError` (a 400 means some sample was
invalid; the receiver may have kept the rest). Connection errors and
timeouts: retryable.

Staleness: series that expire (``metric_expiration``, on a timer) or end get
stale markers in a request of their own (or of the ingest that ended them).

Ordering: the default single queue consumer keeps the requests, hence each
series' samples, in time order (the spec's rule).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import cramjam

from agent import __version__
from agent.component import Host, Settings, Signal
from agent.errors import ConsumerError, PermanentError, ThrottleError
from agent.exporters.helper import BaseExporter
from agent.exporters.helper.config import QueueConfig, RetryConfig
from agent.exporters.otlphttp.exporter import parse_retry_after
from agent.exporters.prometheus.accumulator import Series
from agent.exporters.prometheus.exporter import expiry_interval, make_accumulator
from agent.exporters.prometheus.translate import Namer
from agent.exporters.prometheusremotewrite.config import Config
from agent.exporters.prometheusremotewrite.writerequest import WriteRequestEncoder
from agent.pdata import Metrics, PData

__all__ = ["REMOTE_WRITE_VERSION", "RemoteWriteExporter", "RemoteWriteRequest", "snappy_block"]

REMOTE_WRITE_VERSION: Final = "0.1.0"
_MAX_MESSAGE: Final = 300


def snappy_block(body: bytes) -> bytes:
    """Snappy *block* compression (not the framed format), as remote write requires."""
    return bytes(cramjam.snappy.compress_raw(body))


class RemoteWriteRequest(Metrics):
    """A compressed ``WriteRequest`` travelling through the helper's queue as opaque bytes.

    ``item_count`` is the number of OTLP data points it carries (for the
    ``otelcol_exporter_*_metric_points`` self-metrics); it is never parsed.
    """

    __slots__ = ()

    def __init__(self, body: bytes, points: int) -> None:
        super().__init__(raw=body, count=points)


@dataclass(frozen=True)
class _HelperView:
    """What the helper reads: the effective queue (``sending_queue`` or ``remote_write_queue``)."""

    timeout: float
    sending_queue: QueueConfig | None
    retry_on_failure: RetryConfig | None


class RemoteWriteExporter(BaseExporter):
    """See the module docstring.

    Args:
        settings: from the factory.
        config: the decoded config.
        signals: the signals served (metrics).
        clock: monotonic clock of the series store (expiry).
        wall: wall clock in seconds (stale marker timestamps).
        helper_kw: passed to the helper (tests: fake backoff clock and sleep).
    """

    def __init__(self, settings: Settings, config: Config, signals: Iterable[Signal], *,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 **helper_kw: Any) -> None:
        super().__init__(settings, _HelperView(config.timeout, config.queue, config.retry_on_failure), signals,
                         **helper_kw)
        self.config = config
        self._wall = wall
        self._removed: list[Series] = []
        self.accumulator = make_accumulator(
            settings, namer=Namer(config.namespace, config.add_metric_suffixes), expiration=config.metric_expiration,
            max_series=config.max_series, max_series_per_metric=config.max_series_per_metric, const_labels={},
            resource_to_labels=config.resource_to_telemetry_conversion.enabled, scope_info=True,
            openmetrics=config.export_created_metric.enabled, exp_bounds=tuple(config.exponential_histogram_buckets),
            clock=clock, on_remove=self._removed.append)
        self.encoder = WriteRequestEncoder(
            self.accumulator, external_labels=dict(config.external_labels),
            target_info=config.target_info.enabled, created=config.export_created_metric.enabled,
            metadata=config.send_metadata, native=config.exponential_histograms == "native",
            exp_bounds=tuple(config.exponential_histogram_buckets))
        self._obs = settings.telemetry.exporter(settings.id)
        self._headers = {"User-Agent": f"otel-sidecar/{__version__}", **config.headers,
                         "Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
                         "X-Prometheus-Remote-Write-Version": REMOTE_WRITE_VERSION}
        self._session: aiohttp.ClientSession | None = None
        self._timer: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------------
    async def start_backend(self, host: Host) -> None:
        if self._session is None:
            ssl_ctx: Any = self.config.tls.ssl_context() if self.config.endpoint.startswith("https://") else True
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_ctx),
                                                  timeout=aiohttp.ClientTimeout(total=None))
        if self.config.metric_expiration > 0 and self._timer is None:
            self._timer = asyncio.create_task(self._expire_loop(), name=f"{self.settings.id} expiry")

    async def shutdown(self) -> None:
        """Stop the expiry timer, drain the queue, close the HTTP session (idempotent)."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        await super().shutdown()

    async def shutdown_backend(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- data path ------------------------------------------------------------------------------
    def _take_removed(self) -> list[Series]:
        removed, self._removed[:] = list(self._removed), []
        return removed

    def _now_ms(self) -> int:
        return int(self._wall() * 1000)

    async def consume_metrics(self, md: Metrics) -> None:
        """Fold ``md``, encode what changed, queue the compressed request."""
        touched: list[Series] = []
        folded, dropped = self.accumulator.ingest(md, touched)
        if dropped:
            self._obs.send_failed(Signal.METRICS, dropped)
        body = self.encoder.request(touched, self._take_removed(), self._now_ms())
        if body:
            await self.helper.consume(Signal.METRICS, RemoteWriteRequest(snappy_block(body), folded))

    async def _expire_loop(self) -> None:
        interval = expiry_interval(self.config.metric_expiration)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush_stale()
            except ConsumerError as e:  # the helper counted it (enqueue_failed)
                self.logger.debug("Stale markers not queued: %s", e)
            except Exception:
                self.logger.exception("Expiring series failed.")

    async def flush_stale(self) -> int:
        """Expire old series now and queue their stale markers; returns how many series ended."""
        self.accumulator.expire()
        removed = self._take_removed()
        body = self.encoder.request([], removed, self._now_ms())
        if body:
            await self.helper.consume(Signal.METRICS, RemoteWriteRequest(snappy_block(body), 0))
        return len(removed)

    async def push(self, signal: Signal, data: PData) -> None:
        """POST one compressed WriteRequest (see the module docstring for the status mapping)."""
        session = self._session
        if session is None:
            raise ConsumerError("HTTP session is not open (exporter not started or shut down)")
        url = self.config.endpoint
        try:
            async with session.post(url, data=data.to_bytes(), headers=self._headers,
                                    timeout=aiohttp.ClientTimeout(total=self.config.timeout or None)) as resp:
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
                reply = await resp.content.read(4096)
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise ConsumerError(f"remote write to {url} failed: {type(e).__name__}: {e}") from None
        if 200 <= status < 300:
            return
        message = reply[:_MAX_MESSAGE].decode("utf-8", "replace").strip()
        text = f"HTTP {status} from {url}" + (f": {message}" if message else "")
        delay = parse_retry_after(retry_after)
        if status == 429:
            raise ThrottleError(text, retry_after=delay or 0.0)
        if status >= 500:
            if delay is not None:
                raise ThrottleError(text, retry_after=delay)
            raise ConsumerError(text)
        raise PermanentError(text)
