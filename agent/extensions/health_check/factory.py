"""Factory and behaviour of the ``health_check`` extension.

``GET <path>`` answers 200 while the host reports every pipeline started, and
503 while starting or draining (SIGTERM), with the collector's JSON body
(``{"status": "Server available", "upSince": ..., "uptime": ...}``) unless
``response_body`` overrides it.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from aiohttp import web

from agent.component import Factory, Host, Kind, Settings, Stability
from agent.extensions.health_check.config import Config
from agent.netutil import HTTPServer

__all__ = ["FACTORY", "HealthCheck"]


class HealthCheck:
    def __init__(self, settings: Settings, config: Config) -> None:
        self.settings = settings
        self.config = config
        self._host: Host | None = None
        self._since = time.time()
        app = web.Application()
        app.router.add_get(config.path, self._handle)
        self.server = HTTPServer(app, config.endpoint, name=f"extension {settings.id}")

    async def _handle(self, request: web.Request) -> web.Response:
        ready = self._host is not None and self._host.is_ready()
        body = self.config.response_body
        if body is not None and (body.healthy if ready else body.unhealthy):
            text = body.healthy if ready else body.unhealthy
            return web.Response(status=200 if ready else 503, text=text)
        up = datetime.fromtimestamp(self._since, UTC).isoformat()
        doc = {
            "status": "Server available" if ready else "Server not available",
            "upSince": up,
            "uptime": f"{time.time() - self._since:.3f}s",
        }
        return web.Response(status=200 if ready else 503, text=json.dumps(doc), content_type="application/json")

    async def start(self, host: Host) -> None:
        self._host = host
        await self.server.start()

    async def shutdown(self) -> None:
        await self.server.stop()


def create(settings: Settings, config: Config) -> HealthCheck:
    return HealthCheck(settings, config)


FACTORY = Factory(
    type="health_check", kind=Kind.EXTENSION, config_class=Config, create=create,
    stability=Stability.BETA, description="HTTP health endpoint for liveness and readiness probes",
)
