"""A small thread-safe in-process cache with a time-to-live, reporting hits and misses."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from instrumentation import record_cache_request

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """A least-recently-used cache whose entries expire after ``ttl_seconds``.

    Every :meth:`get` counts one ``cache.requests`` data point (``cache.result`` hit or miss).

    Args:
        name: The cache's name (``cache.name``).
        ttl_seconds: Entry lifetime.
        max_entries: Entries kept at most; the least recently used go first.
        clock: A monotonic clock (tests pass a fake one).
    """

    def __init__(
        self, name: str, ttl_seconds: float, max_entries: int = 1024, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        """Return the cached value, or ``None`` when absent or expired (a miss)."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > now:
                self._entries.move_to_end(key)
                value: V | None = entry[1]
            else:
                if entry is not None:
                    del self._entries[key]
                value = None
        record_cache_request(self.name, value is not None)
        return value

    def put(self, key: K, value: V) -> None:
        """Store a value for ``ttl_seconds``."""
        with self._lock:
            self._entries[key] = (self._clock() + self.ttl_seconds, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def invalidate(self, key: K) -> None:
        """Drop one entry."""
        with self._lock:
            self._entries.pop(key, None)
