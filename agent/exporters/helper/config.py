"""The collector's shared exporter options: ``timeout``, ``retry_on_failure`` and ``sending_queue``.

Names, defaults and validation rules follow the collector's ``exporterhelper``
(``configretry.BackOffConfig``, ``TimeoutConfig``, ``queuebatch.Config``), so a
collector YAML block decodes unchanged through :func:`agent.config.decode.decode`.

An exporter's ``Config`` either subclasses :class:`ExporterConfig` (the three
fields with the collector's defaults, as most collector exporters have them) or
declares the fields itself, possibly as ``Optional`` when the collector's
exporter has no such block by default (``debug``: no queue unless the
``sending_queue`` key is present). Anything with the three attributes satisfies
:class:`HelperConfig`, which is what :class:`~agent.exporters.helper.ExporterHelper`
reads.

``sending_queue.storage`` names a storage extension (``file_storage[/name]``)
for a persistent queue; it must be a valid component id, and the extension
must be listed in ``service.extensions`` (checked when the exporter starts, as
the collector does); see :mod:`agent.exporters.helper.persistent`.

Difference from the collector, a clear validation error:
``sending_queue.batch.partition.metadata_keys`` is not implemented (client
metadata is not propagated through the pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from agent.component import ComponentID
from agent.config.decode import Duration
from agent.errors import ConfigError

__all__ = [
    "BatchConfig",
    "ExporterConfig",
    "HelperConfig",
    "PartitionConfig",
    "QueueConfig",
    "RetryConfig",
    "Sizer",
    "validate_timeout",
]

#: How a queue or batch measures its size: whole requests, items (spans, data
#: points, log records) or serialized bytes.
Sizer = Literal["requests", "items", "bytes"]

Problems = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """``retry_on_failure``: exponential backoff with jitter (``configretry.BackOffConfig``).

    Attributes:
        enabled: retry retryable failures at all.
        initial_interval: wait after the first failure.
        randomization_factor: each wait is drawn from ``interval * (1 ± factor)``.
        multiplier: growth of the interval after each wait.
        max_interval: cap of the (un-randomized) interval.
        max_elapsed_time: give a request up once the next retry would start
            later than this after its first attempt; 0 retries forever.
    """

    enabled: bool = True
    initial_interval: Duration = 5.0
    randomization_factor: float = 0.5
    multiplier: float = 1.5
    max_interval: Duration = 30.0
    max_elapsed_time: Duration = 300.0

    def validate(self) -> Problems:
        if not self.enabled:
            return []
        out: Problems = []
        if self.initial_interval < 0:
            out.append(("initial_interval", "'initial_interval' must be non-negative"))
        if not 0 <= self.randomization_factor <= 1:
            out.append(("randomization_factor", "'randomization_factor' must be within [0, 1]"))
        if self.multiplier < 0:
            out.append(("multiplier", "'multiplier' must be non-negative"))
        if self.max_interval < 0:
            out.append(("max_interval", "'max_interval' must be non-negative"))
        if self.max_elapsed_time < 0:
            out.append(("max_elapsed_time", "'max_elapsed_time' must be non-negative"))
        elif self.max_elapsed_time > 0:
            if self.max_elapsed_time < self.initial_interval:
                out.append(("max_elapsed_time", "'max_elapsed_time' must not be less than 'initial_interval'"))
            if self.max_elapsed_time < self.max_interval:
                out.append(("max_elapsed_time", "'max_elapsed_time' must not be less than 'max_interval'"))
        return out


@dataclass(frozen=True, slots=True)
class PartitionConfig:
    """``sending_queue.batch.partition``: one batcher per client-metadata value set."""

    metadata_keys: tuple[str, ...] = ()

    def validate(self) -> Problems:
        if self.metadata_keys:
            return [("metadata_keys", "partitioning batches by client metadata is not implemented by "
                                      "otel-sidecar (client metadata is not propagated); remove metadata_keys")]
        return []


@dataclass(frozen=True, slots=True)
class BatchConfig:
    """``sending_queue.batch``: exporter-side batching of queued requests.

    Queued requests of one signal are merged (byte concatenation, no re-encoding)
    until ``min_size`` is reached or ``flush_timeout`` has passed since the first
    of them was taken; the merged request is then cut into pieces of at most
    ``max_size`` (0: no cap) and each piece is sent on its own consumer.

    Attributes:
        flush_timeout: longest wait for a batch to reach ``min_size``.
        min_size: size that triggers a send, in ``sizer`` units.
        max_size: largest request sent, in ``sizer`` units (0: unlimited). With
            the ``bytes`` sizer the cut is made by item count estimated from the
            average item size, so pieces are about, not exactly, ``max_size``.
        sizer: ``items`` or ``bytes``; unset: the queue's sizer when it was set
            explicitly, otherwise ``items`` (the collector's rule).
        partition: batch per client-metadata values (not implemented).
    """

    flush_timeout: Duration = 0.2
    min_size: int = 8192
    max_size: int = 0
    sizer: Sizer | None = None
    partition: PartitionConfig = field(default_factory=PartitionConfig)

    def validate(self) -> Problems:
        out: Problems = []
        if self.sizer == "requests":
            out.append(("sizer", "`batch` supports only `items` or `bytes` sizer, found \"requests\""))
        if self.flush_timeout <= 0:
            out.append(("flush_timeout", "`flush_timeout` must be positive"))
        if self.min_size < 0:
            out.append(("min_size", "`min_size` must be non-negative"))
        if self.max_size < 0:
            out.append(("max_size", "`max_size` must be non-negative"))
        if self.max_size > 0 and self.max_size < self.min_size:
            out.append(("max_size", f"`max_size` ({self.max_size}) must be greater or equal to "
                                    f"`min_size` ({self.min_size})"))
        return out


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """``sending_queue``: a bounded in-memory queue drained by ``num_consumers`` workers.

    Attributes:
        enabled: queue at all; when false ``consume`` sends inline.
        num_consumers: concurrent senders.
        queue_size: capacity in ``sizer`` units; it counts requests waiting
            *and* requests being sent (as the collector's queue does).
        sizer: ``requests`` (default), ``items`` or ``bytes``. ``None`` means
            "not set": ``requests``, and the batch sizer defaults to ``items``.
        block_on_overflow: when full, wait for space instead of refusing.
        blocking: deprecated alias of ``block_on_overflow``.
        wait_for_result: ``consume`` returns only once the data was sent (or
            raises its final error), instead of once it is queued.
        storage: id of a storage extension (``file_storage``) holding the
            queue on disk instead of in memory: the queue survives restarts and
            crashes (see :mod:`agent.exporters.helper.persistent`).
        batch: exporter-side batching; absent: off, present (even empty): on.
    """

    enabled: bool = True
    num_consumers: int = 10
    queue_size: int = 1000
    sizer: Sizer | None = None
    block_on_overflow: bool = False
    blocking: bool = False
    wait_for_result: bool = False
    storage: str | None = None
    batch: BatchConfig | None = None

    @property
    def queue_sizer(self) -> Sizer:
        """The effective queue sizer."""
        return self.sizer or "requests"

    @property
    def batch_sizer(self) -> Sizer:
        """The effective batch sizer (the collector's defaulting rule)."""
        if self.batch is not None and self.batch.sizer is not None:
            return self.batch.sizer
        return self.sizer or "items"

    @property
    def blocks(self) -> bool:
        """True when a full queue makes producers wait (either spelling)."""
        return self.block_on_overflow or self.blocking

    def validate(self) -> Problems:
        if not self.enabled:
            return []
        out: Problems = []
        if self.num_consumers <= 0:
            out.append(("num_consumers", "`num_consumers` must be positive"))
        if self.queue_size <= 0:
            out.append(("queue_size", "`queue_size` must be positive"))
        if self.storage is not None:
            try:
                ComponentID.parse(self.storage)
            except ConfigError as e:
                out.append(("storage", e.message))
        if self.batch is not None:
            if self.batch.sizer is None and self.sizer == "requests":
                out.append(("batch.sizer", "`batch` supports only `items` or `bytes` sizer, found \"requests\" "
                                           "(inherited from sending_queue.sizer); set batch.sizer"))
            if self.batch_sizer == self.queue_sizer and self.batch.min_size > self.queue_size:
                out.append(("batch.min_size", "`min_size` must be less than or equal to `queue_size`"))
        return out


class HelperConfig(Protocol):
    """What :class:`~agent.exporters.helper.ExporterHelper` reads from an exporter's config.

    ``None`` for ``sending_queue`` or ``retry_on_failure`` means the block is
    off (the collector's "optional, absent" state).
    """

    @property
    def timeout(self) -> float: ...

    @property
    def sending_queue(self) -> QueueConfig | None: ...

    @property
    def retry_on_failure(self) -> RetryConfig | None: ...


@dataclass(frozen=True)
class ExporterConfig:
    """Base for exporter configs that take the three blocks with the collector's defaults.

    Subclass it (``@dataclass(frozen=True) class Config(ExporterConfig): ...``);
    a subclass defining ``validate`` must include ``super().validate()``.

    Attributes:
        timeout: limit of one send attempt, in seconds; 0 means none.
        sending_queue: the queue; see :class:`QueueConfig`.
        retry_on_failure: the retry policy; see :class:`RetryConfig`.
    """

    timeout: Duration = 5.0
    sending_queue: QueueConfig = field(default_factory=QueueConfig)
    retry_on_failure: RetryConfig = field(default_factory=RetryConfig)

    def validate(self) -> Problems:
        return validate_timeout(self.timeout)


def validate_timeout(timeout: float) -> Problems:
    """The collector's ``TimeoutConfig`` rule, for configs that declare ``timeout`` themselves."""
    return [("timeout", "'timeout' must be non-negative")] if timeout < 0 else []
