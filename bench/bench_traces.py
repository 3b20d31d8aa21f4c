"""Traces benchmark: OTLP forwarding and Jaeger conversion through the sidecar, against a
decode-only baseline, in one run.

Three servers receive the same pre-encoded 512-span OTLP/gRPC requests (bench/payloads.py)
from a separate load process (bench_core's loader), one after the other:

* ``baseline``: bench/baseline_server.py, decode + count (Python's floor for receiving OTLP);
* ``forward``:  sidecar, otlp receiver -> otlp exporter (compression none) -> a decode-only OTLP sink;
* ``forward+gzip``: the same with the exporter's default gzip compression;
* ``jaeger``:   sidecar, otlp receiver -> jaeger exporter -> a PostSpans sink that only counts.

The sinks run in their own process (this script with ``--sink``), so the sidecar's CPU is
measured alone; a measurement ends only when the sink has received every span accepted (the
exporter queue is drained), so queued work is not left out. Printed per server: spans/s,
CPU seconds per 100k spans, spans per CPU-second (what one fully busy core sustains) and the
ratio to the baseline. A last line times the Jaeger conversion + serialization alone
(Converter.convert on one core, in this process).

Goals: forward >= 0.5x the baseline spans per CPU-second; Jaeger conversion >= 50k spans/s.
(gzip is the OTLP exporter's default; on loopback or in-cluster links ``compression: none``
is the cheaper choice, and the forward+gzip row shows what it costs.)

Usage: python bench/bench_traces.py [--seconds 4] [--inflight 8]
Bounded: every phase stops after --seconds (and 20,000 requests); loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_core
import payloads

ROOT = Path(__file__).resolve().parent.parent
SPANS_PER_REQUEST = 512


# -- sink process ---------------------------------------------------------------------------------
async def _sink(otlp_port: int, jaeger_port: int, http_port: int) -> None:
    import grpc
    from aiohttp import web
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    counts = {"otlp_spans": 0, "jaeger_requests": 0, "jaeger_bytes": 0, "jaeger_spans": 0}

    async def export(raw: bytes, ctx: object) -> bytes:
        req = ExportTraceServiceRequest()
        req.ParseFromString(raw)
        counts["otlp_spans"] += sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
        return b""

    async def post_spans(raw: bytes, ctx: object) -> bytes:
        counts["jaeger_requests"] += 1
        counts["jaeger_bytes"] += len(raw)
        # Count spans without decoding them: Batch (field 1) -> spans (field 1) are LEN fields.
        counts["jaeger_spans"] += _count_batch_spans(raw)
        return b""

    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20)])
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler("opentelemetry.proto.collector.trace.v1.TraceService",
                                            {"Export": grpc.unary_unary_rpc_method_handler(export)}),))
    server.add_insecure_port(f"127.0.0.1:{otlp_port}")
    jserver = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20)])
    jserver.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler("jaeger.api_v2.CollectorService",
                                            {"PostSpans": grpc.unary_unary_rpc_method_handler(post_spans)}),))
    jserver.add_insecure_port(f"127.0.0.1:{jaeger_port}")
    await server.start()
    await jserver.start()

    async def count(_request: web.Request) -> web.Response:
        return web.json_response(counts)

    app = web.Application()
    app.router.add_get("/count", count)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", http_port).start()
    await asyncio.Event().wait()


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _count_batch_spans(raw: bytes) -> int:
    """Spans in a PostSpansRequest, by walking field tags only (no decoding)."""
    n = 0
    pos = 0
    while pos < len(raw):
        key, pos = _varint(raw, pos)
        length, pos = _varint(raw, pos)
        if key == 0x0A:  # batch
            end = pos + length
            while pos < end:
                bkey, pos = _varint(raw, pos)
                blen, pos = _varint(raw, pos)
                n += bkey == 0x0A  # Batch.spans
                pos += blen
        else:
            pos += length
    return n


# -- driver ------------------------------------------------------------------------------------------
def sidecar_config(g: int, h: int, name: str, sink_otlp: int, sink_jaeger: int) -> str:
    exporter = "jaeger" if name == "jaeger" else "otlp"
    compression = "gzip" if name == "forward+gzip" else "none"
    exp = (f"otlp: {{endpoint: '127.0.0.1:{sink_otlp}', tls: {{insecure: true}}, compression: {compression}}}"
           if exporter == "otlp" else
           f"jaeger: {{endpoint: '127.0.0.1:{sink_jaeger}', tls: {{insecure: true}}}}")
    return bench_core.otlp_receivers(g, h) + f"""exporters:
  {exp}
service:
  telemetry: {{logs: {{level: warn}}, metrics: {{level: none}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [{exporter}]}}
"""


def sink_count(port: int, key: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=5) as r:
        return int(json.loads(r.read())[key])


def measure(pid: int, port: int, body: bytes, seconds: float, inflight: int,
            drained: tuple[int, str] | None) -> bench_core.Result:
    """Load ``port`` for ``seconds``; when ``drained`` = (sink port, key), wait for the sink to have it all."""
    asyncio.run(bench_core._load_grpc(port, "traces", body, 0.5, inflight, 200))  # warm-up
    base = 0
    if drained is not None:
        time.sleep(1.0)
        base = sink_count(*drained)
    with bench_core.Sampler(pid) as s:
        c0, t0 = s.cpu(), time.monotonic()
        n = asyncio.run(bench_core._load_grpc(port, "traces", body, seconds, inflight, 20_000))
        spans = n * SPANS_PER_REQUEST
        if drained is not None:
            deadline = time.monotonic() + 60
            while sink_count(*drained) - base < spans and time.monotonic() < deadline:
                time.sleep(0.02)
            got = sink_count(*drained) - base
            if got < spans:
                print(f"warning: sink got {got} of {spans} spans", file=sys.stderr)
        else:
            time.sleep(0.3)
        c1, t1 = s.cpu(), time.monotonic()
    wall = t1 - t0 - (0.3 if drained is None else 0)
    return bench_core.Result(spans, wall, c1 - c0, s.peak)


def convert_only(body: bytes, seconds: float = 3.0) -> tuple[float, int]:
    """Spans/s of Converter.convert (conversion + serialization) on one core, and output bytes per request."""
    from agent.exporters.jaeger.convert import Converter

    conv = Converter()
    out = conv.convert(body)
    t0 = time.process_time()
    n = 0
    while time.process_time() - t0 < seconds:
        conv.convert(body)
        n += SPANS_PER_REQUEST
    return n / (time.process_time() - t0), sum(len(o) for o in out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--inflight", type=int, default=8)
    ap.add_argument("--sink", nargs=3, type=int, metavar=("OTLP", "JAEGER", "HTTP"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sink:
        asyncio.run(_sink(*args.sink))
        return
    body = payloads.traces()
    sink_otlp, sink_jaeger, sink_http = (bench_core.free_port() for _ in range(3))
    rows: list[tuple[str, bench_core.Result]] = []
    sink_cmd = [sys.executable, __file__, "--sink", str(sink_otlp), str(sink_jaeger), str(sink_http)]
    with bench_core.running(sink_cmd, sink_http, cpu=1):
        bench_core.pin(0, 1)
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("baseline", "forward", "forward+gzip", "jaeger"):
                g, h = bench_core.free_port(), bench_core.free_port()
                drained: tuple[int, str] | None = None
                if name == "baseline":
                    cmd = bench_core.baseline_command(g, h)
                else:
                    cfg = Path(tmp) / "sidecar.yaml"
                    cfg.write_text(sidecar_config(g, h, name, sink_otlp, sink_jaeger))
                    cmd = bench_core.sidecar_command(cfg)
                    drained = (sink_http, "jaeger_spans" if name == "jaeger" else "otlp_spans")
                with bench_core.running(cmd, g) as proc:
                    rows.append((name, measure(proc.pid, g, body, args.seconds, args.inflight, drained)))
    conv_rate, jaeger_bytes = convert_only(body)
    base = rows[0][1]
    print(f"payload: {len(body)} B / {SPANS_PER_REQUEST} spans per request (Jaeger form: {jaeger_bytes} B); "
          f"{args.inflight} requests in flight; OTLP/gRPC; cpus={os.cpu_count()}")
    print(f"{'server':12} {'spans/s':>10} {'CPU s/100k':>11} {'spans/CPU-s':>12} {'peak RSS':>9} {'vs baseline':>11}")
    for name, r in rows:
        print(f"{name:12} {r.rate:10,.0f} {r.cpu_per_100k:11.3f} {r.per_cpu_second:12,.0f} "
              f"{r.peak_rss / 2**20:7.1f}Mi {r.per_cpu_second / base.per_cpu_second:10.2f}x")
    print(f"jaeger conversion + serialization alone (one core): {conv_rate:,.0f} spans/s "
          f"({1e6 / conv_rate:.1f} us/span)")


if __name__ == "__main__":
    main()
