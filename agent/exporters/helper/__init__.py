"""Shared exporter machinery: the collector's ``exporterhelper`` in asyncio form.

* :mod:`.config`: ``timeout``, ``retry_on_failure``, ``sending_queue`` (with
  ``batch``) config dataclasses, collector names and defaults.
* :mod:`.queue`: :class:`BoundedQueue`, the sizer-bounded asyncio FIFO.
* :mod:`.persistent`: :class:`PersistentQueue`, the same queue kept in a storage
  extension (``sending_queue.storage: file_storage``), surviving restarts and crashes.
* :mod:`.retry`: :class:`Backoff`, exponential backoff with jitter.
* :mod:`.helper`: :class:`ExporterHelper`, queue -> batch -> retry -> timeout -> push.
* :mod:`.base`: :class:`BaseExporter`, a component built around a ``push`` coroutine.

Writing an exporter::

    @dataclass(frozen=True)
    class Config(ExporterConfig):            # timeout, sending_queue, retry_on_failure
        endpoint: str = field(default="", metadata=REQUIRED)

    class MyExporter(BaseExporter):
        async def start_backend(self, host: Host) -> None:
            self.session = aiohttp.ClientSession()

        async def push(self, signal: Signal, data: PData) -> None:
            ...  # raise PermanentError / ThrottleError(retry_after=...) / ConsumerError

        async def shutdown_backend(self) -> None:
            await self.session.close()
"""

from agent.exporters.helper.base import BaseExporter
from agent.exporters.helper.config import (
    BatchConfig,
    ExporterConfig,
    HelperConfig,
    PartitionConfig,
    QueueConfig,
    RetryConfig,
    Sizer,
    validate_timeout,
)
from agent.exporters.helper.helper import QUEUE_FULL_RETRY_AFTER, Clock, ExporterHelper, PushFn, SleepFn
from agent.exporters.helper.persistent import PersistentQueue, StorageError
from agent.exporters.helper.queue import BoundedQueue
from agent.exporters.helper.retry import Backoff

__all__ = [
    "QUEUE_FULL_RETRY_AFTER",
    "Backoff",
    "BaseExporter",
    "BatchConfig",
    "BoundedQueue",
    "Clock",
    "ExporterConfig",
    "ExporterHelper",
    "HelperConfig",
    "PartitionConfig",
    "PersistentQueue",
    "PushFn",
    "QueueConfig",
    "RetryConfig",
    "Sizer",
    "SleepFn",
    "StorageError",
    "validate_timeout",
]
