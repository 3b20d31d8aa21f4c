"""The ``otlp`` exporter: OTLP/gRPC to a collector, Jaeger (>= 1.35) or any OTLP backend.

Sending path (inside the exporter helper's queue -> retry -> timeout chain):

* the request body is :meth:`PData.to_bytes`: the batch's *original wire bytes*
  when nothing modified it (no re-encoding; merged batches are byte
  concatenations), otherwise one serialization;
* the body goes out through a raw-bytes unary call
  (``/opentelemetry.proto.collector.<signal>.v1.<Signal>Service/Export``);
* status codes map to :mod:`agent.errors` per the OTLP retry table
  (:func:`agent.exporters.otlp.grpc_client.error_from_rpc`);
* an OK answer is decoded only to read ``partial_success``: rejected items are
  counted as send failures and logged, never retried.

The helper counts a successful push as sent in full; partially rejected items
are *also* counted in ``otelcol_exporter_send_failed_*``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from google.protobuf.message import DecodeError

from agent import __version__
from agent.component import Host, Settings, Signal
from agent.exporters.helper import BaseExporter
from agent.exporters.otlp.config import Config
from agent.exporters.otlp.grpc_client import GrpcClient
from agent.exporters.otlp.partial import PartialSuccessReporter
from agent.pdata import PData

__all__ = ["METHODS", "OTLPGrpcExporter"]

#: gRPC method of each signal's Export call.
METHODS: Final = {
    Signal.TRACES: "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    Signal.METRICS: "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    Signal.LOGS: "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}


class OTLPGrpcExporter(BaseExporter):
    """OTLP/gRPC exporter for every signal it is created with.

    Args:
        settings: component settings.
        config: the decoded ``otlp`` config.
        signals: signals served by this instance.
        **helper_kw: test hooks forwarded to :class:`BaseExporter` (clock, sleep, rng).
    """

    def __init__(self, settings: Settings, config: Config, signals: Iterable[Signal], **helper_kw: Any) -> None:
        super().__init__(settings, config, signals, **helper_kw)
        self.config = config
        self.client = GrpcClient(config, user_agent=f"otel-sidecar/{__version__}")
        self._partial = PartialSuccessReporter(self.logger)

    async def start_backend(self, host: Host) -> None:
        await self.client.start()

    async def shutdown_backend(self) -> None:
        await self.client.close()

    async def push(self, signal: Signal, data: PData) -> int | None:
        """Send one request; raises per the OTLP retry rules (see module docstring)."""
        reply = await self.client.call(METHODS[signal], data.to_bytes(), self.config.timeout)
        if reply:
            response = data.response_class()
            try:
                response.ParseFromString(reply)
            except DecodeError:
                self.logger.debug("Undecodable OTLP response ignored (%d bytes).", len(reply))
                return None
            return self._partial.report(signal, response)
        return None
