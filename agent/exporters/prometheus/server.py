"""The ``/metrics`` HTTP endpoint of the ``prometheus`` exporter.

Role: negotiate the format (``Accept``, ``Accept-Encoding``), take a snapshot of
the accumulator on the event loop, render and compress it in a worker thread,
and stream it with exactly one Content-Type.

Concurrency:

* The snapshot is taken on the loop (list copies, milliseconds for 100k series);
  the render reads only the snapshot and immutable values, so ``consume_metrics``
  keeps folding while a large scrape is rendered (see :mod:`.accumulator`).
* Rendering and gzip run in worker-thread hops of ~256 KiB of output each
  (``asyncio.to_thread``); the next block is rendered while the loop writes
  the current one. The loop stays responsive during a long render: the worker
  gives the GIL back every few milliseconds and zlib releases it while
  compressing.
* Memory stays flat: the text is produced in pieces of 200 series and
  compressed incrementally in units of 4 MiB (a 100k-histogram scrape is
  ~200 MB of text).
* A body of up to 4 MiB is reused while the accumulator's ``generation`` is
  unchanged (the usual case when Prometheus scrapes more often than
  applications export).
* A render failure before the first block answers 500; a later one aborts
  the connection (so the scrape fails rather than being silently cut short).
  Each distinct failure is logged once; ingestion is never affected.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from aiohttp import web

from agent.exporters.prometheus.accumulator import Snapshot
from agent.exporters.prometheus.nativehist import render_protobuf
from agent.exporters.prometheus.render import Format, RenderOptions, accepts_gzip, negotiate, render_chunks
from agent.netutil import HTTPServer

__all__ = ["MetricsServer", "Producer", "produce"]

METRICS_PATH = "/metrics"
#: Bodies up to this size are kept for the next scrape while the store is unchanged.
CACHE_MAX_BYTES = 4 << 20
#: A streamed response is written in blocks of about this many (compressed) bytes.
BLOCK_BYTES = 256 << 10
#: With gzip, text is handed to the compression thread in units of about this many bytes (at most
#: two units are in flight).
GZIP_UNIT_BYTES = 4 << 20


class Producer:
    """Renders a snapshot into response blocks, one :meth:`next_block` call per worker-thread hop.

    Text formats are rendered in pieces (:func:`render_chunks`) and compressed
    incrementally, so neither the text nor the compressed body is held whole;
    protobuf is encoded in one go (it is ~8x smaller than text). With gzip,
    compression runs on a second thread (zlib releases the GIL), pipelined
    with the rendering of the next piece: a large gzipped scrape costs about
    as much wall time as an uncompressed one. While the output stays under
    :data:`CACHE_MAX_BYTES` the blocks are also kept, so the whole body can be
    cached. Call :meth:`close` when done (it stops the compression thread).
    """

    def __init__(self, snap: Snapshot, fmt: Format, gzip: bool, opts: RenderOptions) -> None:
        self._chunks: Iterator[bytes] = (
            iter((render_protobuf(snap, opts),)) if fmt is Format.PROTOBUF
            else (c.encode() for c in render_chunks(snap, fmt, opts)))
        self._z = zlib.compressobj(1, zlib.DEFLATED, 31) if gzip else None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="metrics-gzip") if gzip else None
        self._pending: deque[Future[bytes]] = deque()
        self._unit: list[bytes] = []
        self._unit_size = 0
        self._done = False
        self.kept: list[bytes] | None = []
        self._kept_size = 0

    def _last(self, data: bytes) -> bytes:
        assert self._z is not None
        return self._z.compress(data) + self._z.flush()

    def next_block(self) -> bytes | None:
        """The next block of the body, or None at the end (runs in a worker thread)."""
        if self._done:
            return None
        parts: list[bytes] = []
        size = 0
        z, pool, pending, unit = self._z, self._pool, self._pending, self._unit
        while size < BLOCK_BYTES:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._done = True
                if z is not None and pool is not None:
                    pending.append(pool.submit(self._last, b"".join(unit)))
                    unit.clear()
                    parts.extend(f.result() for f in pending)
                    pending.clear()
                break
            if z is None or pool is None:
                parts.append(chunk)
                size += len(chunk)
                continue
            # Compress in large units: every call costs the compression thread a few GIL hand-offs
            # (start, end, each growth of zlib's output buffer), each up to the switch interval
            # (5 ms) while this thread renders; with one call per 2 MB piece the two threads
            # overlapped poorly.
            unit.append(chunk)
            self._unit_size += len(chunk)
            if self._unit_size < GZIP_UNIT_BYTES:
                continue
            data = b"".join(unit) if len(unit) > 1 else unit[0]
            unit.clear()
            self._unit_size = 0
            pending.append(pool.submit(z.compress, data))  # one thread: compressions stay in order
            while pending and (pending[0].done() or len(pending) > 1):
                out = pending.popleft().result()
                parts.append(out)
                size += len(out)
        block = b"".join(parts)
        if self.kept is not None:
            self._kept_size += len(block)
            if self._kept_size > CACHE_MAX_BYTES:
                self.kept = None
            else:
                self.kept.append(block)
        return block

    def close(self) -> None:
        """Stop the compression thread (idempotent; pending work is abandoned)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def produce(snap: Snapshot, fmt: Format, gzip: bool, opts: RenderOptions) -> bytes:
    """The whole body at once (tests, benchmarks)."""
    producer = Producer(snap, fmt, gzip, opts)
    try:
        blocks = []
        while (block := producer.next_block()) is not None:
            blocks.append(block)
        return b"".join(blocks)
    finally:
        producer.close()


class MetricsServer:
    """Serves ``/metrics`` from a snapshot source.

    Args:
        endpoint: ``host:port`` to listen on.
        snapshot: returns the current :class:`Snapshot` (called on the loop).
        generation: returns the store's change counter (cache validation).
        openmetrics: whether OpenMetrics may be negotiated.
        options: render options.
        logger: for render failures.
        name: used in bind errors.
    """

    def __init__(self, endpoint: str, snapshot: Callable[[], Snapshot], generation: Callable[[], int], *,
                 openmetrics: bool, options: RenderOptions, logger: logging.Logger, name: str) -> None:
        self._snapshot = snapshot
        self._generation = generation
        self.openmetrics = openmetrics
        self.options = options
        self.log = logger
        app = web.Application()
        app.router.add_get(METRICS_PATH, self._handle)
        self.http = HTTPServer(app, endpoint, name=name)
        self._cache: tuple[int, Format, bool, bytes] | None = None
        self._logged: set[str] = set()

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return self.http.port

    async def start(self) -> None:
        await self.http.start()

    async def stop(self) -> None:
        await self.http.stop()
        self._cache = None

    def _failed(self, e: BaseException) -> str:
        msg = f"{type(e).__name__}: {e}"
        if msg not in self._logged and len(self._logged) < 100:
            self._logged.add(msg)
            self.log.error("Rendering /metrics failed.", exc_info=e)
        return msg

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fmt = negotiate(request.headers.get("Accept"), openmetrics=self.openmetrics)
        gzip = accepts_gzip(request.headers.get("Accept-Encoding"))
        headers: dict[str, Any] = {"Content-Type": fmt.content_type}
        if gzip:
            headers["Content-Encoding"] = "gzip"
        if request.method == "HEAD":  # headers only: a streamed body must not follow
            return web.Response(headers=headers)
        cached = self._cache
        gen = self._generation()
        if cached is not None and cached[:3] == (gen, fmt, gzip):
            return web.Response(body=cached[3], headers=headers)
        snap = self._snapshot()
        producer = Producer(snap, fmt, gzip, self.options)
        try:
            try:  # the first block before the headers: an early failure can still answer 500
                block = await asyncio.to_thread(producer.next_block)
            except Exception as e:  # a render bug must not take the endpoint down
                return web.Response(status=500, text=f"render failed: {self._failed(e)}\n")
            resp = web.StreamResponse(headers=headers)
            await resp.prepare(request)
            nxt: asyncio.Future[bytes | None] | None = None
            try:
                while block is not None:
                    # Render the next block while this one is written.
                    nxt = asyncio.ensure_future(asyncio.to_thread(producer.next_block))
                    await resp.write(block)
                    block = await nxt
                    nxt = None
            except Exception as e:
                # Headers are gone: abort the connection so the scrape fails instead of being cut short.
                if not isinstance(e, ConnectionError):
                    self._failed(e)
                raise
            finally:
                if nxt is not None and not nxt.cancel() and not nxt.cancelled():
                    nxt.exception()  # retrieved: nobody waits for it any more
            await resp.write_eof()
        finally:
            producer.close()
        if producer.kept is not None:
            self._cache = (snap.generation, fmt, gzip, b"".join(producer.kept))
        return resp
