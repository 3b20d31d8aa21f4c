"""An append-only segmented record log: the on-disk format of ``file_storage``.

One :class:`SegmentLog` is one :class:`~agent.extensions.storage.StorageClient`,
stored in its own directory::

    <directory>/exporter_otlp__traces/
        LOCK                       flock()ed while a process has the log open
        00000000000000000000.seg   data segments, named by the sequence number
        00000000000000000213.seg   of their first record (20 digits)
        state                      acknowledgement state, replaced atomically
        state.tmp                  transient (removed at open)

**Record frame** (little endian; 26-byte header, then the payload)::

    offset size  field
         0    4  magic b"OSQ\\x01"
         4    4  payload length (u32)
         8    8  sequence number (u64), increasing in append order
        16    4  item count (u32)
        20    1  signal: 1 traces, 2 metrics, 3 logs
        21    1  flags (0)
        22    4  CRC-32 (zlib) of bytes 4..21 followed by the payload
        26    n  payload: the OTLP export request, protobuf wire bytes

**State file**: magic ``b"OSA\\x01"``, ``read_seq`` (u64), ``n`` (u32), ``n``
sequence numbers (u64), CRC-32 of everything before it. It is written to
``state.tmp`` (fsynced when ``fsync``) and renamed over ``state``, so a reader
sees either the old or the new state.

Invariants:

* **Acknowledged** means ``seq < read_seq`` and ``seq`` not in the unacknowledged
  set: every record below ``read_seq`` has been read, and those read but not
  acknowledged yet (in flight, or read again after a restart) are listed. The
  list is only as long as the number of records in flight.
* **Segments.** Segments hold increasing sequence numbers. Only the newest
  segment (the *active* one) is appended to, and each ``open`` starts a new one,
  so a torn tail left by a crash is never written after. A closed (*sealed*)
  segment is deleted as soon as its highest sequence number is below the
  *floor* ``min(unacknowledged ∪ {read_seq})``; deletion does not wait for the
  state file, so space comes back even when the state cannot be written (disk
  full): deleting acknowledged data can only remove duplicates.
* **Readers never see partial writes.** The log tracks each segment's committed
  end; a failed ``append`` truncates back to it and seals a non-empty segment
  (so that it can be deleted once acknowledged: on a full disk, space comes
  back that way). No file descriptor is held on a sealed segment between
  calls, so deleting it frees its space at once.

Crash semantics: after ``append`` returns, the records are in the kernel; a
killed process loses nothing, and records read but not acknowledged (or whose
acknowledgement was not yet persisted) are read again after a restart. Power
loss is covered only with ``fsync`` (``fdatasync`` after each append and state
write, plus a directory fsync for new files). At ``open`` a recovery scan checks
every record: a record cut mid-way (the process died inside a write) or failing
its CRC is skipped and counted, the scan resynchronises on the next valid
record (magic + CRC), and everything intact is delivered. (Only while
resynchronising after damage could a frame embedded in some payload be taken
for a record.) A missing or damaged state file makes every intact record
deliverable again (duplicates, not loss).

Thread safety: ``append``, ``read`` and ``ack`` may run concurrently in three
threads (each serialised by its caller); one lock guards the shared metadata
and no I/O happens under it.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from agent.component import Signal
from agent.extensions.storage import Record, Recovery

__all__ = ["DEFAULT_SEGMENT_BYTES", "HEADER", "MAGIC", "SegmentLog", "encode_record"]

log = logging.getLogger("otel_sidecar.file_storage")

MAGIC: Final = b"OSQ\x01"
_STATE_MAGIC: Final = b"OSA\x01"
_HEAD: Final = struct.Struct("<4sIQIBBI")
_CRC_BODY: Final = struct.Struct("<IQIBB")
#: Bytes of a record header.
HEADER: Final = _HEAD.size
#: A segment is closed and a new one started once it holds this many bytes.
DEFAULT_SEGMENT_BYTES: Final = 8 << 20
_SIGNAL_CODES: Final = {Signal.TRACES: 1, Signal.METRICS: 2, Signal.LOGS: 3}
_SIGNALS_BY_CODE: Final = {v: k for k, v in _SIGNAL_CODES.items()}
_SEGMENT_SUFFIX: Final = ".seg"
_MAX_IOV: Final = 512
_RESYNC_CHUNK: Final = 1 << 20

Pread = Callable[[int, int], bytes]


def encode_record(seq: int, signal: Signal, items: int, payload: bytes) -> bytes:
    """The frame header of one record (the payload follows it)."""
    body = _CRC_BODY.pack(len(payload), seq, items, _SIGNAL_CODES[signal], 0)
    crc = zlib.crc32(payload, zlib.crc32(body))
    return MAGIC + body + crc.to_bytes(4, "little")


def _parse(pread: Pread, pos: int, end: int) -> tuple[Record | None, int]:
    """The intact record starting exactly at ``pos`` (and the position after it), or None."""
    if end - pos < HEADER:
        return None, pos
    head = pread(HEADER, pos)
    if len(head) < HEADER or head[:4] != MAGIC:
        return None, pos
    _, length, seq, items, code, _flags, crc = _HEAD.unpack(head)
    stop = pos + HEADER + length
    signal = _SIGNALS_BY_CODE.get(code)
    if stop > end or signal is None:
        return None, pos
    payload = pread(length, pos + HEADER) if length else b""
    if len(payload) != length or zlib.crc32(payload, zlib.crc32(head[4:22])) != crc:
        return None, pos
    return Record(seq, signal, items, payload), stop


def _resync(pread: Pread, pos: int, end: int) -> int | None:
    """Position of the first intact record after ``pos`` (searching for the magic), or None."""
    start = pos + 1
    while start < end:
        chunk = pread(min(_RESYNC_CHUNK, end - start), start)
        if not chunk:
            return None
        i = chunk.find(MAGIC)
        while i >= 0:
            rec, _ = _parse(pread, start + i, end)
            if rec is not None:
                return start + i
            i = chunk.find(MAGIC, i + 1)
        if len(chunk) < len(MAGIC):
            return None
        start += len(chunk) - (len(MAGIC) - 1)  # a magic may straddle two chunks
    return None


def next_record(pread: Pread, pos: int, end: int) -> tuple[Record | None, int, int]:
    """The first intact record at or after ``pos``.

    Returns:
        ``(record, position after it, damaged bytes skipped before it)``;
        ``(None, end, skipped)`` when no intact record is left before ``end``.
    """
    rec, stop = _parse(pread, pos, end)
    if rec is not None:
        return rec, stop, 0
    good = _resync(pread, pos, end)
    if good is None:
        return None, end, end - pos
    rec, stop = _parse(pread, good, end)
    return rec, stop, good - pos


def _write_all(fd: int, bufs: list[bytes]) -> None:
    """``writev`` every buffer, resuming after partial writes."""
    views = [memoryview(b) for b in bufs if b]
    while views:
        n = os.writev(fd, views[:_MAX_IOV])
        while n > 0 and views:
            if n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][n:]
                n = 0


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _datasync(fd: int) -> None:
    sync = getattr(os, "fdatasync", os.fsync)
    sync(fd)


class _Segment:
    __slots__ = ("end", "first", "last", "path", "sealed")

    def __init__(self, first: int, path: Path, end: int, sealed: bool) -> None:
        self.first = first
        self.path = path
        #: Committed end: bytes readers may read.
        self.end = end
        #: Highest sequence number of an intact record in it (-1: none).
        self.last = -1
        self.sealed = sealed


def _segment_name(first: int) -> str:
    return f"{first:020d}{_SEGMENT_SUFFIX}"


class SegmentLog:
    """A :class:`~agent.extensions.storage.StorageClient` over one directory.

    Args:
        directory: the log's own directory (created if missing).
        fsync: ``fdatasync`` after every append and state write.
        lock_timeout: how long :meth:`open` waits for another process's lock.
        segment_bytes: size at which a segment is closed and a new one begun.
        dir_mode: permissions of a created directory (minus the umask).
    """

    def __init__(self, directory: Path, *, fsync: bool = False, lock_timeout: float = 1.0,
                 segment_bytes: int = DEFAULT_SEGMENT_BYTES, dir_mode: int = 0o750) -> None:
        if segment_bytes <= HEADER:
            raise ValueError("segment_bytes too small")
        self.directory = directory
        self._fsync = fsync
        self._lock_timeout = max(0.0, lock_timeout)
        self._segment_bytes = segment_bytes
        self._dir_mode = dir_mode
        self._lock = threading.Lock()
        self._segments: list[_Segment] = []
        self._read_seq = 0
        self._unacked: set[int] = set()
        self._next_seq = 0
        self._lock_fd: int | None = None
        self._opened = False
        self._closed = False
        # writer (append)
        self._active: _Segment | None = None
        self._wfd: int | None = None
        # reader (read)
        self._rseg: _Segment | None = None
        self._rfd: int | None = None
        self._rpos = 0

    @property
    def state_path(self) -> Path:
        return self.directory / "state"

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    # -- open and recovery --------------------------------------------------------------
    def open(self) -> Recovery:
        """Lock the directory, read the state, scan and clean the segments."""
        if self._opened:
            raise RuntimeError(f"log {self.directory} is already open")
        if not self.directory.is_dir():
            self.directory.mkdir(mode=self._dir_mode, parents=True, exist_ok=True)
            if self._fsync:
                _sync_dir(self.directory.parent)
        self._acquire_lock()
        try:
            return self._recover()
        except BaseException:
            self._release_lock()
            raise

    def _acquire_lock(self) -> None:
        fd = os.open(self.directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self._lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise BlockingIOError(
                        errno.EWOULDBLOCK, f"{self.directory} is in use by another process "
                                           f"(lock not released within {self._lock_timeout:g}s)") from None
                time.sleep(0.05)
            except BaseException:
                os.close(fd)
                raise
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def _recover(self) -> Recovery:
        try:
            (self.directory / "state.tmp").unlink()
        except FileNotFoundError:
            pass
        state = self._read_state()
        segments = self._list_segments()
        read_seq, unacked = state if state is not None else (0, set())
        corrupted = corrupted_bytes = records = items = nbytes = 0
        found: set[int] = set()
        max_seq = -1
        kept: list[_Segment] = []
        for seg in segments:
            data = seg.path.read_bytes()
            view = memoryview(data)

            def pread(n: int, off: int, view: memoryview = view) -> bytes:
                return bytes(view[off:off + n])

            pos, end, deliverable = 0, len(data), 0
            while pos < end:
                rec, pos, skipped = next_record(pread, pos, end)
                if skipped:
                    corrupted += 1
                    corrupted_bytes += skipped
                if rec is None:
                    break
                max_seq = max(max_seq, rec.seq)
                seg.last = max(seg.last, rec.seq)
                if rec.seq >= read_seq or rec.seq in unacked:
                    found.add(rec.seq)
                    deliverable += 1
                    records += 1
                    items += rec.items
                    nbytes += len(rec.payload)
            seg.end = end
            if deliverable:
                kept.append(seg)
            else:
                seg.path.unlink(missing_ok=True)  # only acknowledged (or damaged) data left
        if corrupted:
            log.warning("Skipped %d damaged regions (%d bytes) in %s: a record cut short by a crash or "
                        "failing its checksum; the intact records are kept.", corrupted, corrupted_bytes,
                        self.directory, extra={"corrupted_records": corrupted, "corrupted_bytes": corrupted_bytes})
        with self._lock:
            self._segments = kept
            self._read_seq = read_seq
            self._unacked = unacked & found
            firsts = [s.first + 1 for s in segments]
            self._next_seq = max([read_seq, max_seq + 1, *firsts])
            self._rseg = kept[0] if kept else None
            self._rpos = 0
            self._opened = True
        return Recovery(records=records, items=items, bytes=nbytes, corrupted=corrupted,
                        corrupted_bytes=corrupted_bytes, segments=len(kept),
                        state_valid=state is not None or not segments)

    def _list_segments(self) -> list[_Segment]:
        out = []
        for entry in os.scandir(self.directory):
            name = entry.name
            if not name.endswith(_SEGMENT_SUFFIX) or not entry.is_file():
                continue
            stem = name[:-len(_SEGMENT_SUFFIX)]
            if not stem.isdigit():
                continue
            out.append(_Segment(int(stem), Path(entry.path), 0, True))
        out.sort(key=lambda s: s.first)
        return out

    def _read_state(self) -> tuple[int, set[int]] | None:
        try:
            raw = self.state_path.read_bytes()
        except FileNotFoundError:
            return None
        if len(raw) >= 20 and raw[:4] == _STATE_MAGIC:
            read_seq, n = struct.unpack_from("<QI", raw, 4)
            size = 16 + 8 * n
            if len(raw) == size + 4 and zlib.crc32(raw[:size]) == int.from_bytes(raw[size:], "little"):
                return read_seq, set(struct.unpack_from(f"<{n}Q", raw, 16))
        log.warning("The acknowledgement state %s is damaged; every intact record is delivered again.",
                    self.state_path)
        return None

    # -- append -------------------------------------------------------------------------
    def append(self, entries: Sequence[tuple[Signal, int, bytes]]) -> int:
        """Write records; see :meth:`StorageClient.append`."""
        if not self._opened or self._closed:
            raise ValueError(f"log {self.directory} is not open")
        with self._lock:
            first = self._next_seq
            self._next_seq += len(entries)  # never reused, even if this write fails
        if not entries:
            return first
        seg, fd = self._writable(first)
        bufs: list[bytes] = []
        for i, (signal, items, payload) in enumerate(entries):
            bufs.append(encode_record(first + i, signal, items, payload))
            bufs.append(payload)
        start = seg.end
        try:
            _write_all(fd, bufs)
            if self._fsync:
                _datasync(fd)
        except OSError:
            try:
                os.ftruncate(fd, start)  # O_APPEND: the next write lands at the committed end again
                truncated = True
            except OSError:
                truncated = False  # readers stop at the committed end; a restart skips the torn bytes
            if start or not truncated:
                # A new segment next time, so that this one can be deleted once acknowledged
                # (on a full disk, that is how space comes back).
                self._seal_active()
            raise
        size = start + sum(len(b) for b in bufs)
        with self._lock:
            seg.end = size
            seg.last = first + len(entries) - 1
        if size >= self._segment_bytes:
            self._seal_active()
        return first

    def _writable(self, first: int) -> tuple[_Segment, int]:
        seg, fd = self._active, self._wfd
        if seg is not None and fd is not None:
            return seg, fd
        path = self.directory / _segment_name(first)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if self._fsync:
                _sync_dir(self.directory)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        seg = _Segment(first, path, 0, False)
        with self._lock:
            self._segments.append(seg)
            if self._rseg is None:
                self._rseg, self._rpos = seg, 0
        self._active, self._wfd = seg, fd
        return seg, fd

    def _seal_active(self) -> None:
        if self._wfd is not None:
            try:
                os.close(self._wfd)
            except OSError:
                pass
        with self._lock:
            if self._active is not None:
                self._active.sealed = True
        self._active, self._wfd = None, None

    # -- read ---------------------------------------------------------------------------
    def read(self, max_records: int, max_bytes: int) -> list[Record]:
        """Records not read yet, in order; see :meth:`StorageClient.read`."""
        try:
            return self._read(max_records, max_bytes)
        finally:
            self._close_reader_fd()  # never pin a file that acknowledgements may delete

    def _read(self, max_records: int, max_bytes: int) -> list[Record]:
        out: list[Record] = []
        total = 0
        while len(out) < max(1, max_records) and (not out or total < max_bytes):
            with self._lock:
                seg = self._rseg
                if seg is None:
                    break
                end, sealed = seg.end, seg.sealed
                following = next((s for s in self._segments if s.first > seg.first), None)
            if self._rpos >= end:
                if not sealed or following is None:
                    break
                self._move_reader(following)
                continue
            fd = self._reader_fd(seg)
            if fd is None:  # deleted underneath (fully acknowledged): go on
                self._rpos = end
                continue

            def pread(n: int, off: int, fd: int = fd) -> bytes:
                return os.pread(fd, n, off)

            try:
                rec, self._rpos, _ = next_record(pread, self._rpos, end)  # damage was counted at open
            except OSError:
                if out:
                    return out  # hand over what is taken already; the error comes back next call
                raise
            if rec is None:
                continue
            with self._lock:
                if rec.seq < self._read_seq:
                    if rec.seq not in self._unacked:
                        continue  # acknowledged before the restart
                else:
                    self._read_seq = rec.seq + 1
                    self._unacked.add(rec.seq)
            out.append(rec)
            total += len(rec.payload)
        return out

    def _move_reader(self, seg: _Segment) -> None:
        self._close_reader_fd()
        with self._lock:
            self._rseg, self._rpos = seg, 0

    def _reader_fd(self, seg: _Segment) -> int | None:
        if self._rfd is None:
            try:
                self._rfd = os.open(seg.path, os.O_RDONLY)
            except FileNotFoundError:
                return None
        return self._rfd

    def _close_reader_fd(self) -> None:
        if self._rfd is not None:
            os.close(self._rfd)
            self._rfd = None

    # -- acknowledgements -----------------------------------------------------------------
    def ack(self, seqs: Sequence[int]) -> None:
        """Acknowledge records, reclaim space and persist the state; see :meth:`StorageClient.ack`."""
        with self._lock:
            self._unacked.difference_update(seqs)
            floor = min(self._unacked, default=self._read_seq)
            floor = min(floor, self._read_seq)
            doomed = [seg for seg in self._segments if seg.sealed and seg.last < floor]
            if doomed:
                self._segments = [s for s in self._segments if s not in doomed]
            state = self._encode_state()
        for seg in doomed:
            try:
                seg.path.unlink()
            except FileNotFoundError:
                pass
        self._write_state(state)

    def _encode_state(self) -> bytes:
        unacked = sorted(self._unacked)
        body = _STATE_MAGIC + struct.pack(f"<QI{len(unacked)}Q", self._read_seq, len(unacked), *unacked)
        return body + zlib.crc32(body).to_bytes(4, "little")

    def _write_state(self, state: bytes) -> None:
        tmp = self.directory / "state.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, [state])
            if self._fsync:
                _datasync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(tmp, self.state_path)
        if self._fsync:
            _sync_dir(self.directory)

    # -- close --------------------------------------------------------------------------
    def close(self) -> None:
        """Persist the state (best effort), close the files and release the lock."""
        if self._closed or not self._opened:
            self._closed = True
            return
        self._closed = True
        self._seal_active()  # so that a fully acknowledged active segment is deleted too
        try:
            self.ack(())
        except OSError as e:
            log.warning("Could not write the acknowledgement state of %s at close: %s; records acknowledged "
                        "since the last write will be delivered again.", self.directory, e)
        self._close_reader_fd()
        self._release_lock()

    # -- introspection (tests, diagnostics) -------------------------------------------------
    def segment_files(self) -> list[Path]:
        """The data segment files currently in use, oldest first."""
        with self._lock:
            return [s.path for s in self._segments]

    def unacknowledged(self) -> list[int]:
        """Sequence numbers read but not acknowledged yet."""
        with self._lock:
            return sorted(self._unacked)
