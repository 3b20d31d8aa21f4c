"""Persistent sending queue throughput: enqueue (receiver OK = written to the file) with and
without fsync, the drain (read back + push + acknowledge), and recovery at start, against the
memory queue. In process, one event loop, the 238 KB trace request of payloads.py, 8 producers.

    .venv/bin/python bench/bench_persistent_queue.py [--requests N] [--fsync-requests N] [--dir DIR]

Writes up to N x 238 KB under DIR (default: a temporary directory, removed afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.component import ComponentID, Kind, Settings, Signal
from agent.exporters.helper import ExporterHelper, QueueConfig, RetryConfig
from agent.extensions.file_storage.config import Config as StorageConfig
from agent.extensions.file_storage.factory import FileStorage
from agent.pdata import PData, Traces
from agent.telemetry.metrics import SelfMetrics
from bench import payloads

PRODUCERS = 8


@dataclass(frozen=True)
class HelperCfg:
    timeout: float = 5.0
    sending_queue: QueueConfig | None = None
    retry_on_failure: RetryConfig | None = None


class Host:
    def __init__(self, ext: Any) -> None:
        self.ext = ext

    def get_extension(self, cid: ComponentID) -> Any:
        return self.ext

    def is_ready(self) -> bool:
        return True


class Backend:
    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.count = 0
        self.done = asyncio.Event()
        self.target = 0

    async def push(self, signal: Signal, data: PData) -> None:
        await self.open.wait()
        self.count += 1
        if self.count >= self.target:
            self.done.set()


def settings(telemetry: SelfMetrics, cid: str, kind: Kind, data_dir: str) -> Settings:
    return Settings(id=ComponentID.parse(cid), kind=kind, telemetry=telemetry,
                    logger=logging.getLogger(f"bench.{cid}"), shutdown_grace=1.0, data_dir=data_dir)


async def run(label: str, data: Traces, n: int, root: Path | None, fsync: bool) -> None:
    telemetry = SelfMetrics(process_metrics=False)
    storage = None
    qc = QueueConfig(queue_size=n + 1, num_consumers=4, storage="file_storage" if root else None)
    if root is not None:
        storage = FileStorage(settings(telemetry, "file_storage", Kind.EXTENSION, str(root)),
                              StorageConfig(directory=str(root / label), fsync=fsync))
        await storage.start(Host(None))  # type: ignore[arg-type]
    backend = Backend()
    backend.target = n
    helper = ExporterHelper(settings(telemetry, "otlp", Kind.EXPORTER, str(root or ".")),
                            HelperCfg(sending_queue=qc, retry_on_failure=RetryConfig()), {Signal.TRACES},
                            backend.push)
    await helper.start(Host(storage))
    queue = asyncio.Queue[int]()
    for i in range(n):
        queue.put_nowait(i)

    async def producer() -> None:
        while not queue.empty():
            queue.get_nowait()
            await helper.consume_traces(data)

    t0 = time.perf_counter()
    await asyncio.gather(*(producer() for _ in range(PRODUCERS)))
    enqueue = time.perf_counter() - t0
    t1 = time.perf_counter()
    backend.open.set()
    await asyncio.wait_for(backend.done.wait(), 600)
    drain = time.perf_counter() - t1
    mb = data.byte_size * n / 1e6
    print(f"{label:<22} enqueue {n / enqueue:8.0f} req/s {mb / enqueue:7.0f} MB/s   "
          f"drain (read+push+ack) {n / drain:8.0f} req/s {mb / drain:7.0f} MB/s")
    await helper.shutdown()
    if storage is not None:
        await storage.shutdown()


async def recovery(data: Traces, n: int, root: Path) -> None:
    """Start with ``n`` requests left on disk: how long the recovery scan takes."""
    telemetry = SelfMetrics(process_metrics=False)
    storage = FileStorage(settings(telemetry, "file_storage", Kind.EXTENSION, str(root)),
                          StorageConfig(directory=str(root / "recovery")))
    await storage.start(Host(None))  # type: ignore[arg-type]
    qc = QueueConfig(queue_size=n + 1, num_consumers=1, storage="file_storage")
    backend = Backend()
    helper = ExporterHelper(settings(telemetry, "otlp", Kind.EXPORTER, str(root)), HelperCfg(sending_queue=qc),
                            {Signal.TRACES}, backend.push)
    await helper.start(Host(storage))
    for _ in range(n):
        await helper.consume_traces(data)
    await helper.shutdown()
    await storage.shutdown()
    await storage.start(Host(None))  # type: ignore[arg-type]
    helper = ExporterHelper(settings(telemetry, "otlp", Kind.EXPORTER, str(root)), HelperCfg(sending_queue=qc),
                            {Signal.TRACES}, backend.push)
    t0 = time.perf_counter()
    await helper.start(Host(storage))
    took = time.perf_counter() - t0
    print(f"{'recovery scan':<22} {n} requests ({data.byte_size * n / 1e6:.0f} MB) in {took:.2f} s "
          f"({data.byte_size * n / 1e6 / took:.0f} MB/s); queue size {helper.queue_size(Signal.TRACES)}")
    backend.open.set()
    await helper.shutdown()
    await storage.shutdown()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--fsync-requests", type=int, default=300)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data = Traces.parse(payloads.traces())
    print(f"request: {data.item_count} spans, {data.byte_size / 1000:.0f} KB; {PRODUCERS} producers; "
          f"{os.cpu_count()} CPUs")
    root = Path(tempfile.mkdtemp(prefix="pq-bench-", dir=args.dir))
    try:
        await run("memory queue", data, args.requests, None, False)
        await run("persistent, fsync off", data, args.requests, root, False)
        await run("persistent, fsync on", data, args.fsync_requests, root, True)
        await recovery(data, args.requests, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
