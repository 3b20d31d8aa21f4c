"""The storage interface between a storage extension and the components that persist data.

The collector's ``storage.Extension`` hands each component a key/value client
(``GetClient(kind, id, name)``) and its persistent queue builds a queue on top
of it. otel-sidecar needs storage only for ``sending_queue.storage``, so the
client here is the queue's natural shape: an append-only log of records with
acknowledgements. :class:`StorageExtension` is what the exporter helper looks
for behind the ``storage`` id; ``file_storage`` implements it.

Contract of a :class:`StorageClient` (one per component id and name, e.g. one
per exporter and signal):

* **Blocking.** Every method does disk I/O and blocks; callers run them off the
  event loop (``asyncio.to_thread``). ``append``, ``read`` and ``ack`` may run
  concurrently in different threads, but each of them is never called again
  before its previous call returned.
* **Written means handed to the OS.** ``append`` returns once the records are
  written to the file (in the kernel's page cache: they survive a crash of the
  process); with the extension's ``fsync`` they are also on stable storage
  (they survive a power loss). It raises :class:`OSError` (``ENOSPC`` for a
  full disk) with nothing of the failed call readable.
* **Order and acknowledgement.** ``read`` returns records in append order, each
  once per open. A record is *acknowledged* by ``ack``; acknowledged records are
  never read again, in this process or, once ``ack`` has returned, after a
  restart. Records read but not acknowledged when the process stops (cleanly or
  not) are read again after the next ``open``: delivery is at least once.
* **Damage.** Records that fail their checksum or are cut short are skipped by
  ``open``'s recovery scan and reported in :class:`Recovery`; the others are
  delivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from agent.component import ComponentID, Kind, Signal

__all__ = ["Record", "Recovery", "StorageClient", "StorageExtension"]


@dataclass(frozen=True, slots=True)
class Record:
    """One stored request.

    Attributes:
        seq: sequence number, increasing in append order (not necessarily dense).
        signal: the signal the payload belongs to.
        items: spans, metric data points or log records in the payload.
        payload: the OTLP export request, protobuf wire bytes.
    """

    seq: int
    signal: Signal
    items: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Recovery:
    """What :meth:`StorageClient.open` found on disk.

    Attributes:
        records: records left unacknowledged by earlier runs, to be read again.
        items: their item count.
        bytes: their payload bytes.
        corrupted: damaged regions skipped (a record cut short or failing its
            checksum; a run of garbage counts once).
        corrupted_bytes: bytes in those regions.
        segments: data files kept.
        state_valid: False when the acknowledgement state was missing or
            unreadable while data existed: every intact record on disk is then
            delivered again (duplicates rather than loss).
    """

    records: int = 0
    items: int = 0
    bytes: int = 0
    corrupted: int = 0
    corrupted_bytes: int = 0
    segments: int = 0
    state_valid: bool = True


class StorageClient(Protocol):
    """A durable record log with acknowledgements (see the module docstring)."""

    def open(self) -> Recovery:
        """Lock the log for this process, recover its state and scan its data.

        Raises:
            OSError: the directory cannot be created or read, or another
                process holds it (``BlockingIOError`` after the lock timeout).
        """
        ...

    def append(self, entries: Sequence[tuple[Signal, int, bytes]]) -> int:
        """Write ``(signal, items, payload)`` records; returns the first one's seq.

        The records get consecutive sequence numbers from the returned one.

        Raises:
            OSError: nothing of this call was written (``ENOSPC``: disk full).
        """
        ...

    def read(self, max_records: int, max_bytes: int) -> list[Record]:
        """Up to ``max_records`` records not read yet, in order (at least one
        when any is available, even if larger than ``max_bytes``)."""
        ...

    def ack(self, seqs: Sequence[int]) -> None:
        """Acknowledge records (sent, or dropped for good) and persist the state.

        Space of fully acknowledged data is reclaimed first, so that this works
        on a full disk; the in-memory state is updated even if writing it fails.

        Raises:
            OSError: the state could not be written (retry with an empty list).
        """
        ...

    def close(self) -> None:
        """Persist the state (best effort), close the files and unlock."""
        ...


@runtime_checkable
class StorageExtension(Protocol):
    """An extension that hands out storage clients (``file_storage``)."""

    def get_client(self, kind: Kind, cid: ComponentID, name: str) -> StorageClient:
        """The client for component ``cid`` of ``kind``; ``name`` tells apart
        several clients of one component (the signal, for exporter queues).

        Raises:
            RuntimeError: the extension is not started, or the client is in use.
        """
        ...
