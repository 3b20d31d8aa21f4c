"""The file exporter: config, OTLP/JSON lines, length-prefixed proto, rotation, flushing."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.component import Capabilities, Settings, Signal
from agent.components import lookup
from agent.config.decode import decode
from agent.errors import ConfigErrors, ConsumerError
from agent.exporters.file import FACTORY, Config, FileExporter
from agent.exporters.file.config import RotationConfig
from agent.exporters.file.writer import RotatingFileWriter
from agent.pdata import Logs, Metrics, PData, Traces
from agent.telemetry.metrics import SelfMetrics
from agent.testing import make_logs, make_metrics, make_traces
from tests.unit.exporters.conftest import NoHost, metric

MakeSettings = Callable[..., Settings]


def exporter(make_settings: MakeSettings, **cfg: object) -> FileExporter:
    config = decode(Config, cfg, "exporters.file")
    return FACTORY.create(make_settings("file"), config, frozenset(Signal))  # type: ignore[no-any-return]


def read_frames(path: Path) -> list[bytes]:
    raw, out, pos = path.read_bytes(), [], 0
    while pos < len(raw):
        (n,) = struct.unpack_from(">I", raw, pos)
        out.append(raw[pos + 4: pos + 4 + n])
        pos += 4 + n
    assert pos == len(raw)
    return out


# -- config ------------------------------------------------------------------------------------------
def test_defaults_and_collector_rules() -> None:
    cfg = decode(Config, {"path": "out.jsonl"})
    assert (cfg.format, cfg.append, cfg.rotation, cfg.compression, cfg.flush_interval) == ("json", False, None,
                                                                                          "", 1.0)
    assert cfg.sending_queue is None and cfg.retry_on_failure is None and cfg.timeout == 5.0
    assert decode(Config, {"path": "x", "rotation": None}).rotation == RotationConfig(100, 0, 100, False)
    assert decode(Config, {"path": "x", "flush_interval": 0}).effective_flush_interval == 1.0
    assert lookup(FACTORY.kind, "file") is FACTORY


@pytest.mark.parametrize(("cfg", "message"), [
    ({}, "exporters.file.path: required"),
    ({"path": "x", "append": True, "rotation": {}}, "append and rotation enabled at the same time"),
    ({"path": "x", "append": True, "compression": "zstd"}, "append and compression enabled at the same time"),
    ({"path": "x", "format": "xml"}, "exporters.file.format: invalid value 'xml'"),
    ({"path": "x", "compression": "gzip"}, "compression 'gzip' is not supported"),
    ({"path": "x", "group_by": {"enabled": True}}, "group_by is not implemented by otel-sidecar"),
    ({"path": "x", "encoding": "otlp_encoding"}, "encoding extensions are not implemented by otel-sidecar"),
    ({"path": "x", "flush_interval": "-1s"}, "flush_interval must be larger than zero"),
    ({"path": "x", "directory_permissions": "0700"}, "requires create_directory to be true"),
    ({"path": "x", "create_directory": True, "directory_permissions": "9"}, "valid octal"),
    ({"path": "x", "rotation": {"max_megs": 1}}, "rotation.max_megs: unknown key"),
])
def test_invalid_configs(cfg: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigErrors) as info:
        decode(Config, cfg, "exporters.file")
    assert message in str(info.value)


# -- formats -----------------------------------------------------------------------------------------
async def test_json_lines_are_otlp_json_requests(make_settings: MakeSettings, tmp_path: Path,
                                                 telemetry: SelfMetrics) -> None:
    path = tmp_path / "sub" / "dir" / "out.jsonl"  # parent directories are created
    exp = exporter(make_settings, path=str(path))
    assert exp.capabilities() == Capabilities(mutates_data=False)
    await exp.start(NoHost())
    await exp.consume_traces(make_traces(3))
    await exp.consume_metrics(make_metrics(4))
    await exp.consume_logs(make_logs(5))
    await exp.shutdown()
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    docs = [json.loads(line) for line in lines]
    spans = [sp for rs in docs[0]["resourceSpans"] for ss in rs["scopeSpans"] for sp in ss["spans"]]
    points = [p for rm in docs[1]["resourceMetrics"] for sm in rm["scopeMetrics"] for m in sm["metrics"]
              for p in m["sum"]["dataPoints"]]
    records = [r for rl in docs[2]["resourceLogs"] for sl in rl["scopeLogs"] for r in sl["logRecords"]]
    assert (len(spans), len(points), len(records)) == (3, 4, 5)
    assert metric(telemetry, "otelcol_exporter_sent_spans_total", exporter="file") == 3


@pytest.mark.parametrize(("consume", "make", "cls"), [
    ("consume_traces", make_traces, Traces), ("consume_metrics", make_metrics, Metrics),
    ("consume_logs", make_logs, Logs)])
async def test_proto_is_length_prefixed_and_reads_back(
        make_settings: MakeSettings, tmp_path: Path, consume: str, make: Callable[..., PData],
        cls: type[PData]) -> None:
    path = tmp_path / "out.bin"
    exp = exporter(make_settings, path=str(path), format="proto")
    await exp.start(NoHost())
    sent = [make(i + 1, batch_index=i) for i in range(3)]
    for data in sent:
        await getattr(exp, consume)(data)
    await exp.shutdown()
    frames = read_frames(path)
    assert frames == [d.to_bytes() for d in sent]
    assert [cls.parse(f).item_count for f in frames] == [1, 2, 3]


async def test_zstd_compresses_each_message(make_settings: MakeSettings, tmp_path: Path) -> None:
    cramjam = pytest.importorskip("cramjam")
    path = tmp_path / "out.zst"
    exp = exporter(make_settings, path=str(path), format="proto", compression="zstd")
    await exp.start(NoHost())
    td = make_traces(20)
    await exp.consume_traces(td)
    await exp.shutdown()
    (frame,) = read_frames(path)
    assert bytes(cramjam.zstd.decompress(frame)) == td.to_bytes()


# -- buffering and flushing --------------------------------------------------------------------------
async def test_shutdown_flushes_the_buffer(make_settings: MakeSettings, tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    exp = exporter(make_settings, path=str(path), format="proto", flush_interval="1h")
    await exp.start(NoHost())
    await exp.consume_traces(make_traces(2))
    assert path.stat().st_size == 0  # buffered: nothing written before the interval
    await exp.shutdown()
    assert len(read_frames(path)) == 1


async def test_large_buffer_is_written_at_once(make_settings: MakeSettings, tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    exp = exporter(make_settings, path=str(path), format="proto", flush_interval="1h")
    await exp.start(NoHost())
    big = make_traces(6000, attrs=4)
    assert big.byte_size > 1 << 20
    await exp.consume_traces(big)  # over the 1 MiB threshold: written before consume returns
    assert read_frames(path) == [big.to_bytes()]
    await exp.shutdown()


async def test_periodic_flush(make_settings: MakeSettings, tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    exp = exporter(make_settings, path=str(path), format="proto", flush_interval="10ms")
    await exp.start(NoHost())
    await exp.consume_logs(make_logs(1))
    for _ in range(500):
        if path.stat().st_size:
            break
        await asyncio.sleep(0.01)
    assert len(read_frames(path)) == 1
    await exp.shutdown()


async def test_truncate_by_default_append_on_request(make_settings: MakeSettings, tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    exp = exporter(make_settings, path=str(path), format="proto")
    await exp.start(NoHost())
    await exp.shutdown()
    assert path.read_bytes() == b""
    path.write_bytes(b"old")
    exp = exporter(make_settings, path=str(path), format="proto", append=True)
    await exp.start(NoHost())
    await exp.consume_traces(make_traces(1))
    await exp.shutdown()
    assert path.read_bytes().startswith(b"old") and len(path.read_bytes()) > 3


async def test_unwritable_path_fails_at_start(make_settings: MakeSettings, tmp_path: Path) -> None:
    exp = exporter(make_settings, path=str(tmp_path))  # a directory
    with pytest.raises(OSError):
        await exp.start(NoHost())
    await exp.shutdown()


async def test_write_errors_are_returned_and_logged(make_settings: MakeSettings, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    class Broken(RotatingFileWriter):
        def write(self, frames: object) -> None:
            raise OSError("disk full")

    config = decode(Config, {"path": str(tmp_path / "x.bin"), "format": "proto"})
    exp = FileExporter(make_settings("file"), config, frozenset(Signal), writer=Broken(tmp_path / "x.bin"))
    await exp.start(NoHost())
    with pytest.raises(ConsumerError, match="disk full"):
        await exp.consume_traces(make_traces(6000, attrs=4))
    await exp.shutdown()
    assert any("6000 items lost" in r.getMessage() for r in caplog.records)


# -- rotation ------------------------------------------------------------------------------------------
def test_writer_rotates_by_size_and_keeps_max_backups(tmp_path: Path) -> None:
    now = [1_700_000_000.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    w = RotatingFileWriter(tmp_path / "data.json", rotation=RotationConfig(max_backups=2), max_bytes=100, now=clock)
    w.open()
    frames = [bytes([65 + i]) * 39 + b"\n" for i in range(10)]  # 40-byte lines, 2 per file
    for f in frames:
        w.write([f])
    w.close()
    backups = w.backups()
    assert [p.name for p in backups] == ["data-2023-11-14T22-13-23.000.json", "data-2023-11-14T22-13-24.000.json"]
    kept = b"".join(p.read_bytes() for p in [*backups, tmp_path / "data.json"])
    assert kept == b"".join(frames[4:])  # the newest data, in order, never split across files
    assert all(len(p.read_bytes()) == 80 for p in backups)


def test_writer_prunes_by_age_and_never_overwrites(tmp_path: Path) -> None:
    now = [1_700_000_000.0]
    w = RotatingFileWriter(tmp_path / "log", rotation=RotationConfig(max_backups=0, max_days=1), max_bytes=10,
                           now=lambda: now[0])
    for _ in range(3):  # same millisecond: names step forward instead of overwriting
        w.write([b"x" * 10])
    assert len(w.backups()) == 2
    now[0] += 2 * 86400
    w.write([b"y" * 10])  # rotation prunes the two-day-old backups
    assert [p.name for p in w.backups()] == ["log-2023-11-16T22-13-20.000"]
    w.close()
    with pytest.raises(ValueError):
        w.write([b"z"])


def test_oversized_frame_is_written_alone(tmp_path: Path) -> None:
    w = RotatingFileWriter(tmp_path / "f.bin", rotation=RotationConfig(), max_bytes=10)
    w.write([b"a" * 4, b"b" * 25, b"c" * 4])
    w.close()
    assert (tmp_path / "f.bin").read_bytes() == b"c" * 4
    assert [p.read_bytes() for p in w.backups()] == [b"a" * 4, b"b" * 25]


async def test_exporter_rotation_end_to_end(make_settings: MakeSettings, tmp_path: Path) -> None:
    path = tmp_path / "traces.bin"
    config = decode(Config, {"path": str(path), "format": "proto", "rotation": {"max_backups": 3}})
    assert config.rotation is not None
    writer = RotatingFileWriter(path, rotation=config.rotation, max_bytes=4096)
    exp = FileExporter(make_settings("file"), config, frozenset(Signal), writer=writer)
    await exp.start(NoHost())
    sent = [make_traces(10, batch_index=i) for i in range(40)]
    for td in sent:
        await exp.consume_traces(td)
    await exp.shutdown()
    backups = writer.backups()
    assert len(backups) == 3
    frames = [f for p in [*backups, path] for f in read_frames(p)]
    assert frames == [td.to_bytes() for td in sent][-len(frames):]  # newest kept, whole and in order
