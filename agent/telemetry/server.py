"""Serves the self-metrics in Prometheus text format at ``/metrics``."""

from __future__ import annotations

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from agent.netutil import HTTPServer
from agent.telemetry.metrics import SelfMetrics

__all__ = ["TelemetryServer"]


class TelemetryServer:
    def __init__(self, metrics: SelfMetrics, host: str, port: int) -> None:
        self.metrics = metrics
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
        endpoint = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.server = HTTPServer(app, endpoint, name="service.telemetry.metrics")

    async def _handle(self, request: web.Request) -> web.Response:
        body = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()
