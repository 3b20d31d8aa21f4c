"""Configuration of the ``file`` exporter (the collector-contrib keys and defaults).

Collector keys: ``path`` (required), ``append`` (false: truncate at start),
``rotation`` (absent: no rotation; present, even empty: ``max_megabytes`` 100,
``max_days`` 0, ``max_backups`` 100, ``localtime`` false), ``format`` (json or
proto), ``encoding``, ``compression`` ("" or zstd), ``compression_params``,
``flush_interval`` (1s; 0 also means 1s), ``group_by``, ``create_directory``,
``directory_permissions``.

otel-sidecar differences:

* parent directories are always created (with ``directory_permissions``, default
  0755), not only with ``create_directory``;
* ``encoding`` (encoding extensions) and ``group_by.enabled`` are rejected as
  not implemented;
* ``compression: zstd`` needs the optional ``cramjam`` package;
* it also accepts the exporterhelper blocks: ``timeout`` (5s), ``sending_queue``
  and ``retry_on_failure`` (both absent, that is off, by default, which is the
  collector's file exporter behaviour: write inline, no retry).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Literal

from agent.config.decode import REQUIRED, Duration
from agent.exporters.helper import QueueConfig, RetryConfig, validate_timeout

__all__ = ["CompressionParams", "Config", "GroupByConfig", "RotationConfig"]

_MEGABYTE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RotationConfig:
    """Size-based rotation (lumberjack semantics).

    Attributes:
        max_megabytes: rotate before a write would make the file exceed this
            many MiB (0 or less: 100).
        max_days: delete backups older than this many days (0: keep).
        max_backups: keep at most this many backups (0: keep all).
        localtime: timestamps in backup names in local time instead of UTC.
    """

    max_megabytes: int = 100
    max_days: int = 0
    max_backups: int = 100
    localtime: bool = False

    @property
    def max_bytes(self) -> int:
        return (self.max_megabytes if self.max_megabytes > 0 else 100) * _MEGABYTE


@dataclass(frozen=True, slots=True)
class GroupByConfig:
    """One file per resource attribute value (not implemented by otel-sidecar)."""

    enabled: bool = False
    resource_attribute: str = "fileexporter.path_segment"
    max_open_files: int = 100


@dataclass(frozen=True, slots=True)
class CompressionParams:
    """``compression_params``: the zstd level (0: the library default)."""

    level: int = 0


@dataclass(frozen=True)
class Config:
    """The ``file`` exporter's options (see the module docstring)."""

    path: str = field(default="", metadata=REQUIRED)
    append: bool = False
    rotation: RotationConfig | None = None
    format: Literal["json", "proto"] = "json"
    encoding: str | None = None
    compression: str = ""
    compression_params: CompressionParams = field(default_factory=CompressionParams)
    flush_interval: Duration = 1.0
    group_by: GroupByConfig = field(default_factory=GroupByConfig)
    create_directory: bool = False
    directory_permissions: str = ""
    timeout: Duration = 5.0
    sending_queue: QueueConfig | None = None
    retry_on_failure: RetryConfig | None = None

    @property
    def effective_flush_interval(self) -> float:
        """Seconds between flushes (the collector turns 0 into 1s)."""
        return self.flush_interval if self.flush_interval > 0 else 1.0

    @property
    def directory_mode(self) -> int:
        """Permission bits for created directories."""
        try:
            return int(self.directory_permissions, 8) if self.directory_permissions else 0o755
        except ValueError:
            return 0o755

    def validate(self) -> list[tuple[str, str]]:
        out = validate_timeout(self.timeout)
        if self.append and self.compression:
            out.append(("", "append and compression enabled at the same time is not supported"))
        if self.append and self.rotation is not None:
            out.append(("", "append and rotation enabled at the same time is not supported"))
        if self.compression not in ("", "zstd"):
            out.append(("compression", f"compression {self.compression!r} is not supported; use zstd or leave "
                                       "it empty"))
        elif self.compression == "zstd" and importlib.util.find_spec("cramjam") is None:
            out.append(("compression", "zstd compression needs the cramjam package, which is not installed"))
        if self.flush_interval < 0:
            out.append(("flush_interval", "flush_interval must be larger than zero"))
        if self.encoding:
            out.append(("encoding", "encoding extensions are not implemented by otel-sidecar; "
                                    "use format: json or proto"))
        if self.group_by.enabled:
            out.append(("group_by", "group_by is not implemented by otel-sidecar"))
        if self.create_directory:
            try:
                mode = int(self.directory_permissions or "0755", 8)
            except ValueError:
                out.append(("directory_permissions",
                            "directory_permissions value must be a valid octal representation"))
            else:
                if mode & 0o777 != mode:
                    out.append(("directory_permissions",
                                "directory_permissions contain invalid bits for file access"))
        elif self.directory_permissions:
            out.append(("directory_permissions", "directory_permissions requires create_directory to be true"))
        return out
