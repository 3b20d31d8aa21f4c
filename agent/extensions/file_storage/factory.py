"""Factory and behaviour of the ``file_storage`` extension.

:class:`FileStorage` implements :class:`~agent.extensions.storage.StorageExtension`.
``start`` makes sure ``directory`` exists (creating it when ``create_directory``)
and is writable, and fails the service start with a clear message otherwise.
:meth:`FileStorage.get_client` then hands out one
:class:`~agent.extensions.file_storage.segmentlog.SegmentLog` per component id
and name, in ``<directory>/<kind>_<type>_<name>[_<client name>]`` as the
collector names its files (unsafe characters become ``~`` plus the code point
in hex, ``~`` included). A client is handed out once at a time; the directory
lock also keeps two processes off one queue. ``shutdown`` closes clients their
owners left open (owners normally close them first: the service stops
extensions after the pipelines).
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from agent.component import ComponentID, Factory, Host, Kind, Settings, Stability
from agent.extensions.file_storage.config import Config
from agent.extensions.file_storage.segmentlog import SegmentLog

__all__ = ["FACTORY", "FileStorage", "client_dir_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def client_dir_name(kind: Kind, cid: ComponentID, name: str) -> str:
    """``<kind>_<type>_<name>[_<client name>]`` with unsafe characters escaped, as the collector."""
    raw = f"{kind.value}_{cid.type}_{cid.name}" + (f"_{name}" if name else "")
    return _UNSAFE.sub(lambda m: f"~{ord(m.group()):04X}", raw)


class FileStorage:
    """The extension instance (see the module docstring)."""

    def __init__(self, settings: Settings, config: Config) -> None:
        self.settings = settings
        self.config = config
        self.directory = Path(config.directory or os.path.join(settings.data_dir, "file_storage"))
        self._clients: dict[str, SegmentLog] = {}
        self._started = False

    async def start(self, host: Host) -> None:
        await asyncio.to_thread(self._prepare)
        self._started = True
        self.settings.logger.info("File storage ready in %s (fsync %s).", self.directory,
                                  "on" if self.config.fsync else "off",
                                  extra={"directory": str(self.directory), "fsync": self.config.fsync})

    def _prepare(self) -> None:
        d = self.directory
        where = f"extension {self.settings.id}: directory {str(d)!r}"
        if not d.exists():
            if not self.config.create_directory:
                raise RuntimeError(f"{where} does not exist; create it or set create_directory: true")
            try:
                d.mkdir(mode=self.config.dir_mode, parents=True, exist_ok=True)
            except OSError as e:
                raise RuntimeError(f"{where} cannot be created: {e.strerror or e}") from e
        if not d.is_dir():
            raise RuntimeError(f"{where} is not a directory")
        if not os.access(d, os.R_OK | os.W_OK | os.X_OK):
            raise RuntimeError(f"{where} is not readable and writable by this process (uid {os.getuid()})")

    def get_client(self, kind: Kind, cid: ComponentID, name: str) -> SegmentLog:
        """A log in ``<directory>/<kind>_<type>_<name>_<client name>``; see the module docstring.

        Raises:
            RuntimeError: not started, or the same client is already handed out.
        """
        if not self._started:
            raise RuntimeError(f"extension {self.settings.id} is not started")
        key = client_dir_name(kind, cid, name)
        held = self._clients.get(key)
        if held is not None and not held.closed:
            raise RuntimeError(f"extension {self.settings.id}: storage {key!r} is already in use")
        client = SegmentLog(self.directory / key, fsync=self.config.fsync, lock_timeout=self.config.timeout,
                            dir_mode=self.config.dir_mode)
        self._clients[key] = client
        return client

    async def shutdown(self) -> None:
        left = [c for c in self._clients.values() if not c.closed]
        self._clients.clear()
        self._started = False
        for client in left:
            await asyncio.to_thread(client.close)


def create(settings: Settings, config: Config) -> FileStorage:
    return FileStorage(settings, config)


FACTORY = Factory(
    type="file_storage", kind=Kind.EXTENSION, config_class=Config, create=create,
    stability=Stability.ALPHA,
    description="durable storage (segmented log) for persistent sending queues (sending_queue.storage)",
)
