"""The sidecar's own logs: JSON lines (default) or console text, on stderr.

Rules (Vector's STYLE.md): ERROR means data loss or operator action needed;
messages are capitalised sentences ending with a period; counts, never
payloads, are logged; per-item events are counted in metrics, not logged.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

__all__ = ["JSONFormatter", "setup_logging"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
_STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


class JSONFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, extra fields, error."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in _STD and not k.startswith("_"):
                doc[k] = v if isinstance(v, str | int | float | bool | type(None)) else str(v)
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def setup_logging(level: str = "info", encoding: str = "json") -> None:
    """Configure the ``otel_sidecar`` logger tree (idempotent)."""
    root = logging.getLogger("otel_sidecar")
    root.setLevel(_LEVELS.get(level, logging.INFO))
    for h in list(root.handlers):
        if getattr(h, "_otel_sidecar", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JSONFormatter() if encoding == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    handler._otel_sidecar = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.propagate = False
