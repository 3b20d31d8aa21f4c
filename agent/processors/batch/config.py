"""Configuration of the ``batch`` processor (the collector's keys and defaults)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from agent.config.decode import Duration

__all__ = ["DEFAULT_SEND_BATCH_SIZE", "DEFAULT_TIMEOUT", "Config"]

DEFAULT_SEND_BATCH_SIZE: Final = 8192
DEFAULT_TIMEOUT: Final = 0.2
DEFAULT_METADATA_CARDINALITY_LIMIT: Final = 1000


@dataclass(frozen=True, slots=True)
class Config:
    """``processors.batch``.

    Attributes:
        send_batch_size: item count (spans, metric points or log records) that
            triggers a send. A trigger, not a cap. 0 disables buffering.
        send_batch_max_size: upper limit of a sent batch; larger batches are
            split. 0 means no limit; otherwise it must be >= send_batch_size.
        timeout: the longest an item waits in the buffer. 0 disables buffering:
            every request is forwarded at once, split by send_batch_max_size.
        metadata_keys: batching by client metadata; only ``[]`` is supported
            (no request context reaches otel-sidecar's processors).
        metadata_cardinality_limit: accepted for compatibility; unused while
            metadata_keys is empty.
    """

    send_batch_size: int = DEFAULT_SEND_BATCH_SIZE
    send_batch_max_size: int = 0
    timeout: Duration = DEFAULT_TIMEOUT
    metadata_keys: list[str] = field(default_factory=list)
    metadata_cardinality_limit: int = DEFAULT_METADATA_CARDINALITY_LIMIT

    @property
    def passthrough(self) -> bool:
        """True when nothing is buffered (``timeout`` or ``send_batch_size`` is 0)."""
        return self.timeout == 0 or self.send_batch_size == 0

    def validate(self) -> list[tuple[str, str]]:
        """Cross-field checks; ``(subpath, message)`` pairs for the decoder."""
        problems: list[tuple[str, str]] = []
        if self.send_batch_size < 0:
            problems.append(("send_batch_size", "must not be negative"))
        if self.send_batch_max_size < 0:
            problems.append(("send_batch_max_size", "must not be negative"))
        elif 0 < self.send_batch_max_size < self.send_batch_size:
            problems.append((
                "send_batch_max_size",
                f"must be greater than or equal to send_batch_size ({self.send_batch_size}), or 0 for no limit",
            ))
        if self.timeout < 0:
            problems.append(("timeout", "must be greater than or equal to 0"))
        if self.metadata_keys:
            problems.append((
                "metadata_keys",
                "batching by client metadata is not implemented by otel-sidecar "
                "(request metadata does not reach processors); remove the key or set []",
            ))
        if self.metadata_cardinality_limit < 0:
            problems.append(("metadata_cardinality_limit", "must not be negative"))
        return problems
