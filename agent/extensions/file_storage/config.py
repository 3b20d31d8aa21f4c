"""Config of the ``file_storage`` extension (the collector's ``filestorage`` keys).

Keys and defaults, with where otel-sidecar differs:

* ``directory``: where the data lives. Default: ``<data dir>/file_storage``
  (``--data-dir`` / ``OTEL_SIDECAR_DATA_DIR``, itself ``./data`` by default);
  the collector's default is ``/var/lib/otelcol/file_storage``.
* ``timeout`` (1s): how long to wait for another process's lock on a queue.
* ``fsync`` (false): ``fdatasync`` after every write. Off, data survives a crash
  of the process but not a power loss or kernel crash.
* ``create_directory`` (**true**; the collector's default is false): create
  ``directory`` (and parents) at start if missing, with ``directory_permissions``.
* ``directory_permissions`` ("0750"): octal mode of created directories, minus
  the umask.
* ``compaction``: accepted and validated as in the collector. otel-sidecar's
  format is an append-only segmented log that compacts itself continuously: a
  segment file is deleted as soon as every record in it is acknowledged (at
  run time and at start) and leftover temporary files are always removed at
  start, so there is no separate compaction pass; ``on_start``, ``on_rebound``,
  their thresholds, ``directory`` and ``max_transaction_size`` change nothing.
* ``recreate`` (false): accepted; the collector renames a bbolt file it cannot
  open. Here records are checksummed one by one, so damage costs only the
  damaged records (skipped and counted) and the queue always opens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.config.decode import Duration

__all__ = ["CompactionConfig", "Config"]

Problems = list[tuple[str, str]]


@dataclass(frozen=True)
class CompactionConfig:
    """``compaction`` (see the module docstring: accepted, nothing left to do)."""

    on_start: bool = False
    on_rebound: bool = False
    directory: str = ""
    max_transaction_size: int = 65536
    rebound_needed_threshold_mib: int = 100
    rebound_trigger_threshold_mib: int = 10
    check_interval: Duration = 5.0
    cleanup_on_start: bool = False

    def validate(self) -> Problems:
        out: Problems = []
        if self.max_transaction_size < 0:
            out.append(("max_transaction_size", "max transaction size for compaction cannot be less than 0"))
        if self.on_rebound and self.check_interval <= 0:
            out.append(("check_interval", "compaction check interval must be positive when rebound compaction "
                                          "is set"))
        if self.rebound_needed_threshold_mib < 0 or self.rebound_trigger_threshold_mib < 0:
            out.append(("", "rebound thresholds must be non-negative"))
        return out


@dataclass(frozen=True)
class Config:
    """The ``file_storage`` extension's config; see the module docstring."""

    directory: str = ""
    timeout: Duration = 1.0
    fsync: bool = False
    create_directory: bool = True
    directory_permissions: str = "0750"
    compaction: CompactionConfig = field(default_factory=CompactionConfig)
    recreate: bool = False

    @property
    def dir_mode(self) -> int:
        """``directory_permissions`` as a mode (valid after validation)."""
        return int(self.directory_permissions, 8)

    def validate(self) -> Problems:
        out: Problems = []
        if self.timeout < 0:
            out.append(("timeout", "must be non-negative"))
        try:
            mode = int(self.directory_permissions, 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o7777:
            out.append(("directory_permissions", f"expected an octal mode such as \"0750\", got "
                                                 f"{self.directory_permissions!r}"))
        elif mode & 0o700 != 0o700:
            out.append(("directory_permissions", "the owner needs read, write and search permission (0700)"))
        return out
