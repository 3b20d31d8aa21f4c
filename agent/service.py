"""The service: config -> graph -> start -> run until SIGTERM/SIGINT -> drain.

Lifecycle:

1. self-telemetry server and extensions start (health answers 503);
2. the graph starts exporters, connectors, processors, then receivers;
3. ready: health answers 200;
4. on SIGTERM or SIGINT: health answers 503, receivers stop accepting (new
   requests get UNAVAILABLE/503 with a retry hint) and shut down, processors
   flush, exporters drain their queues within ``service.shutdown_grace``
   (default 10 s); what could not be sent is counted as dropped;
5. extensions and the telemetry server stop; the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from agent.component import Component, ComponentID, Settings
from agent.config.model import Config
from agent.pdata.proto import warn_if_slow_backend
from agent.pipeline.graph import Graph
from agent.telemetry.metrics import SelfMetrics
from agent.telemetry.server import TelemetryServer

__all__ = ["Service"]

log = logging.getLogger("otel_sidecar.service")


class Service:
    """Runs one validated config. Implements :class:`agent.component.Host`."""

    def __init__(self, config: Config, *, data_dir: str = "./data", telemetry: SelfMetrics | None = None) -> None:
        self.config = config
        self.telemetry = telemetry or SelfMetrics()
        self.graph = Graph(config, self.telemetry, data_dir=data_dir)
        self.extensions: dict[ComponentID, Any] = {}
        for cid in config.service_extensions:
            cc = config.extensions[cid]
            settings = Settings(id=cid, kind=cc.kind, telemetry=self.telemetry,
                                logger=logging.getLogger(f"otel_sidecar.extension.{cid}"),
                                shutdown_grace=config.shutdown_grace, data_dir=data_dir)
            self.extensions[cid] = cc.factory.create(settings, cc.config)
        endpoint = config.telemetry.metrics_endpoint
        self.telemetry_server = TelemetryServer(self.telemetry, *endpoint) if endpoint else None
        self._ready = False
        self._stop = asyncio.Event()
        self._started_ext: list[Any] = []

    # Host -------------------------------------------------------------------------
    def get_extension(self, cid: ComponentID) -> Component | None:
        ext = self.extensions.get(cid)
        return ext if isinstance(ext, Component) else None

    def is_ready(self) -> bool:
        return self._ready

    # lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        """Start everything; on failure, stop what started and re-raise."""
        warn_if_slow_backend(log)
        try:
            if self.telemetry_server is not None:
                await self.telemetry_server.start()
            for ext in self.extensions.values():
                await ext.start(self)
                self._started_ext.append(ext)
            await self.graph.start(self)
        except BaseException:
            await self._stop_outer()
            raise
        self._ready = True
        log.info("Everything is ready. Begin running and processing data.",
                 extra={"pipelines": ", ".join(str(p) for p in self.config.pipelines)})

    async def shutdown(self) -> None:
        """Drain and stop everything (idempotent)."""
        if not self._ready and not self._started_ext and self.telemetry_server is None:
            return
        self._ready = False
        log.info("Shutdown requested: stopping receivers and draining exporters.",
                 extra={"grace_seconds": self.config.shutdown_grace})
        await self.graph.stop_accepting()
        await self.graph.shutdown()
        await self._stop_outer()
        log.info("Shutdown complete.")

    async def _stop_outer(self) -> None:
        for ext in reversed(self._started_ext):
            try:
                await ext.shutdown()
            except Exception:
                log.exception("Extension failed to shut down cleanly.")
        self._started_ext.clear()
        if self.telemetry_server is not None:
            await self.telemetry_server.stop()
            self.telemetry_server = None

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Start, wait for SIGTERM/SIGINT (or :meth:`request_stop`), shut down."""
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.request_stop)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # not the main thread
                pass
        try:
            await self.start()
            await self._stop.wait()
        finally:
            await self.shutdown()
            for sig in installed:
                loop.remove_signal_handler(sig)
