"""Logs-to-Loki benchmark: OTLP log records in, Loki push requests out, in both encodings.

One command, three parts, all in the same run:

1. **exporter core** (in process, one core): convert + encode + compress the
   512-record payload of ``payloads.logs()`` (protobuf+snappy, JSON+gzip) and,
   for reference, decode only; CPU seconds per 100k records.
2. **decode-only baseline** (``baseline_server.py``) fed by a separate load
   process over gRPC, as in ``bench_core.py``.
3. **the sidecar** (otlp receiver -> batch -> loki exporter) pushing to a null
   Loki (a separate process answering 204), once per encoding, plus once with
   the ``redaction`` processor (presets on) in front. Records/s are the records
   the exporter reported sent (``otelcol_exporter_sent_log_records``) over the
   time from the first request to the end of the drain; CPU is the sidecar's.

Usage: python bench/bench_logs.py [--seconds 4] [--inflight 8] [--transports grpc,http]
The servers are pinned to CPU 0 and the load to CPU 1 when the machine has 2+ cores.
Every run is bounded in time and request count; traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import bench_core
import payloads

ROOT = Path(__file__).resolve().parent.parent
RECORDS = 512


def serve_null_loki(port: int) -> None:
    """A Loki that reads every push and answers 204 (run as ``--serve-null-loki PORT``)."""
    from aiohttp import web

    async def push(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    async def main() -> None:
        app = web.Application(client_max_size=256 << 20)
        app.router.add_post("/loki/api/v1/push", push)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    asyncio.run(main())


# -- part 1: the exporter's own cost -------------------------------------------------------------
def core(seconds: float) -> list[tuple[str, float, int]]:
    """(name, CPU seconds per 100k records, bytes per request) for decode only and each encoding."""
    from agent.config.decode import decode
    from agent.exporters.loki.config import Config
    from agent.exporters.loki.convert import Converter
    from agent.exporters.loki.encode import JSONEncoder, ProtobufEncoder
    from agent.pdata import proto

    raw = payloads.logs(RECORDS)
    rows = []

    def run(name: str, fn: object) -> None:
        n = 0
        size = 0
        t0 = time.process_time()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and n < 2_000:
            size = fn()  # type: ignore[operator]
            n += 1
        cpu = time.process_time() - t0
        rows.append((name, cpu / (n * RECORDS) * 100_000, size))

    def decode_only() -> int:
        m = proto.ExportLogsServiceRequest()
        m.ParseFromString(raw)
        return len(raw)

    run("decode only (baseline)", decode_only)
    for encoding, line_format in (("protobuf", "json"), ("json", "json"), ("protobuf", "raw")):
        cfg = decode(Config, {"endpoint": "http://127.0.0.1:1/loki/api/v1/push", "encoding": encoding,
                              "line_format": line_format})
        conv = Converter(cfg, protobuf=encoding == "protobuf")
        pe, je = ProtobufEncoder(), JSONEncoder(gzip_body=True)

        def step(conv: Converter = conv, encoding: str = encoding, pe: ProtobufEncoder = pe,
                 je: JSONEncoder = je) -> int:
            m = proto.ExportLogsServiceRequest()
            m.ParseFromString(raw)
            batch = conv.convert(m)
            body = pe.encode_compressed(batch.streams) if encoding == "protobuf" else je.encode(batch.streams)
            return len(body)

        label = "protobuf+snappy" if encoding == "protobuf" else "json+gzip"
        run(f"decode+convert+encode {label}, {line_format} lines", step)
    return rows


# -- parts 2 and 3: servers under load --------------------------------------------------------------
def sidecar_config(g: int, h: int, metrics: int, loki: int, encoding: str, redaction: bool) -> str:
    procs = "[redaction, batch]" if redaction else "[batch]"
    return bench_core.otlp_receivers(g, h) + f"""processors:
  batch: {{send_batch_size: 8192, timeout: 200ms}}
  redaction:
    allow_all_keys: true
exporters:
  loki:
    endpoint: "http://127.0.0.1:{loki}/loki/api/v1/push"
    encoding: {encoding}
    sending_queue: {{num_consumers: 4, queue_size: 1000}}
service:
  telemetry: {{logs: {{level: warn}}, metrics: {{address: "127.0.0.1:{metrics}"}}}}
  pipelines:
    logs: {{receivers: [otlp], processors: {procs}, exporters: [loki]}}
"""


def sent_records(metrics_port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    m = re.search(r'^otelcol_exporter_sent_log_records_total\{exporter="loki"\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def measure_sidecar(pid: int, transport: str, port: int, metrics_port: int, body: bytes, seconds: float,
                    inflight: int) -> bench_core.Result:
    fn = bench_core._load_grpc if transport == "grpc" else bench_core._load_http
    asyncio.run(fn(port, "logs", body, 0.5, inflight, 100))  # warm-up
    deadline = time.monotonic() + 30
    before = sent_records(metrics_port)
    while time.monotonic() < deadline:  # let the warm-up drain
        time.sleep(0.3)
        now = sent_records(metrics_port)
        if now == before:
            break
        before = now
    with bench_core.Sampler(pid) as s:
        c0, t0 = s.cpu(), time.monotonic()
        n = asyncio.run(fn(port, "logs", body, seconds, inflight, 20_000))
        target = before + n * RECORDS
        deadline = time.monotonic() + 60
        while sent_records(metrics_port) < target and time.monotonic() < deadline:
            time.sleep(0.02)
        c1, t1 = s.cpu(), time.monotonic()
    sent = sent_records(metrics_port) - before
    return bench_core.Result(int(sent), t1 - t0, c1 - c0, s.peak)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--inflight", type=int, default=8)
    ap.add_argument("--transports", default="grpc")
    ap.add_argument("--serve-null-loki", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_null_loki:
        serve_null_loki(args.serve_null_loki)
        return
    transports = args.transports.split(",")
    body = payloads.logs(RECORDS)

    bench_core.pin(0, 0)
    core_rows = core(min(args.seconds, 3.0))
    bench_core.pin(0, 1)

    rows: list[tuple[str, str, bench_core.Result]] = []
    loki_port = bench_core.free_port()
    with bench_core.running([sys.executable, __file__, "--serve-null-loki", str(loki_port)], loki_port, cpu=1):
        g, h = bench_core.free_port(), bench_core.free_port()
        with bench_core.running(bench_core.baseline_command(g, h), g) as proc:
            for transport in transports:
                r = bench_core.measure(proc.pid, transport, g if transport == "grpc" else h, "logs", body,
                                       args.seconds, args.inflight)
                rows.append(("decode-only baseline", transport, r))
        with tempfile.TemporaryDirectory() as tmp:
            for name, encoding, redaction in (("sidecar -> loki protobuf", "protobuf", False),
                                              ("sidecar -> loki json", "json", False),
                                              ("sidecar + redaction -> loki protobuf", "protobuf", True)):
                g, h, mp = bench_core.free_port(), bench_core.free_port(), bench_core.free_port()
                cfg = Path(tmp) / "bench.yaml"
                cfg.write_text(sidecar_config(g, h, mp, loki_port, encoding, redaction))
                with bench_core.running(bench_core.sidecar_command(cfg), g) as proc:
                    bench_core.wait_port(mp, proc)
                    for transport in transports:
                        port = g if transport == "grpc" else h
                        rows.append((name, transport,
                                     measure_sidecar(proc.pid, transport, port, mp, body, args.seconds, args.inflight)))

    print(f"payload: {len(body)} B / {RECORDS} log records (payloads.logs); {args.inflight} requests in flight; "
          f"{os.cpu_count()} CPUs")
    print("\nexporter core, one core, in process:")
    print(f"  {'step':58} {'CPU s/100k':>10} {'records/CPU-s':>14} {'bytes/request':>14}")
    for name, cpu, size in core_rows:
        print(f"  {name:58} {cpu:10.3f} {100_000 / cpu:14,.0f} {size:14,}")
    base = {t: r for n, t, r in rows if n == "decode-only baseline"}
    print("\nservers under load (server pinned to CPU 0):")
    print(f"  {'server':38} {'transport':9} {'records/s':>10} {'CPU s/100k':>11} {'records/CPU-s':>14} "
          f"{'peak RSS':>9} {'CPU vs baseline':>16}")
    for name, transport, r in rows:
        ratio = r.cpu_per_100k / base[transport].cpu_per_100k if transport in base else float("nan")
        print(f"  {name:38} {transport:9} {r.rate:10,.0f} {r.cpu_per_100k:11.3f} {r.per_cpu_second:14,.0f} "
              f"{r.peak_rss / 2**20:7.1f}Mi {ratio:15.1f}x")


if __name__ == "__main__":
    main()
