"""The ``file`` exporter: OTLP requests appended to one file, as the collector writes them.

Formats (collector-contrib ``fileexporter``):

* ``json`` without compression: one OTLP/JSON export request per line
  (``{"resourceSpans":[...]}\\n``), all signals in the same file.
* ``proto``, or any format with ``compression: zstd``: each message (the
  request's protobuf bytes, or its JSON, zstd-compressed per message when
  compression is on) preceded by its length as a 4-byte big-endian unsigned
  integer.

Blocking and backpressure: ``push`` encodes on the event loop and appends the
frame to an in-memory buffer; the buffer is written by a worker thread
(``asyncio.to_thread``) every ``flush_interval``, on shutdown, and as soon as
it holds 1 MiB, in which case that ``push`` waits for the write (so a slow
disk slows producers down instead of growing memory). Writes and rotation
happen in the thread, in order.

Delivery: ``consume`` returns once the data is buffered (no queue by default,
as the collector). Up to one flush interval of acknowledged data lives only in
memory; on shutdown it is written before the file is closed. If a write
fails, the buffered requests are lost: the error is logged once with the item
count, and the ``push`` that triggered the write (if any) fails.
"""

from __future__ import annotations

import asyncio
import importlib
import struct
from collections.abc import Callable, Iterable
from typing import Final

from agent.component import Host, Settings, Signal
from agent.errors import ConsumerError
from agent.exporters.file.config import Config
from agent.exporters.file.writer import RotatingFileWriter
from agent.exporters.helper import BaseExporter, Clock, SleepFn
from agent.pdata import PData
from agent.pdata.otlpjson import encode_request

__all__ = ["FLUSH_BYTES", "FileExporter"]

#: Buffered bytes that trigger an immediate write.
FLUSH_BYTES: Final = 1 << 20
_LENGTH = struct.Struct(">I")


def _zstd_compressor(level: int) -> Callable[[bytes], bytes]:
    cramjam = importlib.import_module("cramjam")
    compress = cramjam.zstd.compress

    def run(data: bytes) -> bytes:
        return bytes(compress(data, level) if level else compress(data))
    return run


class FileExporter(BaseExporter):
    """Writes every request it gets to ``config.path`` (see the module docstring).

    Args:
        settings: from the factory.
        config: the decoded ``file`` config.
        signals: the signals served (all go to the same file).
        writer: the disk side; by default a :class:`RotatingFileWriter` built from ``config``.
    """

    def __init__(self, settings: Settings, config: Config, signals: Iterable[Signal], *,
                 writer: RotatingFileWriter | None = None, clock: Clock | None = None,
                 sleep: SleepFn | None = None) -> None:
        super().__init__(settings, config, signals, clock=clock, sleep=sleep)
        self._config = config
        self._writer = writer or RotatingFileWriter(
            config.path, append=config.append, rotation=config.rotation, dir_mode=config.directory_mode)
        self._encode: Callable[[PData], bytes] = (
            encode_request if config.format == "json" else type(self)._proto_bytes)
        self._compress = _zstd_compressor(config.compression_params.level) if config.compression else None
        self._length_prefixed = config.format == "proto" or self._compress is not None
        self._interval = config.effective_flush_interval
        self._frames: list[bytes] = []
        self._frames_bytes = 0
        self._frames_items = 0
        self._flush_lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None

    @staticmethod
    def _proto_bytes(data: PData) -> bytes:
        return data.to_bytes()

    @property
    def path(self) -> str:
        return str(self._writer.path)

    def frame(self, data: PData) -> bytes:
        """The bytes written for ``data``: a JSON line or a length-prefixed message."""
        payload = self._encode(data)
        if self._compress is not None:
            payload = self._compress(payload)
        if self._length_prefixed:
            return _LENGTH.pack(len(payload)) + payload
        return payload + b"\n"

    async def push(self, signal: Signal, data: PData) -> None:
        frame = self.frame(data)
        self._frames.append(frame)
        self._frames_bytes += len(frame)
        self._frames_items += data.item_count
        if self._frames_bytes >= FLUSH_BYTES:
            await self.flush()

    async def flush(self) -> None:
        """Write everything buffered so far (in a thread), in order.

        Raises:
            ConsumerError: the write failed; the buffered data is lost (logged).
        """
        async with self._flush_lock:
            if not self._frames:
                return
            frames, items = self._frames, self._frames_items
            self._frames, self._frames_bytes, self._frames_items = [], 0, 0
            try:
                await asyncio.shield(asyncio.to_thread(self._writer.write, frames))
            except (OSError, ValueError) as e:
                self.logger.error("Writing to %s failed; %d items lost: %s.", self.path, items, e,
                                  extra={"path": self.path, "dropped_items": items})
                raise ConsumerError(f"writing {self.path} failed: {e}") from e

    async def start_backend(self, host: Host) -> None:
        await asyncio.to_thread(self._writer.open)
        self._flusher = asyncio.create_task(self._flush_loop(), name=f"exporter {self.settings.id} flusher")

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except ConsumerError:
                pass  # logged by flush; keep flushing later data

    async def shutdown_backend(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.wait({self._flusher})
            self._flusher = None
        try:
            await self.flush()
        except ConsumerError:
            pass  # logged by flush
        await asyncio.to_thread(self._writer.close)
