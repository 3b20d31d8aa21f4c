"""Build, start and stop the component graph of a validated :class:`Config`.

Shape (the collector's ``service/internal/graph``):

* one receiver instance per id, shared by every pipeline (and signal) using it;
  for each signal it feeds a fan-out over the entries of those pipelines;
* one processor instance per (pipeline, processor id), chained in order;
* after the last processor, a fan-out to the pipeline's exporters;
* one exporter instance per id, serving every signal it is used with;
* a connector is an exporter in some pipelines and a receiver in others.

Pipelines are built in dependency order (a pipeline feeding a connector is
built after the pipelines the connector feeds); a cycle through connectors is
a configuration error. Start order: exporters, connectors, processors,
receivers; stop order is the reverse, with receivers first.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from agent.component import ComponentID, Host, Settings, Signal
from agent.config.model import ComponentConfig, Config, PipelineConfig, PipelineID
from agent.consumer import capabilities_of
from agent.errors import ConfigError
from agent.pipeline.fanout import FanOut
from agent.telemetry.metrics import SelfMetrics

__all__ = ["Graph"]

log = logging.getLogger("otel_sidecar.graph")


@dataclass
class _Pipeline:
    config: PipelineConfig
    entry: Any = None
    processors: list[Any] = field(default_factory=list)

    @property
    def mutates(self) -> bool:
        """Whether any processor of the pipeline edits data (the collector ORs them)."""
        return any(capabilities_of(p).mutates_data for p in self.processors)


def _fanout(signal: Signal, pipes: list[_Pipeline]) -> FanOut:
    return FanOut(signal, [p.entry for p in pipes], [p.mutates for p in pipes])


class Graph:
    """All component instances of a config, with lifecycle management."""

    def __init__(self, config: Config, telemetry: SelfMetrics, *, data_dir: str = "./data") -> None:
        self.config = config
        self.telemetry = telemetry
        self.data_dir = data_dir
        self.receivers: dict[ComponentID, Any] = {}
        self.exporters: dict[ComponentID, Any] = {}
        self.connectors: dict[ComponentID, Any] = {}
        self.pipelines: dict[PipelineID, _Pipeline] = {}
        self._started: list[Any] = []
        self._build()

    def _settings(self, cc: ComponentConfig, **extra: Any) -> Settings:
        logger = logging.getLogger(f"otel_sidecar.{cc.kind.value}.{cc.id}")
        return Settings(
            id=cc.id, kind=cc.kind, telemetry=self.telemetry, logger=logger,
            shutdown_grace=self.config.shutdown_grace, data_dir=self.data_dir, extra=dict(extra),
        )

    # -- build ------------------------------------------------------------------------
    def _order(self) -> list[PipelineConfig]:
        """Pipelines so that each comes after every pipeline its connectors feed."""
        pcs = self.config.pipelines
        feeds: dict[PipelineID, set[PipelineID]] = {pid: set() for pid in pcs}
        for pid, p in pcs.items():
            for cid in p.exporters:
                if cid in self.config.connectors:
                    feeds[pid] |= {q for q, qc in pcs.items() if cid in qc.receivers}
        order: list[PipelineConfig] = []
        state: dict[PipelineID, int] = {}

        def visit(pid: PipelineID, trail: list[PipelineID]) -> None:
            st = state.get(pid, 0)
            if st == 2:
                return
            if st == 1:
                cyc = " -> ".join(str(x) for x in [*trail, pid])
                raise ConfigError("service.pipelines", f"cycle through connectors: {cyc}")
            state[pid] = 1
            for q in sorted(feeds[pid], key=str):
                visit(q, [*trail, pid])
            state[pid] = 2
            order.append(pcs[pid])

        for pid in sorted(pcs, key=str):
            visit(pid, [])
        return order

    def _exporter(self, cid: ComponentID) -> Any:
        inst = self.exporters.get(cid)
        if inst is None:
            cc = self.config.exporters[cid]
            signals = frozenset(p.id.signal for p in self.config.pipelines.values() if cid in p.exporters)
            inst = cc.factory.create(self._settings(cc), cc.config, signals)
            self.exporters[cid] = inst
        return inst

    def _connector(self, cid: ComponentID) -> Any:
        inst = self.connectors.get(cid)
        if inst is None:
            cc = self.config.connectors[cid]
            consumers: dict[Signal, Any] = {}
            out_signals = {p.id.signal for p in self.config.pipelines.values() if cid in p.receivers}
            for sig in out_signals:
                pipes = [self.pipelines[p.id] for p in self.config.pipelines.values()
                         if cid in p.receivers and p.id.signal is sig]
                consumers[sig] = _fanout(sig, pipes)
            inst = cc.factory.create(self._settings(cc), cc.config, consumers)
            self.connectors[cid] = inst
        return inst

    def _build(self) -> None:
        cfg = self.config
        for pc in self._order():
            signal = pc.id.signal
            outs = [self._connector(c) if c in cfg.connectors else self._exporter(c) for c in pc.exporters]
            nxt: Any = FanOut(signal, outs)
            pipe = _Pipeline(pc)
            for pid in reversed(pc.processors):
                cc = cfg.processors[pid]
                nxt = cc.factory.create(self._settings(cc, pipeline=str(pc.id)), cc.config, signal, nxt)
                pipe.processors.insert(0, nxt)
            pipe.entry = nxt
            self.pipelines[pc.id] = pipe
        for rid, cc in cfg.receivers.items():
            consumers: dict[Signal, Any] = {}
            for sig in Signal:
                pipes = [self.pipelines[p.id] for p in cfg.pipelines.values()
                         if rid in p.receivers and p.id.signal is sig]
                if pipes:
                    consumers[sig] = _fanout(sig, pipes)
            if consumers:  # defined but unused receivers are validated, never started
                self.receivers[rid] = cc.factory.create(self._settings(cc), cc.config, consumers)

    # -- lifecycle --------------------------------------------------------------------
    def _start_order(self) -> list[Any]:
        procs = [p for pipe in self.pipelines.values() for p in reversed(pipe.processors)]
        return [*self.exporters.values(), *self.connectors.values(), *procs, *self.receivers.values()]

    async def start(self, host: Host) -> None:
        """Start exporters, connectors, processors, then receivers.

        On failure every component already started is shut down and the error re-raised."""
        for comp in self._start_order():
            try:
                await comp.start(host)
            except BaseException:
                await self.shutdown()
                raise
            self._started.append(comp)

    async def stop_accepting(self) -> None:
        """Make receivers refuse new data (retryable) while in-flight requests finish."""
        for r in self.receivers.values():
            fn = getattr(r, "stop_accepting", None)
            if fn is not None:
                try:
                    await fn()
                except Exception:
                    log.exception("Receiver failed to stop accepting.")

    async def shutdown(self) -> None:
        """Stop receivers first; then pipelines upstream-first, each pipeline's
        processors in order (so a batch processor flushes into still-running
        consumers), a connector once every pipeline feeding it has stopped;
        exporters last, draining their queues within the shutdown grace."""
        started = set(map(id, self._started))
        order: list[Any] = list(self.receivers.values())
        feeders = {cid: sum(cid in p.exporters for p in self.config.pipelines.values()) for cid in self.connectors}
        for pc in reversed(self._order()):
            order.extend(self.pipelines[pc.id].processors)
            for cid in pc.exporters:
                if cid in feeders:
                    feeders[cid] -= 1
                    if feeders[cid] == 0:
                        order.append(self.connectors[cid])
        for comp in order:
            if id(comp) not in started:
                continue
            try:
                await comp.shutdown()
            except Exception:
                log.exception("Component failed to shut down cleanly.")
        # Exporters drain concurrently, so the whole drain fits in one shutdown_grace.
        exporters = [e for e in self.exporters.values() if id(e) in started]
        for result in await asyncio.gather(*(e.shutdown() for e in exporters), return_exceptions=True):
            if isinstance(result, BaseException):
                log.error("Component failed to shut down cleanly.", exc_info=result)
        self._started.clear()

