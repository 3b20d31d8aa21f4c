"""Errors used across the sidecar.

The hierarchy::

    Exception
    ├── ConfigError                 invalid configuration; carries the YAML path
    │   └── ConfigErrors            several ConfigError at once (validate prints all)
    └── ConsumerError               a consumer could not take the data; RETRYABLE by default
        ├── PermanentError          never retried: bad data, 4xx from a backend
        ├── ThrottleError           retryable, with the server's retry_after hint (seconds)
        │   ├── QueueFullError      an exporter's sending queue is full
        │   └── MemoryLimitError    memory_limiter refuses data above its soft limit
        └── ShutdownError           the component is stopping; retryable (go elsewhere / later)

Receivers map these to OTLP status codes (see ``receivers/otlp/status.py``):
retryable -> gRPC UNAVAILABLE / HTTP 503, throttled -> UNAVAILABLE with RetryInfo /
HTTP 503 with Retry-After, permanent -> INVALID_ARGUMENT / HTTP 400.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ConfigError",
    "ConfigErrors",
    "ConsumerError",
    "MemoryLimitError",
    "PermanentError",
    "QueueFullError",
    "ShutdownError",
    "ThrottleError",
    "is_permanent",
    "retry_after_of",
]


class ConfigError(Exception):
    """A problem in the configuration, located by its dotted YAML path."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class ConfigErrors(ConfigError):
    """Several configuration problems, reported together."""

    def __init__(self, errors: Iterable[ConfigError]) -> None:
        self.errors = list(errors)
        text = "\n".join(str(e) for e in self.errors)
        super().__init__("", text)


class ConsumerError(Exception):
    """A consumer failed to take data. Retryable unless it is a PermanentError."""


class PermanentError(ConsumerError):
    """Data that will never be accepted (bad data, backend 4xx): do not retry."""


class ThrottleError(ConsumerError):
    """Retryable refusal with a hint of when to retry, in seconds (0 = no hint)."""

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = max(0.0, float(retry_after))


class QueueFullError(ThrottleError):
    """The exporter's sending queue is full."""


class MemoryLimitError(ThrottleError):
    """The memory limiter is above its soft limit."""


class ShutdownError(ConsumerError):
    """The component is shutting down and no longer accepts data."""


def is_permanent(err: BaseException) -> bool:
    """True when ``err`` must not be retried."""
    return isinstance(err, PermanentError)


def retry_after_of(err: BaseException) -> float:
    """The server's retry hint carried by ``err``, in seconds (0 if none)."""
    return err.retry_after if isinstance(err, ThrottleError) else 0.0
