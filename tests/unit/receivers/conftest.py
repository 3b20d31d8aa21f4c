"""Fixtures for the ``otlp`` receiver tests: start receivers on free loopback
ports, raw gRPC calls (bytes in, bytes out) and RetryInfo parsing."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from agent.component import ComponentID, Kind, Settings, Signal
from agent.config.decode import decode
from agent.pdata import proto
from agent.receivers.otlp.config import Config
from agent.receivers.otlp.factory import create
from agent.receivers.otlp.grpc import SERVICES
from agent.receivers.otlp.receiver import OTLPReceiver
from agent.telemetry.metrics import SelfMetrics
from agent.testing import SinkConsumer


@dataclass
class Running:
    receiver: OTLPReceiver
    sink: SinkConsumer
    telemetry: SelfMetrics

    @property
    def grpc_target(self) -> str:
        addr = self.receiver.grpc_address
        assert isinstance(addr, tuple)
        return f"{addr[0]}:{addr[1]}"

    @property
    def http_url(self) -> str:
        addr = self.receiver.http_address
        assert isinstance(addr, tuple)
        return f"http://{addr[0]}:{addr[1]}"

    def value(self, name: str, transport: str, signal: Signal | None = None) -> float:
        labels = {"receiver": "otlp", "transport": transport}
        if signal is not None:
            labels["otel_signal"] = signal.value
        return self.telemetry.value(name, labels)


Serve = Callable[..., Awaitable[Running]]


@pytest.fixture
def settings(telemetry: SelfMetrics) -> Settings:
    return Settings(id=ComponentID("otlp"), kind=Kind.RECEIVER, telemetry=telemetry,
                    logger=logging.getLogger("test.otlp"))


@pytest.fixture
async def serve(settings: Settings, telemetry: SelfMetrics) -> AsyncIterator[Serve]:
    """``await serve(consumer=..., signals=..., grpc={...} or None, http={...} or None)``."""
    started: list[OTLPReceiver] = []

    async def start(consumer: SinkConsumer | None = None, signals: Sequence[Signal] = tuple(Signal),
                    grpc: dict[str, Any] | None = None, http: dict[str, Any] | None = None,
                    no_grpc: bool = False, no_http: bool = False) -> Running:
        protocols: dict[str, Any] = {}
        if not no_grpc:
            protocols["grpc"] = {"endpoint": "127.0.0.1:0", **(grpc or {})}
        if not no_http:
            protocols["http"] = {"endpoint": "127.0.0.1:0", **(http or {})}
        cfg = decode(Config, {"protocols": protocols})
        sink = consumer if consumer is not None else SinkConsumer()
        receiver = create(settings, cfg, {s: sink for s in signals})
        started.append(receiver)
        await receiver.start(None)
        return Running(receiver, sink, telemetry)

    yield start
    for r in started:
        await r.shutdown()


@dataclass
class GrpcResult:
    code: grpc.StatusCode
    details: str
    response: bytes | None
    trailers: Any

    @property
    def retry_delay(self) -> float | None:
        """RetryInfo.retry_delay from ``grpc-status-details-bin``, in seconds."""
        for key, value in self.trailers or ():
            if key == "grpc-status-details-bin":
                st = proto.RpcStatus.FromString(value)
                for detail in st.details:
                    if detail.Is(proto.RetryInfo.DESCRIPTOR):
                        info = proto.RetryInfo()
                        detail.Unpack(info)
                        return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
        return None


async def grpc_export(target: str, signal: Signal, payload: bytes, *,
                      compression: grpc.Compression | None = None,
                      credentials: grpc.ChannelCredentials | None = None,
                      options: Sequence[tuple[str, Any]] = ()) -> GrpcResult:
    """One raw unary Export call (bytes in, bytes out)."""
    opts = [("grpc.max_send_message_length", 256 << 20), *options]
    channel = (grpc.aio.secure_channel(target, credentials, options=opts) if credentials is not None
               else grpc.aio.insecure_channel(target, options=opts))
    async with channel:
        call = channel.unary_unary(f"/{SERVICES[signal]}/Export")
        try:
            response = await call(payload, timeout=15, compression=compression)
        except grpc.aio.AioRpcError as e:
            return GrpcResult(e.code(), e.details() or "", None, e.trailing_metadata())
        return GrpcResult(grpc.StatusCode.OK, "", response, None)
