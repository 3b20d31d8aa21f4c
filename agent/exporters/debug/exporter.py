"""The ``debug`` exporter: writes what it receives to the log, at three verbosities.

* ``basic``: one INFO line per request with counts (``Traces resource spans: 1,
  spans: 10``). It reads only cached counts, so it doubles as the no-op sink
  of benchmarks.
* ``normal``: the basic line plus one INFO record holding one line per resource,
  scope and item (span name and ids, log body, ``metric{attrs} value``).
* ``detailed``: the basic line plus one INFO record with a readable dump of
  every field.

Sampling (the collector's zap sampler): per signal and per second, the first
``sampling_initial`` requests are logged, then every ``sampling_thereafter``-th
(0: none). When INFO is disabled for the logger nothing is rendered.

Output goes to ``settings.logger`` unless ``use_internal_logger`` is false, in
which case plain lines go to ``output_paths`` (default stdout). Writing those
lines is synchronous; it is a debugging aid, not a production sink.

No queue by default (the collector's behaviour): ``consume`` logs inline and
returns. ``push`` never fails.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable

from agent.component import Settings, Signal
from agent.exporters.debug import text
from agent.exporters.debug.config import Config
from agent.exporters.helper import BaseExporter, Clock, SleepFn
from agent.pdata import PData

__all__ = ["DebugExporter", "Sampler"]


class Sampler:
    """Per-key, per-second log sampling (zap's ``NewSamplerWithOptions``).

    Args:
        initial: entries logged per key and second before sampling starts.
        thereafter: after that, one entry in ``thereafter`` is logged (0: none).
        clock: monotonic seconds.
    """

    __slots__ = ("_clock", "_counts", "_initial", "_thereafter", "_tick")

    def __init__(self, initial: int, thereafter: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._initial = max(0, initial)
        self._thereafter = max(0, thereafter)
        self._clock = clock
        self._tick = clock()
        self._counts: dict[object, int] = {}

    def allow(self, key: object) -> bool:
        now = self._clock()
        if now - self._tick >= 1.0:
            self._tick = now
            self._counts.clear()
        n = self._counts.get(key, 0) + 1
        self._counts[key] = n
        if n <= self._initial:
            return True
        return self._thereafter > 0 and (n - self._initial) % self._thereafter == 0


class DebugExporter(BaseExporter):
    """Logs counts or dumps of every request (see the module docstring)."""

    def __init__(self, settings: Settings, config: Config, signals: Iterable[Signal], *,
                 clock: Clock | None = None, sleep: SleepFn | None = None) -> None:
        super().__init__(settings, config, signals, clock=clock, sleep=sleep)
        self._config = config
        self._handlers: list[logging.Handler] = []
        if config.use_internal_logger:
            self._out = settings.logger
            if config.output_paths:
                settings.logger.warning("debug exporter: output_paths is ignored while use_internal_logger "
                                        "is true.")
        else:
            self._out = self._private_logger(settings, config.output_paths or ("stdout",))
        self._sampler = Sampler(config.sampling_initial, config.sampling_thereafter)

    def _private_logger(self, settings: Settings, paths: Iterable[str]) -> logging.Logger:
        # Outside the logging tree on purpose: plain lines, no propagation to the sidecar's handlers.
        logger = logging.Logger(f"otel_sidecar.exporter.{settings.id}.output", logging.INFO)
        logger.propagate = False
        for path in paths:
            handler: logging.Handler
            if path == "stdout":
                handler = logging.StreamHandler(sys.stdout)
            elif path == "stderr":
                handler = logging.StreamHandler(sys.stderr)
            else:
                handler = logging.FileHandler(path, encoding="utf-8", delay=True)
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
            self._handlers.append(handler)
        return logger

    async def push(self, signal: Signal, data: PData) -> None:
        out = self._out
        if not out.isEnabledFor(logging.INFO) or not self._sampler.allow(signal):
            return
        fmt, args, fields = text.summary(data)
        out.info(fmt, *args, extra=fields)
        verbosity = self._config.verbosity
        if verbosity == "basic":
            return
        dump = (text.normal if verbosity == "normal" else text.detailed)(data, self._config.output)
        if dump:
            out.info("%s", dump)

    async def shutdown_backend(self) -> None:
        for handler in self._handlers:
            handler.flush()
            handler.close()
            self._out.removeHandler(handler)
        self._handlers.clear()
