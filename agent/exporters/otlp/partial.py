"""OTLP ``partial_success`` handling shared by the ``otlp`` and ``otlphttp`` exporters.

A response with ``partial_success.rejected_<items>`` > 0 means the server kept
the rest and dropped those items for good: the client must not retry
(opentelemetry-proto ``docs/specification.md``, "Partial Success"). The
exporter's ``push`` returns the rejected count, so the exporter helper counts
them in ``otelcol_exporter_send_failed_<items>`` and the rest as sent; this
module logs a WARNING; ``rejected = 0`` with a message is a warning only.

Log volume: the first report is logged at once, later ones at most every 10 s
with the number of responses folded into that line (no per-request noise).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

from agent.component import Signal

__all__ = ["PartialSuccessReporter", "rejected_of"]

_REJECTED_FIELD: Final = {Signal.TRACES: "rejected_spans", Signal.METRICS: "rejected_data_points",
                          Signal.LOGS: "rejected_log_records"}
_INTERVAL: Final = 10.0
_MAX_MESSAGE: Final = 300


def rejected_of(signal: Signal, response: Any) -> tuple[int, str]:
    """``(rejected items, error message)`` of an ``Export*ServiceResponse``."""
    if not response.HasField("partial_success"):
        return 0, ""
    ps = response.partial_success
    return int(getattr(ps, _REJECTED_FIELD[signal])), str(ps.error_message)


class PartialSuccessReporter:
    """Counts and logs partial successes of one exporter.

    Args:
        logger: the exporter's logger.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, logger: logging.Logger, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._clock = clock
        self._last = -_INTERVAL
        self._folded = 0

    def report(self, signal: Signal, response: Any) -> int:
        """Account a decoded response; returns the number of rejected items."""
        rejected, message = rejected_of(signal, response)
        if rejected <= 0 and not message:
            return 0
        now = self._clock()
        self._folded += 1
        if now - self._last >= _INTERVAL:
            if len(message) > _MAX_MESSAGE:
                message = message[:_MAX_MESSAGE] + "..."
            self._log.warning("Partial success response: %d %s rejected by the server (not retried): %s "
                              "(%d partial responses since the last report).",
                              rejected, signal.item_name, message or "no message", self._folded,
                              extra={"signal": signal.value, "rejected_items": rejected})
            self._last = now
            self._folded = 0
        return rejected
