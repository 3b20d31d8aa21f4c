"""Loopback OTLP backends for exporter tests: a grpc.aio server and an aiohttp server.

Both record the *raw* request bytes exactly as received (after transport
decompression) and answer from a script: ``None`` = success (with an optional
response body), otherwise a failure description.
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
import zlib
from dataclasses import dataclass, field
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import duration_pb2

from agent.pdata import proto

SERVICES = {
    "opentelemetry.proto.collector.trace.v1.TraceService": "traces",
    "opentelemetry.proto.collector.metrics.v1.MetricsService": "metrics",
    "opentelemetry.proto.collector.logs.v1.LogsService": "logs",
}


def overlong(payload: bytes) -> bytes:
    """Field 1 (LEN) with a valid but non-minimal 3-byte length varint: re-encoding would shorten it."""
    n = len(payload)
    assert n < 1 << 14
    return b"\x0a" + bytes([(n & 0x7F) | 0x80, (n >> 7) | 0x80, 0x00]) + payload


def status_details(code: int, message: str, retry_after: float | None) -> bytes:
    st = proto.RpcStatus()
    st.code = code
    st.message = message
    if retry_after is not None:
        info = proto.RetryInfo()
        info.retry_delay.CopyFrom(duration_pb2.Duration(seconds=int(retry_after),
                                                        nanos=int(retry_after % 1 * 1e9)))
        st.details.add().Pack(info)
    return bytes(st.SerializeToString())


@dataclass
class GrpcFailure:
    code: grpc.StatusCode
    message: str = "scripted failure"
    retry_after: float | None = None


@dataclass
class GrpcOTLPDouble:
    """OTLP/gRPC server on 127.0.0.1 (optionally TLS)."""

    script: list[GrpcFailure | bytes | None] = field(default_factory=list)
    received: list[tuple[str, bytes]] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)
    calls: int = 0
    port: int = 0
    server_credentials: Any = None
    _server: Any = None
    _event: asyncio.Event = field(default_factory=asyncio.Event)

    def _handler(self, signal: str) -> Any:
        async def handle(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            self.calls += 1
            self.metadata.append({k: v for k, v in context.invocation_metadata() or ()})
            step = self.script.pop(0) if self.script else None
            if isinstance(step, GrpcFailure):
                trailing = ()
                if step.retry_after is not None:
                    trailing = (("grpc-status-details-bin",
                                 status_details(step.code.value[0], step.message, step.retry_after)),)
                await context.abort(step.code, step.message, trailing_metadata=trailing)
            self.received.append((signal, bytes(request)))
            self._event.set()
            return step if isinstance(step, bytes) else b""
        return handle

    async def start(self) -> None:
        self._server = grpc.aio.server()
        for service, signal in SERVICES.items():
            h = grpc.method_handlers_generic_handler(
                service, {"Export": grpc.unary_unary_rpc_method_handler(self._handler(signal))})
            self._server.add_generic_rpc_handlers((h,))
        if self.server_credentials is not None:
            self.port = self._server.add_secure_port("127.0.0.1:0", self.server_credentials)
        else:
            self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(None)

    async def wait(self, n: int, timeout: float = 10.0) -> None:
        async def loop() -> None:
            while len(self.received) < n:
                self._event.clear()
                await self._event.wait()
        await asyncio.wait_for(loop(), timeout)


@dataclass
class HttpReply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/x-protobuf"


@dataclass
class HttpOTLPDouble:
    """OTLP/HTTP server on 127.0.0.1 (optionally TLS), any path."""

    script: list[HttpReply | None] = field(default_factory=list)
    received: list[tuple[str, dict[str, str], bytes, bytes]] = field(default_factory=list)  # path, headers, wire, body
    calls: int = 0
    port: int = 0
    ssl_context: ssl.SSLContext | None = None
    _runner: Any = None
    _event: asyncio.Event = field(default_factory=asyncio.Event)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        wire = await request.read()
        enc = request.headers.get("Content-Encoding", "")
        body = gzip.decompress(wire) if enc == "gzip" else zlib.decompress(wire) if enc == "deflate" else wire
        self.received.append((request.path, dict(request.headers), wire, body))
        self._event.set()
        step = self.script.pop(0) if self.script else None
        if step is None:
            return web.Response(status=200, body=b"", content_type="application/x-protobuf")
        return web.Response(status=step.status, body=step.body, headers=step.headers,
                            content_type=step.content_type)

    async def start(self) -> None:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, auto_decompress=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"
