"""Blocking file writing with size-based rotation, run in a worker thread.

:class:`RotatingFileWriter` is the file exporter's disk side. Every method
blocks on I/O, so the exporter calls them through ``asyncio.to_thread``; a
``threading.Lock`` serializes them, so writes from successive flushes land in
order even when an awaiting coroutine was cancelled.

Rotation follows lumberjack (which the collector uses): before a frame would
push the file past ``max_bytes`` the file is renamed to
``<name>-<YYYY-MM-DDTHH-MM-SS.mmm><ext>`` (UTC unless ``localtime``) and a new
one is started; frames are never split across files. Then backups beyond
``max_backups`` (oldest first) and older than ``max_days`` are deleted. A single
frame larger than ``max_bytes`` is written alone into a fresh file (lumberjack
refuses it). With rotation, an existing file is appended to; without it the file
is truncated at open unless ``append`` is set.
"""

from __future__ import annotations

import calendar
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from agent.exporters.file.config import RotationConfig

__all__ = ["RotatingFileWriter"]

_TS_FORMAT = "%Y-%m-%dT%H-%M-%S"
_TS_RE = r"(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2})\.(\d{3})"


def _split_ext(name: str) -> tuple[str, str]:
    """Go's ``filepath.Ext`` split: ``traces.jsonl`` -> (``traces``, ``.jsonl``)."""
    dot = name.rfind(".")
    return (name[:dot], name[dot:]) if dot >= 0 else (name, "")


class RotatingFileWriter:
    """Appends byte frames to ``path``, rotating by size (see the module docstring).

    Args:
        path: the file written.
        append: without rotation, keep existing content instead of truncating.
        rotation: rotation settings, or None for a single file.
        max_bytes: override of ``rotation.max_bytes`` (tests use small sizes).
        dir_mode: permission bits of created parent directories.
        now: wall clock, seconds since the epoch (backup names, ``max_days``).
    """

    def __init__(self, path: str | os.PathLike[str], *, append: bool = False,
                 rotation: RotationConfig | None = None, max_bytes: int | None = None,
                 dir_mode: int = 0o755, now: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._append = append
        self._rotation = rotation
        self._max_bytes = 0 if rotation is None else (max_bytes if max_bytes is not None else rotation.max_bytes)
        self._dir_mode = dir_mode
        self._now = now
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None
        self._size = 0
        self._closed = False
        stem, ext = _split_ext(self.path.name)
        self._stem, self._ext = stem, ext
        self._backup_re = re.compile(re.escape(stem) + "-" + _TS_RE + re.escape(ext) + "$")

    @property
    def size(self) -> int:
        """Bytes in the current file."""
        return self._size

    def open(self) -> None:
        """Create parent directories and open the file (idempotent)."""
        with self._lock:
            self._ensure_open()

    def write(self, frames: Sequence[bytes]) -> None:
        """Write ``frames`` in order, rotating between frames when needed, then flush.

        Raises:
            OSError: the file cannot be opened, written or rotated.
            ValueError: the writer is closed.
        """
        with self._lock:
            if self._closed:
                raise ValueError(f"{self.path} is closed")
            f = self._ensure_open()
            if not self._max_bytes:
                f.writelines(frames)
                self._size += sum(len(fr) for fr in frames)
            else:
                batch: list[bytes] = []
                for frame in frames:
                    if self._size > 0 and self._size + len(frame) > self._max_bytes:
                        f.writelines(batch)
                        batch = []
                        f = self._rotate()
                    batch.append(frame)
                    self._size += len(frame)
                f.writelines(batch)
            f.flush()

    def close(self) -> None:
        """Flush and close; later writes raise ValueError."""
        with self._lock:
            self._closed = True
            if self._file is not None:
                try:
                    self._file.flush()
                finally:
                    self._file.close()
                    self._file = None

    def backups(self) -> list[Path]:
        """Existing backup files of this path, oldest first."""
        found = []
        try:
            entries = list(self.path.parent.iterdir())
        except FileNotFoundError:
            return []
        for p in entries:
            m = self._backup_re.match(p.name)
            if m:
                found.append((m.group(1), m.group(2), p))
        return [p for _, _, p in sorted(found)]

    # -- internals (lock held) ---------------------------------------------------------------
    def _ensure_open(self) -> BinaryIO:
        if self._file is not None:
            return self._file
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=self._dir_mode)
        # Kept open for the writer's lifetime.
        f = open(self.path, "ab") if self._append or self._rotation is not None else open(self.path, "wb")  # noqa: SIM115
        self._size = os.fstat(f.fileno()).st_size
        self._file = f
        return f

    def _rotate(self) -> BinaryIO:
        if self._file is not None:
            self._file.close()
            self._file = None
        os.rename(self.path, self._backup_name())
        f = open(self.path, "wb")  # noqa: SIM115
        self._file = f
        self._size = 0
        self._prune()
        return f

    def _stamp(self, ms: int) -> str:
        secs, frac = divmod(ms, 1000)
        local = self._rotation is not None and self._rotation.localtime
        return f"{time.strftime(_TS_FORMAT, time.localtime(secs) if local else time.gmtime(secs))}.{frac:03d}"

    def _backup_name(self) -> Path:
        # Strictly after the newest backup (so names sort in write order even when several
        # rotations fall in one millisecond), and never an existing file.
        ms = round(self._now() * 1000)
        backups = self.backups()
        if backups:
            ms = max(ms, self._backup_ms(backups[-1]) + 1)
        while True:
            candidate = self.path.with_name(f"{self._stem}-{self._stamp(ms)}{self._ext}")
            if not candidate.exists():
                return candidate
            ms += 1

    def _backup_ms(self, path: Path) -> int:
        """Milliseconds since the epoch encoded in a backup's name (0 if it has none)."""
        m = self._backup_re.match(path.name)
        if m is None:
            return 0
        tm = time.strptime(m.group(1), _TS_FORMAT)
        local = self._rotation is not None and self._rotation.localtime
        secs = int(time.mktime(tm)) if local else calendar.timegm(tm)
        return secs * 1000 + int(m.group(2))

    def _prune(self) -> None:
        rot = self._rotation
        if rot is None:
            return
        backups = self.backups()
        doomed: set[Path] = set()
        if rot.max_backups > 0 and len(backups) > rot.max_backups:
            doomed.update(backups[: len(backups) - rot.max_backups])
        if rot.max_days > 0:
            cutoff = self._now() - rot.max_days * 86400
            doomed.update(p for p in backups if self._backup_ms(p) < cutoff * 1000)
        for p in doomed:
            try:
                p.unlink()
            except FileNotFoundError:
                pass
