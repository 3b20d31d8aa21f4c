"""The ``memory_limiter`` processor: refuses data while the process uses too much memory.

Role
    Put it first in every pipeline. A :class:`MemoryMonitor` measures the
    process's resident set size (RSS) every ``check_interval``; while the RSS
    is at or above the **soft limit** (hard limit minus spike limit) every
    ``consume_*`` call is refused with :class:`agent.errors.MemoryLimitError`,
    a retryable error carrying a retry hint of ``max(1s, check_interval)``.
    The OTLP receiver turns it into gRPC UNAVAILABLE or HTTP 503 with
    RetryInfo/Retry-After, so well-behaved clients retry later and nothing is
    lost. Once a check finds the RSS below the soft limit again, data is
    accepted again.

Garbage collection
    Above the soft limit the monitor forces a collection at most every
    ``min_gc_interval_when_soft_limited`` (default 10s); at or above the
    **hard limit** at most every ``min_gc_interval_when_hard_limited``
    (default 0: every check). A collection is ``gc.collect()`` followed, on
    glibc, by ``malloc_trim(0)`` so freed heap pages go back to the OS and the
    RSS can actually fall (CPython rarely returns memory otherwise). The check
    after a collection decides whether to keep refusing.

Differences from the collector
    The collector measures the Go heap; a Python process has no equivalent,
    so the RSS is used (what the kernel's OOM killer looks at, too). The
    available memory for ``limit_percentage`` is the host's total memory
    capped by the cgroup (v2 or v1) memory limit when one is set, like the
    collector's own cgroup-aware lookup. Exactly one of ``limit_mib`` and
    ``limit_percentage`` must be set.

Sharing, blocking and logging
    All pipelines using one ``memory_limiter`` id share one monitor (one
    measurement task, started with the first pipeline and stopped with the
    last), as in the collector. A check is one ``/proc`` read (microseconds);
    a forced collection blocks the event loop for its duration, which is the
    point. State changes (refusing, accepting again, hard limit reached) are
    logged once each; refused items are counted in
    ``otelcol_processor_refused_*``, never logged. The limiter cannot see data
    before it is decoded (the collector's known gap, core#8632): receivers'
    size limits remain the first line of defence.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import psutil

from agent.component import Host, Settings, Signal
from agent.config.decode import format_duration
from agent.errors import MemoryLimitError
from agent.pdata import PData
from agent.processors.base import ProcessorBase
from agent.processors.memory_limiter.config import Config

__all__ = [
    "Limits",
    "MemoryLimiterProcessor",
    "MemoryMonitor",
    "process_rss",
    "release_memory",
    "total_memory",
]

MIB: Final = 1024 * 1024

_CGROUP_LIMIT_FILES: Final = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def _cgroup_limit() -> int | None:
    """The cgroup memory limit of this process in bytes, or None when unlimited or unknown."""
    for name in _CGROUP_LIMIT_FILES:
        try:
            text = Path(name).read_text().strip()
        except OSError:
            continue
        if text == "max":
            return None
        try:
            value = int(text)
        except ValueError:
            continue
        return value if value > 0 else None
    return None


def total_memory() -> int:
    """Memory available to this process in bytes: host total, capped by a cgroup limit."""
    total = int(psutil.virtual_memory().total)
    limit = _cgroup_limit()
    return min(total, limit) if limit is not None else total


_process: psutil.Process | None = None


def process_rss() -> int:
    """Resident set size of this process in bytes."""
    global _process
    proc = _process
    if proc is None or proc.pid != os.getpid():  # re-resolve after a fork
        proc = _process = psutil.Process(os.getpid())
    return int(proc.memory_info().rss)


def _load_malloc_trim() -> Callable[[], object] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return lambda: fn(0)


_malloc_trim = _load_malloc_trim()


def release_memory() -> None:
    """Collect garbage and, on glibc, give free heap pages back to the OS."""
    gc.collect()
    if _malloc_trim is not None:
        _malloc_trim()


@dataclass(frozen=True, slots=True)
class Limits:
    """Hard and spike limits in bytes; soft = hard - spike."""

    hard: int
    spike: int

    @property
    def soft(self) -> int:
        return self.hard - self.spike

    @classmethod
    def from_config(cls, config: Config, total: Callable[[], int] = total_memory) -> Limits:
        """Limits of a validated config; ``total`` is only asked for percentage limits."""
        if config.limit_mib:
            hard, spike = config.limit_mib * MIB, config.spike_limit_mib * MIB
        else:
            avail = total()
            hard = config.limit_percentage * avail // 100
            spike = config.spike_limit_percentage * avail // 100
        if spike == 0:
            spike = hard // 5
        return cls(hard, spike)


class MemoryMonitor:
    """Measures memory every ``check_interval`` and decides whether to refuse data.

    Args:
        limits: the hard and spike limits.
        check_interval: seconds between two measurements.
        logger: where state changes are logged.
        min_gc_interval_soft: least seconds between forced collections above the soft limit.
        min_gc_interval_hard: least seconds between forced collections above the hard limit.
        read_rss: returns the memory in use, in bytes (injectable for tests).
        collect: forces a collection (injectable for tests).
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        limits: Limits,
        check_interval: float,
        logger: logging.Logger,
        *,
        min_gc_interval_soft: float = 10.0,
        min_gc_interval_hard: float = 0.0,
        read_rss: Callable[[], int] = process_rss,
        collect: Callable[[], None] = release_memory,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if check_interval <= 0:
            raise ValueError("check_interval must be greater than zero")
        self.limits = limits
        self.check_interval = check_interval
        self._logger = logger
        self._min_gc_soft = min_gc_interval_soft
        self._min_gc_hard = min_gc_interval_hard
        self._read_rss = read_rss
        self._collect = collect
        self._clock = clock
        self._last_gc = clock()
        self._refusing = False
        self._above_hard = False
        self._check_failing = False
        self._users = 0
        self._task: asyncio.Task[None] | None = None
        #: RSS found by the last check, in bytes (0 before the first).
        self.last_rss = 0
        #: Forced collections so far.
        self.collections = 0

    @classmethod
    def from_config(
        cls,
        config: Config,
        logger: logging.Logger,
        *,
        total: Callable[[], int] = total_memory,
        read_rss: Callable[[], int] = process_rss,
        collect: Callable[[], None] = release_memory,
        clock: Callable[[], float] = time.monotonic,
    ) -> MemoryMonitor:
        """A monitor for a validated ``memory_limiter`` config."""
        limits = Limits.from_config(config, total)
        logger.info("Memory limiter configured: limit %d MiB, spike limit %d MiB, check interval %s.",
                    limits.hard // MIB, limits.spike // MIB, format_duration(config.check_interval))
        return cls(limits, config.check_interval, logger,
                   min_gc_interval_soft=config.min_gc_interval_when_soft_limited,
                   min_gc_interval_hard=config.min_gc_interval_when_hard_limited,
                   read_rss=read_rss, collect=collect, clock=clock)

    @property
    def must_refuse(self) -> bool:
        """True while the last check found memory at or above the soft limit."""
        return self._refusing

    @property
    def running(self) -> bool:
        """True while the periodic check task runs."""
        return self._task is not None

    def check(self) -> int:
        """Measure once, force a collection if due, update :attr:`must_refuse`.

        Returns:
            The RSS in bytes the decision was based on.
        """
        limits = self.limits
        rss = self._read_rss()
        above_hard = rss >= limits.hard
        if above_hard and not self._above_hard:
            self._logger.warning("Memory usage is above the hard limit (%d MiB >= %d MiB). Forcing garbage "
                                 "collection.", rss // MIB, limits.hard // MIB)
        self._above_hard = above_hard
        if rss >= limits.soft:
            min_gap = self._min_gc_hard if above_hard else self._min_gc_soft
            if self._clock() - self._last_gc >= min_gap:
                rss = self._force_collection(rss)
        above_soft = rss >= limits.soft
        if above_soft and not self._refusing:
            self._logger.warning("Memory usage is above the soft limit (%d MiB >= %d MiB). Refusing data.",
                                 rss // MIB, limits.soft // MIB)
        elif not above_soft and self._refusing:
            self._logger.info("Memory usage back within limits (%d MiB < %d MiB). Resuming normal operation.",
                              rss // MIB, limits.soft // MIB)
        self._refusing = above_soft
        self.last_rss = rss
        return rss

    def _force_collection(self, rss: int) -> int:
        self._collect()
        self.collections += 1
        self._last_gc = self._clock()
        after = self._read_rss()
        self._logger.debug("Memory usage after garbage collection: %d MiB (was %d MiB).", after // MIB, rss // MIB)
        return after

    def acquire(self) -> None:
        """Register one user; the first one runs a check and starts the periodic task.

        Must be called on the running event loop.
        """
        self._users += 1
        if self._users == 1:
            self._safe_check()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="memory_limiter check")

    async def release(self) -> None:
        """Unregister one user; the last one stops the periodic task."""
        if self._users == 0:
            return
        self._users -= 1
        if self._users == 0 and self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            await asyncio.wait({task})

    def _safe_check(self) -> None:
        """:meth:`check`, logging a failure once per failing streak instead of raising."""
        try:
            self.check()
        except Exception:
            if not self._check_failing:
                self._logger.exception("Memory check failed; keeping the previous decision.")
            self._check_failing = True
        else:
            if self._check_failing:
                self._logger.info("Memory check works again.")
            self._check_failing = False

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval)
            self._safe_check()


class MemoryLimiterProcessor(ProcessorBase):
    """Refuses data of one pipeline while its :class:`MemoryMonitor` says so.

    Args:
        settings: the component's settings (id, telemetry, logger, pipeline).
        config: the decoded ``processors.memory_limiter`` config.
        signal: the signal of the pipeline.
        next_consumer: where accepted data goes.
        monitor: the monitor to follow (shared by the pipelines of one id);
            a private one is built from ``config`` when omitted.
    """

    mutates_data = False

    def __init__(
        self,
        settings: Settings,
        config: Config,
        signal: Signal,
        next_consumer: object,
        *,
        monitor: MemoryMonitor | None = None,
    ) -> None:
        super().__init__(settings, signal, next_consumer)
        self.monitor = monitor if monitor is not None else MemoryMonitor.from_config(config, settings.logger)
        self._retry_after = max(1.0, config.check_interval)
        self._state = "new"

    async def start(self, host: Host) -> None:
        """Join the monitor (the first user starts its periodic check)."""
        if self._state != "new":
            return
        self._state = "started"
        self.monitor.acquire()

    async def shutdown(self) -> None:
        """Leave the monitor (the last user stops it). Safe twice and without start."""
        started = self._state == "started"
        self._state = "stopped"
        if started:
            await self.monitor.release()

    async def _consume(self, data: PData) -> None:
        n = data.item_count
        self._obs.incoming(self.signal, n)
        if self.monitor.must_refuse:
            self._obs.refused(self.signal, n)
            raise MemoryLimitError(f"data refused due to high memory usage (processor {self.id})",
                                   retry_after=self._retry_after)
        self._obs.outgoing(self.signal, n)
        await self._next(data)
