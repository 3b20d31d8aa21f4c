"""Decode-only baseline: a grpc.aio server (and an aiohttp server) that only parse
the OTLP request and count its items. Python's floor for receiving OTLP on this
machine; bench_core.py reports the sidecar as a ratio to it.

Usage: python bench/baseline_server.py GRPC_PORT HTTP_PORT
"""

from __future__ import annotations

import asyncio
import sys

import grpc
from aiohttp import web
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

COUNT = {"traces": 0, "metrics": 0, "logs": 0}
KINDS = {
    "traces": (ExportTraceServiceRequest, ExportTraceServiceResponse),
    "metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse),
    "logs": (ExportLogsServiceRequest, ExportLogsServiceResponse),
}


def _count(kind: str, raw: bytes) -> bytes:
    req_cls, resp_cls = KINDS[kind]
    m = req_cls()
    m.ParseFromString(raw)
    if kind == "traces":
        COUNT[kind] += sum(len(ss.spans) for rs in m.resource_spans for ss in rs.scope_spans)
    elif kind == "logs":
        COUNT[kind] += sum(len(sl.log_records) for rl in m.resource_logs for sl in rl.scope_logs)
    else:
        COUNT[kind] += sum(len(getattr(x, x.WhichOneof("data")).data_points)
                           for rm in m.resource_metrics for sm in rm.scope_metrics for x in sm.metrics)
    return bytes(resp_cls().SerializeToString())


async def main(grpc_port: int, http_port: int) -> None:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20)])
    handlers = {}
    for kind, service in (("traces", "trace.v1.TraceService"), ("metrics", "metrics.v1.MetricsService"),
                          ("logs", "logs.v1.LogsService")):
        async def handle(raw: bytes, ctx: object, _k: str = kind) -> bytes:
            return _count(_k, raw)
        handlers[f"opentelemetry.proto.collector.{service}"] = grpc.method_handlers_generic_handler(
            f"opentelemetry.proto.collector.{service}",
            {"Export": grpc.unary_unary_rpc_method_handler(handle)},
        )
    for h in handlers.values():
        server.add_generic_rpc_handlers((h,))
    server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    await server.start()

    app = web.Application(client_max_size=64 << 20)
    for kind in KINDS:
        async def post(request: web.Request, _k: str = kind) -> web.Response:
            return web.Response(body=_count(_k, await request.read()), content_type="application/x-protobuf")
        app.router.add_post(f"/v1/{kind}", post)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", http_port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
