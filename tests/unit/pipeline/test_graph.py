"""Graph semantics: shared receivers, per-pipeline processors, fan-out that
clones only for mutators, connectors, and start/stop ordering."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from agent.component import Capabilities, ComponentID, Factory, Kind, Settings, Signal
from agent.config.model import ComponentConfig, Config, PipelineConfig, PipelineID, TelemetryConfig
from agent.consumer import consume_fn
from agent.errors import ConsumerError, PermanentError
from agent.pdata import PData, ReadOnlyError, Traces
from agent.pipeline import FanOut, Graph
from agent.telemetry.metrics import SelfMetrics
from agent.testing import ErrorConsumer, SinkConsumer, make_logs, make_traces

EVENTS: list[str] = []


@dataclass(frozen=True)
class _Cfg:
    mutates: bool = False


class _Comp:
    def __init__(self, settings: Settings) -> None:
        self.name = f"{settings.kind.value}:{settings.id}:{settings.extra.get('pipeline', '')}"
        self.started = False

    async def start(self, host: object) -> None:
        EVENTS.append("start " + self.name)
        self.started = True

    async def shutdown(self) -> None:
        EVENTS.append("stop " + self.name)


class _Receiver(_Comp):
    def __init__(self, settings: Settings, cfg: _Cfg, consumers: Mapping[Signal, Any]) -> None:
        super().__init__(settings)
        self.consumers = consumers

    async def push(self, signal: Signal, data: PData) -> None:
        await consume_fn(self.consumers[signal], signal)(data)


class _Processor(_Comp):
    """Appends an attribute to every span (mutating) or passes through."""

    def __init__(self, settings: Settings, cfg: _Cfg, signal: Signal, nxt: Any) -> None:
        super().__init__(settings)
        self.mutates = cfg.mutates
        self.next = consume_fn(nxt, signal)
        self.seen: list[PData] = []
        setattr(self, "consume_" + signal.value, self.consume)

    def capabilities(self) -> Capabilities:
        return Capabilities(mutates_data=self.mutates)

    async def consume(self, data: PData) -> None:
        self.seen.append(data)
        if self.mutates:
            data.mutable()
        await self.next(data)


class _Exporter(_Comp, SinkConsumer):
    def __init__(self, settings: Settings, cfg: _Cfg, signals: frozenset[Signal]) -> None:
        _Comp.__init__(self, settings)
        SinkConsumer.__init__(self)
        self.signals = signals


class _Connector(_Comp):
    def __init__(self, settings: Settings, cfg: _Cfg, consumers: Mapping[Signal, Any]) -> None:
        super().__init__(settings)
        self.consumers = consumers

    async def consume_traces(self, td: PData) -> None:
        await consume_fn(self.consumers[Signal.LOGS], Signal.LOGS)(make_logs(td.item_count))


def _f(kind: Kind, typ: str, create: Any, **kw: Any) -> Factory:
    return Factory(type=typ, kind=kind, config_class=_Cfg, create=create, signals=frozenset(Signal), **kw)


RF = _f(Kind.RECEIVER, "r", _Receiver)
PF = _f(Kind.PROCESSOR, "p", _Processor)
EF = _f(Kind.EXPORTER, "e", _Exporter)
CF = Factory(type="c", kind=Kind.CONNECTOR, config_class=_Cfg, create=_Connector,
             connects=frozenset({(Signal.TRACES, Signal.LOGS)}))


def _cc(kind: Kind, f: Factory, name: str, **cfg: Any) -> tuple[ComponentID, ComponentConfig]:
    cid = ComponentID(f.type, name)
    return cid, ComponentConfig(cid, kind, f, _Cfg(**cfg))


def _config(pipes: list[tuple[PipelineID, list[str], list[str], list[str]]], *, mutating: set[str] = frozenset()) -> Config:  # type: ignore[assignment]
    recs = dict(_cc(Kind.RECEIVER, RF, n) for n in ("r1", "r2"))
    procs = dict(_cc(Kind.PROCESSOR, PF, n, mutates=n in mutating) for n in ("p1", "p2", "m1", "m2"))
    exps = dict(_cc(Kind.EXPORTER, EF, n) for n in ("e1", "e2", "e3"))
    conns = dict([_cc(Kind.CONNECTOR, CF, "c1")])
    pcs = {}
    for pid, r, p, e in pipes:
        def ids(names: list[str], typ: str) -> tuple[ComponentID, ...]:
            return tuple(ComponentID(n[0] if n[0] != "m" else "p", n) for n in names)
        pcs[pid] = PipelineConfig(pid, ids(r, "r"), ids(p, "p"), ids(e, "e"))
    procs = {ComponentID("p", k.name): v for k, v in procs.items()}
    return Config(recs, procs, exps, conns, {}, (), pcs, TelemetryConfig(), 1.0)


class _Host:
    def get_extension(self, cid: ComponentID) -> None:
        return None

    def is_ready(self) -> bool:
        return True


T, L = PipelineID(Signal.TRACES), PipelineID(Signal.LOGS)
T2 = PipelineID(Signal.TRACES, "two")


async def test_shared_receiver_per_pipeline_processors_shared_exporter() -> None:
    cfg = _config([(T, ["r1"], ["p1"], ["e1", "e2"]), (T2, ["r1"], ["p1"], ["e2"])])
    g = Graph(cfg, SelfMetrics(process_metrics=False))
    assert len(g.receivers) == 1 and len(g.exporters) == 2
    p_a, p_b = g.pipelines[T].processors[0], g.pipelines[T2].processors[0]
    assert p_a is not p_b  # one processor instance per pipeline
    r = g.receivers[ComponentID("r", "r1")]
    await r.push(Signal.TRACES, make_traces(5))
    e1, e2 = g.exporters[ComponentID("e", "e1")], g.exporters[ComponentID("e", "e2")]
    assert e1.count(Signal.TRACES) == 5
    assert e2.count(Signal.TRACES) == 10  # from both pipelines
    # read-only consumers share one instance: no copies were made
    assert e1.received[Signal.TRACES][0] is e2.received[Signal.TRACES][0]
    assert e1.received[Signal.TRACES][0].read_only


async def test_mutating_pipeline_gets_its_own_copy() -> None:
    cfg = _config([(T, ["r1"], ["m1"], ["e1"]), (T2, ["r1"], ["p1"], ["e2"])], mutating={"m1"})
    g = Graph(cfg, SelfMetrics(process_metrics=False))
    data = Traces.parse(make_traces(3).to_bytes())
    await g.receivers[ComponentID("r", "r1")].push(Signal.TRACES, data)
    e1, e2 = g.exporters[ComponentID("e", "e1")], g.exporters[ComponentID("e", "e2")]
    mutated, shared = e1.received[Signal.TRACES][0], e2.received[Signal.TRACES][0]
    assert mutated is not shared
    assert shared is data and shared.read_only
    assert shared.has_original_bytes  # the read-only pipeline still forwards the wire bytes
    assert not mutated.has_original_bytes  # the mutator dropped its own copy's bytes only
    assert mutated.item_count == 3


async def test_fanout_read_only_data_cannot_be_mutated() -> None:
    a, b = SinkConsumer(), SinkConsumer()
    fan = FanOut(Signal.TRACES, [a, b])
    await fan.consume(make_traces(2))
    with pytest.raises(ReadOnlyError):
        a.received[Signal.TRACES][0].mutable()


async def test_fanout_calls_every_consumer_and_combines_errors() -> None:
    ok = SinkConsumer()
    bad = ErrorConsumer(lambda: PermanentError("bad"))
    retry = ErrorConsumer(lambda: ConsumerError("later"))
    fan = FanOut(Signal.TRACES, [bad, ok, retry])
    with pytest.raises(ConsumerError) as e:
        await fan.consume(make_traces(1))
    assert not isinstance(e.value, PermanentError)  # retryable wins: the client retries
    assert ok.count(Signal.TRACES) == 1 and bad.calls == 1 and retry.calls == 1
    with pytest.raises(PermanentError):
        await FanOut(Signal.TRACES, [bad, ok]).consume(make_traces(1))


async def test_connector_links_pipelines_and_start_stop_order() -> None:
    EVENTS.clear()
    cfg = _config([(T, ["r1"], ["p1"], ["c1"]), (L, ["c1"], ["p2"], ["e1"])])
    g = Graph(cfg, SelfMetrics(process_metrics=False))
    await g.start(_Host())
    await g.receivers[ComponentID("r", "r1")].push(Signal.TRACES, make_traces(4))
    assert g.exporters[ComponentID("e", "e1")].count(Signal.LOGS) == 4
    await g.shutdown()
    starts = [e for e in EVENTS if e.startswith("start")]
    stops = [e for e in EVENTS if e.startswith("stop")]
    assert starts == ["start exporter:e/e1:", "start connector:c/c1:", "start processor:p/p2:logs",
                      "start processor:p/p1:traces", "start receiver:r/r1:"]
    # receivers first, upstream pipeline before the connector, the connector before
    # the pipeline it feeds, exporters last
    assert stops == ["stop receiver:r/r1:", "stop processor:p/p1:traces", "stop connector:c/c1:",
                     "stop processor:p/p2:logs", "stop exporter:e/e1:"]


async def test_failed_start_stops_what_started() -> None:
    EVENTS.clear()

    class Boom(_Receiver):
        async def start(self, host: object) -> None:
            raise RuntimeError("port in use")

    bf = _f(Kind.RECEIVER, "r", Boom)
    cfg = _config([(T, ["r1"], [], ["e1"])])
    cfg.receivers = {cid: ComponentConfig(cid, Kind.RECEIVER, bf, _Cfg()) for cid in cfg.receivers}
    g = Graph(cfg, SelfMetrics(process_metrics=False))
    with pytest.raises(RuntimeError, match="port in use"):
        await g.start(_Host())
    assert EVENTS == ["start exporter:e/e1:", "stop exporter:e/e1:"]


async def test_unused_receiver_is_not_instantiated() -> None:
    cfg = _config([(T, ["r1"], [], ["e1"])])
    g = Graph(cfg, SelfMetrics(process_metrics=False))
    assert set(g.receivers) == {ComponentID("r", "r1")}


async def test_mutation_deep_in_a_pipeline_still_gets_a_copy() -> None:
    # [p1 (read-only), m1 (mutates)]: the receiver's fan-out must clone for this
    # pipeline although its first processor does not mutate.
    cfg = _config([(T, ["r1"], ["p1", "m1"], ["e1"]), (T2, ["r1"], ["p2"], ["e2"])], mutating={"m1"})
    g = Graph(cfg, SelfMetrics(process_metrics=False))
    data = Traces.parse(make_traces(2).to_bytes())
    await g.receivers[ComponentID("r", "r1")].push(Signal.TRACES, data)
    assert g.exporters[ComponentID("e", "e1")].count(Signal.TRACES) == 2
    assert g.exporters[ComponentID("e", "e2")].received[Signal.TRACES][0].has_original_bytes
