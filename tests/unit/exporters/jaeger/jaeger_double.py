"""An independent Jaeger api_v2 wire decoder and a PostSpans collector double.

The decoder is hand-written from jaegertracing/jaeger-idl's ``model.proto`` and
``collector.proto`` field numbers, on the tests' own wire reader
(tests/protowire.py), and shares no code with the exporter's generated module,
so an encoder mistake cannot cancel out in tests.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from tests.protowire import read_fields

POST_SPANS = "/jaeger.api_v2.CollectorService/PostSpans"
VALUE_TYPES = {0: "STRING", 1: "BOOL", 2: "INT64", 3: "FLOAT64", 4: "BINARY"}
REF_TYPES = {0: "CHILD_OF", 1: "FOLLOWS_FROM"}


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def decode_kv(buf: bytes) -> tuple[str, str, Any]:
    """A KeyValue as ``(key, type name, value)``."""
    key, vtype = "", 0
    vals: dict[int, Any] = {}
    for num, _wt, v in read_fields(buf):
        if num == 1:
            key = v.decode()
        elif num == 2:
            vtype = v
        else:
            vals[num] = v
    name = VALUE_TYPES[vtype]
    if name == "STRING":
        return key, name, vals.get(3, b"").decode()
    if name == "BOOL":
        return key, name, bool(vals.get(4, 0))
    if name == "INT64":
        return key, name, _signed64(vals.get(5, 0))
    if name == "FLOAT64":
        return key, name, struct.unpack("<d", vals.get(6, bytes(8)))[0]
    return key, name, bytes(vals.get(7, b""))


def decode_time(buf: bytes) -> tuple[int, int]:
    """A Timestamp or Duration as ``(seconds, nanos)``."""
    secs = nanos = 0
    for num, _wt, v in read_fields(buf):
        if num == 1:
            secs = _signed64(v)
        elif num == 2:
            nanos = v
    return secs, nanos


def decode_process(buf: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {"service_name": "", "tags": []}
    for num, _wt, v in read_fields(buf):
        if num == 1:
            out["service_name"] = v.decode()
        elif num == 2:
            out["tags"].append(decode_kv(v))
    return out


def decode_span(buf: bytes) -> dict[str, Any]:
    span: dict[str, Any] = {"references": [], "tags": [], "logs": [], "flags": 0, "warnings": [],
                            "start_time": (0, 0), "duration": (0, 0), "process": None, "operation_name": ""}
    for num, _wt, v in read_fields(buf):
        if num == 1:
            span["trace_id"] = bytes(v)
        elif num == 2:
            span["span_id"] = bytes(v)
        elif num == 3:
            span["operation_name"] = v.decode()
        elif num == 4:
            ref: dict[str, Any] = {"ref_type": "CHILD_OF"}
            for rn, _rw, rv in read_fields(v):
                if rn == 1:
                    ref["trace_id"] = bytes(rv)
                elif rn == 2:
                    ref["span_id"] = bytes(rv)
                elif rn == 3:
                    ref["ref_type"] = REF_TYPES[rv]
            span["references"].append(ref)
        elif num == 5:
            span["flags"] = v
        elif num == 6:
            span["start_time"] = decode_time(v)
        elif num == 7:
            span["duration"] = decode_time(v)
        elif num == 8:
            span["tags"].append(decode_kv(v))
        elif num == 9:
            log: dict[str, Any] = {"timestamp": (0, 0), "fields": []}
            for ln, _lw, lv in read_fields(v):
                if ln == 1:
                    log["timestamp"] = decode_time(lv)
                elif ln == 2:
                    log["fields"].append(decode_kv(lv))
            span["logs"].append(log)
        elif num == 10:
            span["process"] = decode_process(v)
        elif num == 11:
            span["process_id"] = v.decode()
        elif num == 12:
            span["warnings"].append(v.decode())
    return span


def decode_post_spans(buf: bytes) -> dict[str, Any]:
    """A PostSpansRequest as ``{"process": ..., "spans": [...]}``."""
    batch: dict[str, Any] = {"process": None, "spans": []}
    for num, _wt, v in read_fields(buf):
        assert num == 1, "PostSpansRequest has only field 1 (batch)"
        for bn, _bw, bv in read_fields(v):
            if bn == 1:
                batch["spans"].append(decode_span(bv))
            elif bn == 2:
                batch["process"] = decode_process(bv)
    return batch


def tags(span: dict[str, Any]) -> dict[str, Any]:
    """Span (or process) tags as ``{key: value}`` (last wins)."""
    return {k: v for k, _t, v in span["tags"]}


@dataclass
class JaegerCollectorDouble:
    """A grpc.aio server implementing ``CollectorService/PostSpans`` with scripted failures.

    ``failures`` is consumed one per call: ``None`` accepts, a
    ``(grpc.StatusCode, details)`` pair aborts the call with that status.
    """

    failures: list[tuple[grpc.StatusCode, str] | None] = field(default_factory=list)
    requests: list[bytes] = field(default_factory=list)
    calls: int = 0
    metadata: list[dict[str, str]] = field(default_factory=list)
    port: int = 0
    on_request: Callable[[bytes], None] | None = None
    _server: Any = None
    _event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def batches(self) -> list[dict[str, Any]]:
        return [decode_post_spans(r) for r in self.requests]

    @property
    def spans(self) -> list[dict[str, Any]]:
        return [s for b in self.batches for s in b["spans"]]

    async def _handle(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.calls += 1
        self.metadata.append({k: v for k, v in context.invocation_metadata() or ()})
        if self.failures:
            failure = self.failures.pop(0)
            if failure is not None:
                await context.abort(failure[0], failure[1])
        self.requests.append(bytes(request))
        self._event.set()
        return b""  # PostSpansResponse is empty

    async def start(self) -> None:
        self._server = grpc.aio.server()
        handler = grpc.method_handlers_generic_handler(
            "jaeger.api_v2.CollectorService",
            {"PostSpans": grpc.unary_unary_rpc_method_handler(self._handle)})
        self._server.add_generic_rpc_handlers((handler,))
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(None)

    async def wait_spans(self, n: int, timeout: float = 10.0) -> None:
        async def loop() -> None:
            while len(self.spans) < n:
                self._event.clear()
                await self._event.wait()
        await asyncio.wait_for(loop(), timeout)
