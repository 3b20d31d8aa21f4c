"""Core throughput benchmark: a separate load process sends pre-encoded OTLP
requests over gRPC and HTTP to (a) the sidecar (otlp receiver -> batch ->
exporter) and (b) a decode-only baseline server, in the same run.

Prints, per signal and transport: items/s, the server's CPU seconds per 100k
items, its peak RSS, and the ratio to the baseline's CPU per item (the ratio of
"items per server CPU second", i.e. what one fully busy core would sustain).

Usage: python bench/bench_core.py [--seconds 4] [--inflight 8] [--exporter debug|file]
The server is pinned to CPU 0 and the load to CPU 1 when the machine has 2+ cores.
Every run is bounded in time and request count; traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import payloads

ROOT = Path(__file__).resolve().parent.parent
METHOD = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
ITEMS = {"traces": 512, "metrics": 200, "logs": 512}
ITEM_WORD = {"traces": "spans", "metrics": "points", "logs": "records"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Result:
    items: int
    seconds: float
    cpu: float
    peak_rss: int

    @property
    def rate(self) -> float:
        return self.items / self.seconds

    @property
    def cpu_per_100k(self) -> float:
        return self.cpu / self.items * 100_000

    @property
    def per_cpu_second(self) -> float:
        return self.items / self.cpu if self.cpu else float("inf")


class Sampler:
    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.1)

    def cpu(self) -> float:
        t = self.proc.cpu_times()
        return float(t.user + t.system)

    def __enter__(self) -> Sampler:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


#: One pre-encoded request sent again and again, or several sent in turn.
Bodies = bytes | Sequence[bytes]


def _cycle(body: Bodies) -> list[bytes]:
    return [body] if isinstance(body, bytes) else list(body)


async def _load_grpc(port: int, kind: str, body: Bodies, seconds: float, inflight: int, max_requests: int) -> int:
    """Send ``body`` (several: in turn) from ``inflight`` workers for ``seconds``; return the requests accepted."""
    bodies = _cycle(body)
    done = 0
    deadline = time.monotonic() + seconds
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
        call = ch.unary_unary(METHOD[kind], request_serializer=None, response_deserializer=None)

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline and done < max_requests:
                try:
                    await call(bodies[done % len(bodies)], timeout=30)
                    done += 1
                except grpc.aio.AioRpcError as e:
                    if e.code() == grpc.StatusCode.UNAVAILABLE:  # refused (memory/queue): back off, not counted
                        await asyncio.sleep(0.05)
                    else:
                        raise

        await asyncio.gather(*(worker() for _ in range(inflight)))
    return done


async def _load_http(port: int, kind: str, body: Bodies, seconds: float, inflight: int, max_requests: int) -> int:
    """:func:`_load_grpc` over OTLP/HTTP (protobuf)."""
    bodies = _cycle(body)
    done = 0
    deadline = time.monotonic() + seconds
    url = f"http://127.0.0.1:{port}/v1/{kind}"
    headers = {"Content-Type": "application/x-protobuf"}
    async with aiohttp.ClientSession() as s:
        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline and done < max_requests:
                async with s.post(url, data=bodies[done % len(bodies)], headers=headers) as r:
                    await r.read()
                    if r.status == 200:
                        done += 1
                    elif r.status in (429, 503):
                        await asyncio.sleep(0.05)
                    else:
                        raise RuntimeError(f"HTTP {r.status}")

        await asyncio.gather(*(worker() for _ in range(inflight)))
    return done


def measure(pid: int, transport: str, port: int, kind: str, body: Bodies, seconds: float, inflight: int) -> Result:
    """Warm up, then load ``port`` for ``seconds`` and give the server 0.3 s to finish; its CPU and peak RSS."""
    fn = _load_grpc if transport == "grpc" else _load_http
    asyncio.run(fn(port, kind, body, 0.5, inflight, 200))  # warm-up
    with Sampler(pid) as s:
        c0, t0 = s.cpu(), time.monotonic()
        n = asyncio.run(fn(port, kind, body, seconds, inflight, 20_000))
        # let the server finish what it accepted (batch timer, exporter)
        time.sleep(0.3)
        c1, t1 = s.cpu(), time.monotonic()
    return Result(n * ITEMS[kind], t1 - t0 - 0.3, c1 - c0, s.peak)


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("server did not start")


def otlp_receivers(g: int, h: int) -> str:
    """The benchmarks' ``receivers:`` section: the otlp receiver on gRPC port ``g`` and HTTP port ``h``."""
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{g}", max_recv_msg_size_mib: 64}}
      http: {{endpoint: "127.0.0.1:{h}"}}
"""


def baseline_command(g: int, h: int) -> list[str]:
    """The decode-only baseline server's command line."""
    return [sys.executable, str(ROOT / "bench" / "baseline_server.py"), str(g), str(h)]


def sidecar_command(config: Path) -> list[str]:
    """otel-sidecar's command line with the config file ``config``."""
    return [sys.executable, "-m", "agent", "--config", str(config)]


def sidecar_config(tmp: Path, g: int, h: int, exporter: str) -> str:
    exp = (f"file: {{path: '{tmp}/out.jsonl'}}" if exporter == "file"
           else "debug: {verbosity: basic}")
    name = exporter
    return otlp_receivers(g, h) + f"""processors:
  batch: {{}}
exporters:
  {exp}
service:
  telemetry: {{logs: {{level: warn}}, metrics: {{level: none}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [batch], exporters: [{name}]}}
    metrics: {{receivers: [otlp], processors: [batch], exporters: [{name}]}}
    logs: {{receivers: [otlp], processors: [batch], exporters: [{name}]}}
"""


def pin(proc_pid: int, cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(proc_pid, {cpu})


def run_server(cmd: list[str], grpc_port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    pin(proc.pid, 0)
    wait_port(grpc_port, proc)
    return proc


@contextlib.contextmanager
def running(cmd: list[str], port: int, cpu: int = 0) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` (output discarded, from the repository root) pinned to ``cpu`` once ``port`` accepts
    connections; terminate it at the end of the block."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    pin(proc.pid, cpu)
    try:
        wait_port(port, proc)
        yield proc
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--inflight", type=int, default=8)
    ap.add_argument("--exporter", choices=["debug", "file"], default="debug")
    ap.add_argument("--signals", default="traces,metrics,logs")
    args = ap.parse_args()
    pin(0, 1)
    bodies = {"traces": payloads.traces(), "metrics": payloads.metrics(), "logs": payloads.logs()}
    signals = args.signals.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for server in ("baseline", "sidecar"):
            g, h = free_port(), free_port()
            if server == "baseline":
                cmd = baseline_command(g, h)
            else:
                cfg = Path(tmp) / "bench.yaml"
                cfg.write_text(sidecar_config(Path(tmp), g, h, args.exporter))
                cmd = sidecar_command(cfg)
            with running(cmd, g) as proc:
                for kind in signals:
                    for transport in ("grpc", "http"):
                        port = g if transport == "grpc" else h
                        r = measure(proc.pid, transport, port, kind, bodies[kind], args.seconds, args.inflight)
                        rows.append((server, kind, transport, r))
    base = {(k, t): r for s, k, t, r in rows if s == "baseline"}
    print(f"payloads: traces {len(bodies['traces'])} B/512 spans, metrics {len(bodies['metrics'])} B/200 points, "
          f"logs {len(bodies['logs'])} B/512 records; {args.inflight} requests in flight; exporter={args.exporter}")
    print(f"{'server':9} {'signal':8} {'transport':9} {'items/s':>10} {'CPU s/100k':>11} {'items/CPU-s':>12} "
          f"{'peak RSS':>9} {'vs baseline':>11}")
    for server, kind, transport, r in rows:
        b = base[(kind, transport)]
        ratio = r.per_cpu_second / b.per_cpu_second
        print(f"{server:9} {kind:8} {transport:9} {r.rate:10,.0f} {r.cpu_per_100k:11.3f} {r.per_cpu_second:12,.0f} "
              f"{r.peak_rss / 2**20:7.1f}Mi {ratio:10.2f}x")


if __name__ == "__main__":
    main()
