"""Persistent sending queue: the file_storage segment log, the PersistentQueue and the helper on top.

Crashes are simulated by copying the queue directory while the writer is still live: the copy is
exactly what a SIGKILLed process leaves (written data is in the page cache, nothing is flushed at
exit), and a new log or helper is then opened on the copy.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import shutil
import struct
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.component import ComponentID, Kind, Settings, Signal
from agent.config.decode import decode
from agent.config.loader import load
from agent.config.model import build
from agent.errors import ConfigErrors, ConsumerError, PermanentError, QueueFullError, ShutdownError, ThrottleError
from agent.exporters.helper import BatchConfig, ExporterHelper, QueueConfig, RetryConfig
from agent.exporters.helper.persistent import PersistentQueue, StorageError
from agent.extensions.file_storage.config import Config as StorageConfig
from agent.extensions.file_storage.factory import FileStorage, client_dir_name
from agent.extensions.file_storage.segmentlog import HEADER, SegmentLog
from agent.extensions.storage import StorageExtension
from agent.pdata import PData, Traces
from agent.service import Service
from agent.telemetry.metrics import SelfMetrics
from agent.testing import make_logs, make_traces
from tests.unit.exporters.conftest import Backend, metric

MakeHelper = Callable[..., ExporterHelper]
EXP = "otlp/x"
T = Signal.TRACES
RETRY = RetryConfig(initial_interval=1.0, randomization_factor=0.0, multiplier=2.0, max_interval=10.0,
                    max_elapsed_time=0.0)


def batch_ids(data: PData) -> list[int]:
    """The ``batch_index`` of every span (make_traces tags each span with it)."""
    out = []
    for rs in data.proto.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                for kv in span.attributes:
                    if kv.key == "batch_index":
                        out.append(kv.value.int_value)
    return out


def received_batches(backend: Backend) -> list[int]:
    return sorted({b for _, d in backend.received for b in batch_ids(d)})


def persisted_state(directory: Path) -> tuple[int, list[int]]:
    """``(read_seq, unacknowledged)`` as written in the state file (see segmentlog's docstring)."""
    raw = (directory / "state").read_bytes()
    read_seq, n = struct.unpack_from("<QI", raw, 4)
    return read_seq, list(struct.unpack_from(f"<{n}Q", raw, 16))


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def payload(i: int, n: int = 40) -> bytes:
    return bytes([i % 251]) * n


# -- the segment log -------------------------------------------------------------------------
@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    return tmp_path / "exporter_otlp__traces"


@pytest.fixture
def open_logs() -> Iterator[list[SegmentLog]]:
    logs: list[SegmentLog] = []
    yield logs
    for lg in logs:
        lg.close()


@pytest.fixture
def new_log(open_logs: list[SegmentLog]) -> Callable[..., SegmentLog]:
    def make(directory: Path, **kw: Any) -> SegmentLog:
        lg = SegmentLog(directory, **kw)
        open_logs.append(lg)
        return lg
    return make


def crash_image(src: Path, dst: Path) -> Path:
    """What a SIGKILL at this instant leaves on disk (the lock dies with the process)."""
    shutil.copytree(src, dst)
    return dst


def test_log_round_trip_keeps_seq_signal_items_and_payload(logdir: Path, new_log: Callable[..., SegmentLog]) -> None:
    lg = new_log(logdir)
    assert lg.open().records == 0
    first = lg.append([(T, 3, b"abc"), (T, 0, b""), (T, 7, payload(1, 5000))])
    assert first == 0
    recs = lg.read(10, 1 << 20)
    assert [(r.seq, r.signal, r.items, r.payload) for r in recs] == [
        (0, T, 3, b"abc"), (1, T, 0, b""), (2, T, 7, payload(1, 5000))]
    assert lg.read(10, 1 << 20) == []
    assert lg.unacknowledged() == [0, 1, 2]
    lg.ack([1, 0, 2])
    assert lg.unacknowledged() == []


def test_read_honours_max_records_and_max_bytes(logdir: Path, new_log: Callable[..., SegmentLog]) -> None:
    lg = new_log(logdir)
    lg.open()
    lg.append([(T, 1, payload(i, 100)) for i in range(5)])
    assert [r.seq for r in lg.read(2, 1 << 20)] == [0, 1]
    assert [r.seq for r in lg.read(10, 150)] == [2, 3]  # stops once max_bytes is reached
    assert [r.seq for r in lg.read(10, 1)] == [4]  # at least one


def test_restart_redelivers_unacknowledged_in_order_and_never_acknowledged(
        tmp_path: Path, logdir: Path, new_log: Callable[..., SegmentLog]) -> None:
    lg = new_log(logdir, segment_bytes=300)
    lg.open()
    lg.append([(T, i, payload(i)) for i in range(6)])
    lg.read(4, 1 << 20)  # 0..3 taken: 1 and 3 acknowledged, 0 and 2 still in flight
    lg.ack([1, 3])
    image = crash_image(logdir, tmp_path / "crash")
    again = new_log(image)
    rec = again.open()
    assert (rec.records, rec.items, rec.corrupted, rec.state_valid) == (4, 0 + 2 + 4 + 5, 0, True)
    assert [r.seq for r in again.read(10, 1 << 20)] == [0, 2, 4, 5]
    # new records continue the sequence
    assert again.append([(T, 1, b"x")]) == 6


def test_acknowledged_records_are_not_redelivered_after_a_clean_close(
        logdir: Path, new_log: Callable[..., SegmentLog]) -> None:
    lg = new_log(logdir)
    lg.open()
    lg.append([(T, 1, payload(i)) for i in range(3)])
    lg.ack([r.seq for r in lg.read(10, 1 << 20)])
    lg.close()
    again = new_log(logdir)
    assert again.open().records == 0
    assert again.read(10, 1 << 20) == []
    assert again.segment_files() == []  # nothing left to deliver: the data files are gone


def test_segments_roll_and_are_deleted_once_fully_acknowledged(
        logdir: Path, new_log: Callable[..., SegmentLog]) -> None:
    lg = new_log(logdir, segment_bytes=3 * (HEADER + 40))
    lg.open()
    for i in range(9):
        lg.append([(T, 1, payload(i))])
    files = lg.segment_files()
    assert [f.name for f in files] == ["00000000000000000000.seg", "00000000000000000003.seg",
                                       "00000000000000000006.seg"]
    recs = lg.read(9, 1 << 20)
    lg.ack([0, 1, 3, 4, 5])  # 2 still in flight: the first segment must stay
    assert [f.name for f in lg.segment_files()] == [f.name for f in files]
    assert all(f.exists() for f in files)
    lg.ack([2])
    assert [f.name for f in lg.segment_files()] == ["00000000000000000006.seg"]
    assert not files[0].exists() and not files[1].exists()
    lg.ack([r.seq for r in recs])
    assert not files[2].exists()  # sealed (full) and acknowledged


def test_a_record_cut_mid_way_is_skipped_counted_and_the_rest_delivered(
        tmp_path: Path, logdir: Path, new_log: Callable[..., SegmentLog]) -> None:
    lg = new_log(logdir)
    lg.open()
    lg.append([(T, 1, payload(i, 100)) for i in range(3)])
    image = crash_image(logdir, tmp_path / "crash")
    seg = next(image.glob("*.seg"))
    with seg.open("r+b") as f:  # the process died inside the write of record 2
        f.truncate(seg.stat().st_size - 60)
    again = new_log(image)
    rec = again.open()
    assert (rec.records, rec.corrupted, rec.corrupted_bytes) == (2, 1, HEADER + 40)
    assert [r.payload for r in again.read(10, 1 << 20)] == [payload(0, 100), payload(1, 100)]
    # the torn segment is never appended to: new data goes to a new segment and is read after
    again.append([(T, 1, b"new")])
    assert [r.payload for r in again.read(10, 1 << 20)] == [b"new"]


@pytest.mark.parametrize("offset", [HEADER + 10, 8, 22], ids=["payload-bit", "seq-bit", "crc-bit"])
def test_a_flipped_bit_is_skipped_counted_and_the_rest_delivered(
        tmp_path: Path, logdir: Path, new_log: Callable[..., SegmentLog], offset: int) -> None:
    lg = new_log(logdir)
    lg.open()
    lg.append([(T, 1, payload(i, 100)) for i in range(4)])
    lg.close()
    seg = next(logdir.glob("*.seg"))
    raw = bytearray(seg.read_bytes())
    raw[(HEADER + 100) + offset] ^= 0x10  # a bit of record 1
    seg.write_bytes(bytes(raw))
    again = new_log(logdir)
    rec = again.open()
    assert (rec.records, rec.corrupted) == (3, 1)
    assert [r.seq for r in again.read(10, 1 << 20)] == [0, 2, 3]


def test_a_damaged_length_resynchronises_on_the_next_record(
        logdir: Path, new_log: Callable[..., SegmentLog]) -> None:
    lg = new_log(logdir)
    lg.open()
    lg.append([(T, 1, payload(i, 100)) for i in range(4)])
    lg.close()
    seg = next(logdir.glob("*.seg"))
    raw = bytearray(seg.read_bytes())
    raw[HEADER + 100 + 4: HEADER + 100 + 8] = (10_000_000).to_bytes(4, "little")  # record 1 claims 10 MB
    raw[2 * (HEADER + 100) + 30] ^= 0xFF  # and record 2 is damaged too
    seg.write_bytes(bytes(raw))
    again = new_log(logdir)
    rec = again.open()
    assert (rec.records, rec.corrupted, rec.corrupted_bytes) == (2, 1, 2 * (HEADER + 100))
    assert [r.seq for r in again.read(10, 1 << 20)] == [0, 3]


def test_garbage_only_segment_and_damaged_state_lose_nothing_intact(
        logdir: Path, new_log: Callable[..., SegmentLog]) -> None:
    lg = new_log(logdir)
    lg.open()
    lg.append([(T, 1, payload(i)) for i in range(3)])
    lg.ack([r.seq for r in lg.read(2, 1 << 20)])  # 0 and 1 acknowledged
    lg.close()
    (logdir / "00000000000000000099.seg").write_bytes(b"\x00garbage" * 10)
    state = logdir / "state"
    state.write_bytes(state.read_bytes()[:-1] + b"\x00")
    again = new_log(logdir)
    rec = again.open()
    # the state is unreadable: every intact record is delivered again (duplicates, not loss)
    assert (rec.records, rec.corrupted, rec.state_valid) == (3, 1, False)
    assert [r.seq for r in again.read(10, 1 << 20)] == [0, 1, 2]
    assert again.append([(T, 1, b"x")]) == 100  # sequence numbers never reuse a segment name


def test_a_second_process_cannot_open_a_locked_log(logdir: Path, new_log: Callable[..., SegmentLog]) -> None:
    new_log(logdir).open()
    other = new_log(logdir, lock_timeout=0.1)
    with pytest.raises(BlockingIOError, match="in use by another process"):
        other.open()


def test_disk_full_writes_nothing_and_the_log_keeps_working(
        tmp_path: Path, logdir: Path, new_log: Callable[..., SegmentLog], monkeypatch: pytest.MonkeyPatch) -> None:
    lg = new_log(logdir)
    lg.open()
    lg.append([(T, 1, b"first")])
    real = os.writev

    def short_then_enospc(fd: int, bufs: Any) -> int:
        monkeypatch.setattr(os, "writev", enospc)
        return real(fd, [bytes(bufs[0])[:10]])  # a partial write, then the disk is full

    def enospc(fd: int, bufs: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", short_then_enospc)
    with pytest.raises(OSError) as info:
        lg.append([(T, 1, b"second"), (T, 1, b"third")])
    assert info.value.errno == errno.ENOSPC
    for _ in range(5):  # refused again and again: one new (empty) segment file, not five
        with pytest.raises(OSError):
            lg.append([(T, 1, b"again")])
    assert len(list(logdir.glob("*.seg"))) == 2
    monkeypatch.setattr(os, "writev", real)
    assert lg.append([(T, 1, b"fourth")]) == 8  # in the new segment; the failed seqs are not reused
    assert [r.payload for r in lg.read(10, 1 << 20)] == [b"first", b"fourth"]
    image = crash_image(logdir, tmp_path / "crash")
    again = new_log(image)
    rec = again.open()
    assert (rec.records, rec.corrupted) == (2, 0)  # the partial write was truncated away


def test_acknowledging_reclaims_space_even_when_the_state_cannot_be_written(
        logdir: Path, new_log: Callable[..., SegmentLog], monkeypatch: pytest.MonkeyPatch) -> None:
    lg = new_log(logdir, segment_bytes=HEADER + 40)
    lg.open()
    lg.append([(T, 1, payload(0))])
    lg.append([(T, 1, payload(1))])
    first = lg.segment_files()[0]
    lg.read(10, 1 << 20)

    def full(*a: Any, **kw: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", full)
    with pytest.raises(OSError):
        lg.ack([0])
    assert not first.exists()  # space came back before the state write failed
    monkeypatch.undo()
    lg.ack([])
    assert lg.unacknowledged() == [1]


# -- the file_storage extension ------------------------------------------------------------------
def test_file_storage_config_is_the_collectors_with_create_directory_on() -> None:
    cfg = decode(StorageConfig, {"directory": "/x", "timeout": "2s", "fsync": True,
                                 "compaction": {"on_start": True, "on_rebound": True, "directory": "/tmp",
                                                "max_transaction_size": 65536, "check_interval": "5s",
                                                "cleanup_on_start": True}}, "extensions.file_storage")
    assert (cfg.directory, cfg.timeout, cfg.fsync, cfg.create_directory, cfg.dir_mode) == ("/x", 2.0, True, True,
                                                                                            0o750)
    assert StorageConfig().directory == "" and not StorageConfig().fsync
    with pytest.raises(ConfigErrors, match="directory_permissions"):
        decode(StorageConfig, {"directory_permissions": "rwx"}, "extensions.file_storage")
    with pytest.raises(ConfigErrors, match="max transaction size"):
        decode(StorageConfig, {"compaction": {"max_transaction_size": -1}}, "extensions.file_storage")


def test_client_directories_are_named_and_sanitized_as_the_collector() -> None:
    assert client_dir_name(Kind.EXPORTER, ComponentID("otlp"), "traces") == "exporter_otlp__traces"
    assert client_dir_name(Kind.EXPORTER, ComponentID("otlp", "a/b~c"), "logs") == "exporter_otlp_a~002Fb~007Ec_logs"


async def test_file_storage_defaults_to_the_data_dir_and_creates_it(
        tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    ext = FileStorage(make_settings("file_storage", Kind.EXTENSION, data_dir=str(tmp_path / "data")), StorageConfig())
    assert isinstance(ext, StorageExtension)
    with pytest.raises(RuntimeError, match="not started"):
        ext.get_client(Kind.EXPORTER, ComponentID("otlp"), "traces")
    await ext.start(None)  # type: ignore[arg-type]
    assert (tmp_path / "data" / "file_storage").is_dir()
    client = ext.get_client(Kind.EXPORTER, ComponentID("otlp"), "traces")
    assert client.directory == tmp_path / "data" / "file_storage" / "exporter_otlp__traces"
    with pytest.raises(RuntimeError, match="already in use"):
        ext.get_client(Kind.EXPORTER, ComponentID("otlp"), "traces")
    client.open()
    await ext.shutdown()  # closes what the owner left open
    assert client.closed


async def test_file_storage_without_create_directory_fails_start_clearly(
        tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    ext = FileStorage(make_settings("file_storage", Kind.EXTENSION),
                      StorageConfig(directory=str(tmp_path / "missing"), create_directory=False))
    with pytest.raises(RuntimeError, match="does not exist; create it or set create_directory: true"):
        await ext.start(None)  # type: ignore[arg-type]
    (tmp_path / "file").write_text("x")
    ext = FileStorage(make_settings("file_storage", Kind.EXTENSION), StorageConfig(directory=str(tmp_path / "file")))
    with pytest.raises(RuntimeError, match="is not a directory"):
        await ext.start(None)  # type: ignore[arg-type]


# -- the helper with a persistent queue --------------------------------------------------------
class StorageHost:
    """A host whose only extension is ``file_storage`` (or nothing)."""

    def __init__(self, ext: object | None) -> None:
        self.ext = ext

    def get_extension(self, cid: ComponentID) -> Any:
        return self.ext if str(cid) == "file_storage" else None

    def is_ready(self) -> bool:
        return True


@pytest.fixture
async def storage(tmp_path: Path, make_settings: Callable[..., Settings]) -> AsyncIterator[FileStorage]:
    ext = FileStorage(make_settings("file_storage", Kind.EXTENSION), StorageConfig(directory=str(tmp_path / "fs")))
    await ext.start(None)  # type: ignore[arg-type]
    yield ext
    await ext.shutdown()


@pytest.fixture
def qdir(tmp_path: Path) -> Path:
    return tmp_path / "fs" / "exporter_otlp_x_traces"


def pqueue(**kw: Any) -> QueueConfig:
    base: dict[str, Any] = {"storage": "file_storage", "queue_size": 100, "num_consumers": 2}
    base.update(kw)
    return QueueConfig(**base)


def sent(t: SelfMetrics) -> float:
    return metric(t, "otelcol_exporter_sent_spans_total", exporter=EXP)


def failed(t: SelfMetrics) -> float:
    return metric(t, "otelcol_exporter_send_failed_spans_total", exporter=EXP)


def enqueue_failed(t: SelfMetrics) -> float:
    return metric(t, "otelcol_exporter_enqueue_failed_spans_total", exporter=EXP)


async def started(make_helper: MakeHelper, backend: Backend, ext: object, **kw: Any) -> ExporterHelper:
    kw.setdefault("signals", frozenset({T}))
    h = make_helper(backend, **kw)
    await h.start(StorageHost(ext))
    return h


async def test_round_trip_through_the_disk(make_helper: MakeHelper, storage: FileStorage, qdir: Path,
                                           telemetry: SelfMetrics) -> None:
    backend = Backend()
    h = await started(make_helper, backend, storage, queue=pqueue())
    assert h.persistent
    for i in range(5):
        await h.consume_traces(make_traces(2, batch_index=i))
    await backend.wait(lambda: backend.count() == 10)
    await h.shutdown()
    assert received_batches(backend) == [0, 1, 2, 3, 4]
    assert (sent(telemetry), failed(telemetry), h.queue_size(T)) == (10, 0, 0)
    assert not list(qdir.glob("*.seg"))  # everything acknowledged: the data files are gone
    assert metric(telemetry, "otelcol_exporter_queue_size", exporter=EXP, data_type="traces") == 0
    assert metric(telemetry, "otelcol_exporter_queue_capacity", exporter=EXP, data_type="traces") == 100


async def test_accepted_means_on_disk_before_consume_returns(
        make_helper: MakeHelper, storage: FileStorage, qdir: Path, tmp_path: Path,
        make_settings: Callable[..., Settings]) -> None:
    h = await started(make_helper, Backend(gate=asyncio.Event()), storage, queue=pqueue(), grace=0.1)
    for i in range(3):
        await h.consume_traces(make_traces(1, batch_index=i))
    image = crash_image(qdir, tmp_path / "image" / qdir.name)  # SIGKILL now
    lg = SegmentLog(image)
    try:
        assert lg.open().records == 3
        assert sorted(b for r in lg.read(10, 1 << 20) for b in batch_ids(Traces.parse(r.payload))) == [0, 1, 2]
    finally:
        lg.close()
    await h.shutdown()


async def test_restart_redelivers_what_was_not_sent_and_shutdown_counts_nothing_as_failed(
        make_helper: MakeHelper, storage: FileStorage, telemetry: SelfMetrics,
        caplog: pytest.LogCaptureFixture) -> None:
    down = Backend(always=ConsumerError("backend down"))
    h = await started(make_helper, down, storage, queue=pqueue(), retry=RETRY, grace=1.0)
    for i in range(6):
        await h.consume_traces(make_traces(1, batch_index=i))
    await down.wait(lambda: down.calls >= 2)
    with caplog.at_level(logging.INFO):
        await h.shutdown()
    assert (sent(telemetry), failed(telemetry)) == (0, 0)  # persisted, not dropped
    assert any("keeps 6 requests (6 spans) for the next start" in r.getMessage() for r in caplog.records)
    await storage.shutdown()
    await storage.start(None)  # type: ignore[arg-type]

    up = Backend()
    with caplog.at_level(logging.INFO):
        h2 = await started(make_helper, up, storage, queue=pqueue())
    assert any("recovered 6 requests (6 spans)" in r.getMessage() for r in caplog.records)
    assert h2.queue_size(T) == 6
    await up.wait(lambda: up.count() == 6)
    await h2.shutdown()
    assert received_batches(up) == [0, 1, 2, 3, 4, 5]
    assert sent(telemetry) == 6


async def test_crash_redelivers_in_flight_and_queued_but_not_acknowledged(
        make_helper: MakeHelper, storage: FileStorage, qdir: Path, tmp_path: Path,
        make_settings: Callable[..., Settings]) -> None:
    gate = asyncio.Event()
    backend = Backend(gate=gate)
    h = await started(make_helper, backend, storage, queue=pqueue(num_consumers=1))
    for i in range(4):
        await h.consume_traces(make_traces(1, batch_index=i))
    await backend.wait(lambda: backend.calls == 1)  # batch 0 in flight, 1..3 waiting
    gate.set()
    await backend.wait(lambda: backend.count() == 4)
    for i in range(4, 7):
        await h.consume_traces(make_traces(1, batch_index=i))
    await backend.wait(lambda: backend.count() == 7)
    await until(lambda: persisted_state(qdir) == (7, []))  # every acknowledgement is in the state file
    gate.clear()
    await h.consume_traces(make_traces(1, batch_index=7))
    await h.consume_traces(make_traces(1, batch_index=8))
    await backend.wait(lambda: backend.calls == 8)  # batch 7 in flight (unacknowledged), 8 waiting
    image_root = tmp_path / "crash"
    crash_image(qdir, image_root / qdir.name)  # SIGKILL now
    gate.set()
    await h.shutdown()

    ext = FileStorage(make_settings("file_storage/crash", Kind.EXTENSION), StorageConfig(directory=str(image_root)))
    await ext.start(None)  # type: ignore[arg-type]
    up = Backend()
    h2 = await started(make_helper, up, ext, queue=pqueue())
    await up.wait(lambda: up.count() >= 2)
    await h2.shutdown()
    await ext.shutdown()
    assert received_batches(up) == [7, 8]  # acknowledged batches 0..6 are not delivered again


async def test_full_queue_refuses_with_retry_hint_and_counts(
        make_helper: MakeHelper, storage: FileStorage, telemetry: SelfMetrics) -> None:
    h = await started(make_helper, Backend(gate=asyncio.Event()), storage, queue=pqueue(queue_size=2), grace=0.1)
    await h.consume_traces(make_traces(1))
    await h.consume_traces(make_traces(2))
    with pytest.raises(QueueFullError) as info:
        await h.consume_traces(make_traces(3))
    assert info.value.retry_after == pytest.approx(1.0)
    assert enqueue_failed(telemetry) == 3 and h.queue_size(T) == 2
    with pytest.raises(PermanentError):  # can never fit
        await (await started(make_helper, Backend(), storage, queue=pqueue(queue_size=4, sizer="items"),
                             signals=frozenset({Signal.LOGS}))).consume_logs(make_logs(5))
    await h.shutdown()


async def test_block_on_overflow_waits_for_an_acknowledgement(
        make_helper: MakeHelper, storage: FileStorage, telemetry: SelfMetrics) -> None:
    gate = asyncio.Event()
    backend = Backend(gate=gate)
    h = await started(make_helper, backend, storage, queue=pqueue(queue_size=1, block_on_overflow=True))
    await h.consume_traces(make_traces(1, batch_index=0))
    blocked = asyncio.create_task(h.consume_traces(make_traces(1, batch_index=1)))
    await backend.wait(lambda: backend.calls == 1)
    await asyncio.sleep(0.01)
    assert not blocked.done()
    gate.set()
    await asyncio.wait_for(blocked, 5)
    await backend.wait(lambda: backend.count() == 2)
    await h.shutdown()
    assert enqueue_failed(telemetry) == 0


async def test_disk_full_is_a_retryable_refusal_and_no_crash(
        make_helper: MakeHelper, storage: FileStorage, telemetry: SelfMetrics,
        monkeypatch: pytest.MonkeyPatch) -> None:
    backend = Backend()
    h = await started(make_helper, backend, storage, queue=pqueue())
    await h.consume_traces(make_traces(1, batch_index=0))

    def enospc(fd: int, bufs: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", enospc)
    with pytest.raises(StorageError) as info:
        await h.consume_traces(make_traces(3, batch_index=1))
    assert isinstance(info.value, ThrottleError) and info.value.retry_after == pytest.approx(1.0)
    assert "no space left on device" in str(info.value)
    assert enqueue_failed(telemetry) == 3
    monkeypatch.undo()
    await h.consume_traces(make_traces(1, batch_index=2))  # space is back: accepted again
    await backend.wait(lambda: backend.count() == 2)
    await h.shutdown()
    assert received_batches(backend) == [0, 2] and h.queue_size(T) == 0


async def test_permanent_errors_and_exhausted_retries_are_acknowledged_and_counted(
        make_helper: MakeHelper, storage: FileStorage, telemetry: SelfMetrics) -> None:
    retry = RetryConfig(initial_interval=1.0, randomization_factor=0.0, multiplier=1.0, max_interval=1.0,
                        max_elapsed_time=2.5)
    backend = Backend([PermanentError("bad data")] + [ConsumerError("down")] * 4)
    h = await started(make_helper, backend, storage, queue=pqueue(num_consumers=1), retry=retry)
    await h.consume_traces(make_traces(1, batch_index=0))  # permanent: dropped at once
    await h.consume_traces(make_traces(2, batch_index=1))  # retried until max_elapsed_time, then dropped
    await backend.wait(lambda: backend.calls == 4)
    await until(lambda: h.queue_size(T) == 0)
    assert failed(telemetry) == 3
    await h.shutdown()
    await storage.shutdown()
    await storage.start(None)  # type: ignore[arg-type]
    up = Backend()
    h2 = await started(make_helper, up, storage, queue=pqueue())
    assert h2.queue_size(T) == 0
    await h2.shutdown()
    assert up.calls == 0  # dropped means acknowledged: never delivered again


async def test_batching_merges_from_disk_and_acknowledges_every_request(
        make_helper: MakeHelper, storage: FileStorage, telemetry: SelfMetrics, qdir: Path) -> None:
    backend = Backend()
    q = pqueue(sizer="items", queue_size=1000, batch=BatchConfig(flush_timeout=0.05, min_size=10))
    h = await started(make_helper, backend, storage, queue=q, fake_time=False)
    for i in range(10):
        await h.consume_traces(make_traces(2, batch_index=i))
    await backend.wait(lambda: backend.count() == 20)
    await h.shutdown()
    assert backend.calls <= 3 and received_batches(backend) == list(range(10))
    assert sent(telemetry) == 20 and h.queue_size(T) == 0
    assert not list(qdir.glob("*.seg"))


async def test_wait_for_result_returns_after_the_send(make_helper: MakeHelper, storage: FileStorage) -> None:
    gate = asyncio.Event()
    backend = Backend(gate=gate)
    h = await started(make_helper, backend, storage, queue=pqueue(wait_for_result=True))
    task = asyncio.create_task(h.consume_traces(make_traces(1)))
    await backend.wait(lambda: backend.calls == 1)
    assert not task.done()
    gate.set()
    await asyncio.wait_for(task, 5)
    await h.shutdown()


async def test_corrupted_records_are_counted_at_start_and_the_rest_delivered(
        make_helper: MakeHelper, storage: FileStorage, telemetry: SelfMetrics, qdir: Path) -> None:
    h = await started(make_helper, Backend(always=ConsumerError("down")), storage, queue=pqueue(num_consumers=1),
                      retry=RETRY, grace=0.5)
    for i in range(4):
        await h.consume_traces(make_traces(1, batch_index=i))
    await h.shutdown()
    await storage.shutdown()
    seg = next(qdir.glob("*.seg"))
    raw = bytearray(seg.read_bytes())
    raw[HEADER + 20] ^= 0x01  # a bit in record 0's payload
    seg.write_bytes(bytes(raw[:-7]))  # and record 3 cut short
    await storage.start(None)  # type: ignore[arg-type]
    up = Backend()
    h2 = await started(make_helper, up, storage, queue=pqueue())
    await up.wait(lambda: up.count() == 2)
    await h2.shutdown()
    assert received_batches(up) == [1, 2]
    assert metric(telemetry, "otelcol_exporter_queue_corrupted_records_total", exporter=EXP,
                  data_type="traces") == 2


async def test_recovered_size_follows_the_sizer(make_helper: MakeHelper, storage: FileStorage) -> None:
    h = await started(make_helper, Backend(gate=asyncio.Event()), storage,
                      queue=pqueue(sizer="bytes", queue_size=1 << 20), grace=0.0)
    data = [make_traces(3, batch_index=i) for i in range(2)]
    for d in data:
        await h.consume_traces(d)
    await h.shutdown()
    await storage.shutdown()
    await storage.start(None)  # type: ignore[arg-type]
    h2 = await started(make_helper, Backend(gate=asyncio.Event()), storage,
                       queue=pqueue(sizer="bytes", queue_size=1 << 20), grace=0.0)
    assert h2.queue_size(T) == sum(d.byte_size for d in data)
    await h2.shutdown()


async def test_fsync_mode_round_trip(tmp_path: Path, make_settings: Callable[..., Settings],
                                     make_helper: MakeHelper) -> None:
    ext = FileStorage(make_settings("file_storage", Kind.EXTENSION),
                      StorageConfig(directory=str(tmp_path / "fsync"), fsync=True))
    await ext.start(None)  # type: ignore[arg-type]
    backend = Backend()
    h = await started(make_helper, backend, ext, queue=pqueue())
    await asyncio.gather(*(h.consume_traces(make_traces(1, batch_index=i)) for i in range(20)))
    await backend.wait(lambda: backend.count() == 20)
    await h.shutdown()
    await ext.shutdown()


async def test_start_fails_clearly_without_the_storage_extension(
        make_helper: MakeHelper, storage: FileStorage) -> None:
    h = make_helper(Backend(), queue=pqueue(storage="file_storage/other"))
    with pytest.raises(RuntimeError, match=re.escape(
            "storage extension 'file_storage/other' is not configured; define it under extensions and list it "
            "in service.extensions")):
        await h.start(StorageHost(storage))
    with pytest.raises(RuntimeError, match="not configured"):
        await make_helper(Backend(), queue=pqueue()).start(None)
    with pytest.raises(RuntimeError, match="'file_storage' is not a storage extension"):
        await make_helper(Backend(), queue=pqueue()).start(StorageHost(object()))
    with pytest.raises(ShutdownError):  # not started: refuses (retryably), never loses
        await h.consume_traces(make_traces(1))


async def test_start_fails_clearly_when_the_queue_is_locked_and_releases_what_it_opened(
        make_helper: MakeHelper, storage: FileStorage, tmp_path: Path) -> None:
    holder = SegmentLog(tmp_path / "fs" / "exporter_otlp_x_logs")
    holder.open()
    try:
        storage.config = StorageConfig(directory=str(tmp_path / "fs"), timeout=0.1)
        h = make_helper(Backend(), queue=pqueue(), signals=frozenset({Signal.LOGS, T}))
        with pytest.raises(RuntimeError, match=r"cannot open the logs queue: .*in use by another process"):
            await h.start(StorageHost(storage))
    finally:
        holder.close()
    # the traces queue opened before the failure was closed again: it can be taken over
    h = await started(make_helper, Backend(), storage, queue=pqueue())
    await h.shutdown()


async def test_persistent_queue_get_is_cancellation_safe(tmp_path: Path) -> None:
    lg = SegmentLog(tmp_path / "q")
    q = PersistentQueue(lg, T, "requests", 10)
    await q.open()
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter
    assert await q.put(make_traces(1, batch_index=5), 1)
    entry = await asyncio.wait_for(q.get(), 5)
    assert entry is not None and batch_ids(entry.data) == [5] and q.size == 1
    q.ack(entry.seq, entry.size, entry.items)
    assert q.size == 0 and q.records == 0
    await q.aclose()
    assert await q.get() is None
    with pytest.raises(ShutdownError):
        await q.put(make_traces(1), 1)


# -- wiring through the service ----------------------------------------------------------------------
def service_yaml(tmp_path: Path, port: int, listed: bool) -> str:
    return f"""yaml:
receivers:
  otlp: {{protocols: {{grpc: {{endpoint: "127.0.0.1:{port}"}}}}}}
exporters:
  file: {{path: "{tmp_path}/out.jsonl", sending_queue: {{storage: file_storage}}}}
extensions:
  file_storage: {{directory: "{tmp_path}/fs"}}
service:
  extensions: [{"file_storage" if listed else ""}]
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [file]}}
"""


async def test_service_hands_the_extension_to_the_exporter(tmp_path: Path, free_port: Callable[[], int]) -> None:
    svc = Service(build(load([service_yaml(tmp_path, free_port(), listed=True)], env={})), data_dir=str(tmp_path))
    await svc.start()
    try:
        exporter = svc.graph.exporters[ComponentID("file")]
        assert exporter.helper.persistent
        await exporter.consume_traces(make_traces(2, batch_index=1))
        assert (tmp_path / "fs" / "exporter_file__traces").is_dir()
        await until(lambda: exporter.helper.queue_size(T) == 0)  # sent (shutdown would leave it on disk)
    finally:
        await svc.shutdown()
    assert '"batch_index"' in (tmp_path / "out.jsonl").read_text()


async def test_service_start_fails_when_the_storage_is_not_in_service_extensions(
        tmp_path: Path, free_port: Callable[[], int]) -> None:
    svc = Service(build(load([service_yaml(tmp_path, free_port(), listed=False)], env={})), data_dir=str(tmp_path))
    with pytest.raises(RuntimeError, match=re.escape(
            "exporter file: sending_queue.storage: storage extension 'file_storage' is not configured")):
        await svc.start()
    await svc.shutdown()
