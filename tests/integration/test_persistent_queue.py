"""R6 SIGKILL and R6b disk full (reliability.md), small: the persistent queue keeps every
acknowledged request, and a full disk is a retryable refusal that heals once the backlog drains.

The sidecar runs as a subprocess (``python -m agent``): otlp receiver (gRPC) -> otlp exporter with
``sending_queue.storage: file_storage``. Four client threads send requests with unique batch ids
and record which ones were acknowledged (gRPC OK). The sidecar is SIGKILLed at a random point:

1. backend down: killed while clients are sending;
2. backend still down, restarted on the same queue: more requests, killed again mid-traffic;
3. backend up (an OTLP/gRPC double): killed at a random point while the backlog drains;
4. restarted once more: it must deliver every acknowledged id, then stops cleanly (SIGTERM).

Duplicates are allowed (at least once) but bounded: after the kill during delivery, at most the
requests in flight plus a few acknowledgements not yet persisted come twice (``MAX_DUPLICATES``).

The disk-full test mounts a 1 MiB tmpfs (root only; skipped elsewhere) under the queue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from agent.component import ComponentID, Kind, Settings, Signal
from agent.exporters.helper import ExporterHelper, QueueConfig, RetryConfig
from agent.exporters.helper.persistent import StorageError
from agent.extensions.file_storage.config import Config as StorageConfig
from agent.extensions.file_storage.factory import FileStorage
from agent.pdata import PData
from agent.telemetry.metrics import SelfMetrics
from agent.testing import make_traces
from tests.otlp_collector_double import CollectorDouble
from tests.sidecar_process import SidecarProcess

pytestmark = pytest.mark.integration

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
CONSUMERS = 2
CLIENTS = 4
#: Duplicated requests allowed for the one kill during delivery: in flight (num_consumers), read
#: ahead for waiting consumers (<= num_consumers), sent but not yet in the state file (reads wait
#: while num_consumers are; consumers holding a request may add one each).
MAX_DUPLICATES = 4 * CONSUMERS


def sidecar_config(queue_dir: Path, ports: dict[str, int], backend: int) -> str:
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{ports['grpc']}"}}
exporters:
  otlp:
    endpoint: "127.0.0.1:{backend}"
    tls: {{insecure: true}}
    timeout: 1s
    sending_queue:
      storage: file_storage
      num_consumers: {CONSUMERS}
      queue_size: 5000
    retry_on_failure:
      initial_interval: 50ms
      max_interval: 200ms
      max_elapsed_time: 0
extensions:
  health_check: {{endpoint: "127.0.0.1:{ports['health']}"}}
  file_storage:
    directory: "{queue_dir}"
service:
  extensions: [health_check, file_storage]
  shutdown_grace: 2s
  telemetry: {{logs: {{level: warn}}, metrics: {{address: "127.0.0.1:{ports['metrics']}"}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [otlp]}}
"""


class Senders:
    """``CLIENTS`` threads sending one request per id; ``acked`` holds the ids answered OK."""

    def __init__(self, port: int, ids: range) -> None:
        self.port = port
        self.ids = list(ids)
        self.acked: list[int] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(self.ids[i::CLIENTS],), daemon=True)
                        for i in range(CLIENTS)]

    def _run(self, ids: list[int]) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            export = channel.unary_unary(EXPORT)
            for i in ids:
                body = make_traces(3, batch_index=i).to_bytes()
                try:
                    export(body, timeout=5)
                except grpc.RpcError:
                    return  # the sidecar is gone: this and later ids are not acknowledged
                with self.lock:
                    self.acked.append(i)

    def start(self) -> Senders:
        for t in self.threads:
            t.start()
        return self

    def wait_acked(self, n: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < n:
            assert time.monotonic() < deadline, f"only {len(self.acked)} of {n} requests acknowledged"
            time.sleep(0.002)

    def join(self) -> list[int]:
        for t in self.threads:
            t.join(15)
            assert not t.is_alive()
        return sorted(self.acked)


def kill(sidecar: SidecarProcess) -> None:
    assert sidecar.process is not None
    sidecar.process.send_signal(signal.SIGKILL)
    sidecar.process.wait(10)


def delivered(double: CollectorDouble) -> Counter[int]:
    """How many times each batch id reached the backend (a request's spans share one id)."""
    with double._lock:
        requests = list(double.traces)
    out: Counter[int] = Counter()
    for req in requests:
        out.update({kv.value.int_value for rs in req.resource_spans for ss in rs.scope_spans for span in ss.spans
                    for kv in span.attributes if kv.key == "batch_index"})
    return out


def start(tmp_path: Path, name: str, queue_dir: Path, free_port: Callable[[], int], backend: int,
          timings: list[float]) -> SidecarProcess:
    ports = {"grpc": free_port(), "health": free_port(), "metrics": free_port()}
    work = tmp_path / name
    work.mkdir()
    sidecar = SidecarProcess(work, sidecar_config(queue_dir, ports, backend),
                             f"http://127.0.0.1:{ports['health']}/", start_timeout=30)
    t0 = time.monotonic()
    sidecar.__enter__()
    timings.append(time.monotonic() - t0)
    sidecar.ports = ports  # type: ignore[attr-defined]
    return sidecar


def test_sigkill_loses_no_acknowledged_request(tmp_path: Path, free_port: Callable[[], int]) -> None:
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    queue_dir = tmp_path / "queue"
    down = free_port()  # nothing listens there
    timings: list[float] = []
    acked: list[int] = []

    # 1 and 2: backend down, SIGKILL while clients send
    for round_, ids in enumerate((range(0, 300), range(1000, 1300))):
        sidecar = start(tmp_path, f"down-{round_}", queue_dir, free_port, down, timings)
        try:
            senders = Senders(sidecar.ports["grpc"], ids).start()  # type: ignore[attr-defined]
            senders.wait_acked(rng.randrange(50, 200))
            kill(sidecar)
            acked += senders.join()
        finally:
            sidecar.stop()
        assert sidecar.process is not None and sidecar.process.returncode == -signal.SIGKILL

    with CollectorDouble() as double:
        # 3: backend up, SIGKILL at a random point of the drain
        sidecar = start(tmp_path, "up-killed", queue_dir, free_port, double.port, timings)
        try:
            target = rng.randrange(len(acked) // 4, len(acked) * 3 // 4)
            assert double.wait_for(lambda: sum(delivered(double).values()) >= target, 20)
            kill(sidecar)
        finally:
            sidecar.stop()
        before_restart = sum(delivered(double).values())
        # 4: restart, everything acknowledged arrives
        sidecar = start(tmp_path, "up", queue_dir, free_port, double.port, timings)
        try:
            missing = lambda: set(acked) - set(delivered(double))  # noqa: E731
            assert double.wait_for(lambda: not missing(), 20), \
                f"seed {seed}: {len(missing())} acknowledged requests never delivered: {sorted(missing())[:20]}"
        finally:
            assert sidecar.stop() == 0, sidecar.stderr()

    counts = delivered(double)
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    assert set(acked) <= set(counts), f"seed {seed}"
    assert duplicates <= MAX_DUPLICATES, f"seed {seed}: {duplicates} duplicated requests"
    assert len(acked) >= 100 and before_restart > 0
    assert max(timings[1:]) < 10.0, f"restart took {timings}"


# -- R6b: a real full disk ----------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted at ``tmp_path/small`` (skips when mounting is not allowed)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True,
                          timeout=10, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True, timeout=10, check=False)


class _Cfg:
    timeout = 1.0
    sending_queue = QueueConfig(storage="file_storage", queue_size=10_000, num_consumers=2)
    retry_on_failure: RetryConfig | None = RetryConfig(initial_interval=0.02, max_interval=0.05,
                                                       max_elapsed_time=0.0)


class _Host:
    def __init__(self, ext: FileStorage) -> None:
        self.ext = ext

    def get_extension(self, cid: ComponentID) -> FileStorage:
        return self.ext

    def is_ready(self) -> bool:
        return True


async def test_full_disk_is_a_retryable_refusal_and_heals(small_disk: Path) -> None:
    telemetry = SelfMetrics(process_metrics=False)

    def settings(cid: str, kind: Kind) -> Settings:
        return Settings(id=ComponentID.parse(cid), kind=kind, telemetry=telemetry,
                        logger=logging.getLogger(f"test.{cid}"), shutdown_grace=1.0, data_dir=str(small_disk))

    storage = FileStorage(settings("file_storage", Kind.EXTENSION), StorageConfig(directory=str(small_disk / "fs")))
    await storage.start(_Host(storage))
    up = asyncio.Event()
    received: list[int] = []

    async def push(signal: Signal, data: PData) -> None:
        if not up.is_set():
            raise ConnectionError("backend down")
        received.extend(sorted({kv.value.int_value for rs in data.proto.resource_spans for ss in rs.scope_spans
                                for sp in ss.spans for kv in sp.attributes if kv.key == "batch_index"}))

    helper = ExporterHelper(settings("otlp", Kind.EXPORTER), _Cfg(), {Signal.TRACES}, push)
    await helper.start(_Host(storage))
    try:
        accepted: list[int] = []
        refusal: StorageError | None = None
        for i in range(200):  # ~50 KB each: the 1 MiB disk is full long before
            try:
                await helper.consume_traces(make_traces(100, batch_index=i, attrs=6))
            except StorageError as e:
                refusal = e
                break
            accepted.append(i)
        assert refusal is not None and refusal.retry_after > 0 and "no space left" in str(refusal)
        assert 5 < len(accepted) < 200
        assert telemetry.value("otelcol_exporter_enqueue_failed_spans_total", {"exporter": "otlp"}) == 100

        up.set()  # the backend is back: the backlog drains and its space comes back
        async with asyncio.timeout(20):
            while set(received) < set(accepted):
                await asyncio.sleep(0.02)
            while True:  # accepted again once the drained segments are deleted
                try:
                    await helper.consume_traces(make_traces(100, batch_index=1000, attrs=6))
                    break
                except StorageError:
                    await asyncio.sleep(0.05)
            while 1000 not in received:
                await asyncio.sleep(0.02)
    finally:
        await helper.shutdown()
        await storage.shutdown()
