"""The tail_sampling processor: policies, timing on a fake clock, bounded memory, late spans, shutdown."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from agent.component import Kind, Settings, Signal
from agent.components import lookup
from agent.config.decode import decode
from agent.errors import ConfigErrors, QueueFullError
from agent.pdata import Traces, proto
from agent.pdata.attributes import upsert_attr
from agent.processors.tail_sampling.config import Config
from agent.processors.tail_sampling.policies import fnv1a64
from agent.processors.tail_sampling.processor import TailSamplingProcessor
from agent.testing import ErrorConsumer, FakeClock, SinkConsumer

MS = 1_000_000
T0 = 1_700_000_000_000_000_000


_NUMBER_OF: dict[bytes, int] = {}


def tid(n: int) -> bytes:
    """A random-looking (hash-based) trace id for trace number ``n``, as real trace ids are."""
    out = hashlib.sha256(n.to_bytes(8, "big")).digest()[:16]
    _NUMBER_OF[out] = n
    return out


def span_spec(trace: int, span: int, *, error: bool = False, dur_ms: int = 10, start_ms: int = 0,
              attrs: dict[str, Any] | None = None, service: str = "svc") -> dict[str, Any]:
    return {"trace": trace, "span": span, "error": error, "dur_ms": dur_ms, "start_ms": start_ms,
            "attrs": attrs or {}, "service": service}


def make(specs: list[dict[str, Any]]) -> Traces:
    """One request; one ResourceSpans per service (in first-seen order), one scope."""
    req = proto.ExportTraceServiceRequest()
    scopes: dict[str, Any] = {}
    for sp in specs:
        ss = scopes.get(sp["service"])
        if ss is None:
            rs = req.resource_spans.add()
            kv = rs.resource.attributes.add()
            kv.key, kv.value.string_value = "service.name", sp["service"]
            rs.schema_url = "https://opentelemetry.io/schemas/1.26.0"
            ss = scopes[sp["service"]] = rs.scope_spans.add()
            ss.scope.name = "tests"
        s = ss.spans.add()
        s.trace_id, s.span_id = tid(sp["trace"]), sp["span"].to_bytes(8, "big")
        s.name = f"t{sp['trace']}-s{sp['span']}"
        s.start_time_unix_nano = T0 + sp["start_ms"] * MS
        s.end_time_unix_nano = s.start_time_unix_nano + sp["dur_ms"] * MS
        if sp["error"]:
            s.status.code = proto.Status.STATUS_CODE_ERROR
        for k, v in sp["attrs"].items():
            upsert_attr(s.attributes, k, v)
    return Traces.parse(req.SerializeToString())


def received_spans(sink: SinkConsumer) -> list[tuple[str, bytes, Any]]:
    """(service, trace id, span) of every span forwarded, in order."""
    out = []
    for td in sink.received[Signal.TRACES]:
        for rs in td.proto.resource_spans:
            svc = rs.resource.attributes[0].value.string_value
            for ss in rs.scope_spans:
                for s in ss.spans:
                    out.append((svc, s.trace_id, s))
    return out


def sampled_traces(sink: SinkConsumer) -> set[int]:
    return {_NUMBER_OF[t] for _svc, t, _s in received_spans(sink)}


POLICIES = [
    {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
    {"name": "slow", "type": "latency", "latency": {"threshold_ms": 500}},
]


def cfg(**raw: Any) -> Config:
    raw.setdefault("decision_wait", "10s")
    raw.setdefault("policies", POLICIES)
    return decode(Config, raw, "processors.tail_sampling")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def build(make_settings: Callable[..., Settings], clock: FakeClock) -> Callable[..., tuple[TailSamplingProcessor,
                                                                                              SinkConsumer]]:
    def b(config: Config, sink: SinkConsumer | None = None) -> tuple[TailSamplingProcessor, SinkConsumer]:
        sink = sink or SinkConsumer()
        settings = make_settings("tail_sampling", kind=Kind.PROCESSOR, extra={"pipeline": "traces"})
        return TailSamplingProcessor(settings, config, Signal.TRACES, sink, clock=clock), sink
    return b




# -- config ---------------------------------------------------------------------------------
def test_registered_with_defaults() -> None:
    f = lookup(Kind.PROCESSOR, "tail_sampling")
    assert f.signals == frozenset({Signal.TRACES}) and not f.capabilities.mutates_data
    c = decode(Config, {"policies": [{"name": "all", "type": "always_sample"}]}, "p")
    assert (c.decision_wait, c.num_traces, c.decision_cache.sampled_cache_size) == (30.0, 50000, 0)


@pytest.mark.parametrize(("policy", "message"), [
    ({"name": "r", "type": "rate_limiting", "rate_limiting": {"spans_per_second": 10}},
     r"policies\[0\]\.type: policy type 'rate_limiting' is not implemented by otel-sidecar"),
    ({"name": "o", "type": "ottl_condition", "ottl_condition": {"span": ["true"]}},
     r"policies\[0\]\.type: policy type 'ottl_condition' is not implemented by otel-sidecar"),
    ({"name": "a", "type": "and", "and": {"and_sub_policy": [{"name": "x", "type": "span_count"}]}},
     r"policies\[0\]\.and\.and_sub_policy\[0\]\.type: policy type 'span_count' is not implemented"),
    ({"name": "z", "type": "zzz"}, r"policies\[0\]\.type: unknown policy type 'zzz'"),
    ({"name": "s", "type": "status_code", "status_code": {"status_codes": ["FATAL"]}}, r"status_codes\[0\]"),
    ({"name": "s", "type": "status_code"}, r"policies\[0\]\.status_code\.status_codes: at least one"),
    ({"name": "p", "type": "probabilistic", "probabilistic": {"sampling_percentage": 120}}, r"sampling_percentage"),
    ({"name": "n", "type": "numeric_attribute", "numeric_attribute": {"key": "k"}}, r"min_value or max_value"),
    ({"name": "l", "type": "latency", "latency": {"threshold_ms": 10, "upper_threshold_ms": 5}},
     r"upper_threshold_ms"),
    ({"type": "always_sample"}, r"policies\[0\]\.name: required"),
])
def test_config_errors_have_paths(policy: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigErrors, match=message):
        decode(Config, {"policies": [policy]}, "processors.tail_sampling")


def test_config_requires_policies_and_positive_limits() -> None:
    with pytest.raises(ConfigErrors) as info:
        decode(Config, {"decision_wait": "0s", "num_traces": 0}, "processors.tail_sampling")
    text = str(info.value)
    assert "decision_wait" in text and "num_traces" in text and "policies: at least one" in text


# -- behaviour ------------------------------------------------------------------------------
async def test_keeps_error_and_slow_traces_drops_the_rest(build: Callable[..., Any], clock: FakeClock,
                                                          make_settings: Callable[..., Settings]) -> None:
    proc, sink = build(cfg())
    front = [span_spec(t, 1, service="frontend") for t in range(1, 21)]
    back = [span_spec(t, 2, service="backend", error=t in (3, 7), dur_ms=600 if t in (11, 12) else 10)
            for t in range(1, 21)]
    specs = front + back
    # The two spans of each trace arrive in different requests, 5 s apart.
    await proc.consume_traces(make(front))
    clock.now += 5
    await proc.consume_traces(make(back))
    assert proc.pending_traces == 20
    await proc.tick()
    assert sink.count(Signal.TRACES) == 0  # decision_wait not reached yet
    clock.now += 5
    await proc.tick()
    assert sampled_traces(sink) == {3, 7, 11, 12}
    assert sink.count(Signal.TRACES) == 8 and proc.pending_traces == 0
    # Resource grouping is kept and spans are byte-identical to what was received.
    sent = {s.SerializeToString() for rs in make(specs).proto.resource_spans for ss in rs.scope_spans
            for s in ss.spans}
    got = received_spans(sink)
    assert all(s.SerializeToString() in sent for _svc, _t, s in got)
    assert {(svc, s.span_id[-1]) for svc, _t, s in got} == {("frontend", 1), ("backend", 2)}
    out = sink.received[Signal.TRACES][0].proto
    assert out.resource_spans[0].schema_url == "https://opentelemetry.io/schemas/1.26.0"
    assert out.resource_spans[0].scope_spans[0].scope.name == "tests"
    t = make_settings("x").telemetry
    labels = {"processor": "tail_sampling"}
    assert t.value("otelcol_processor_dropped_spans_total", labels) == 32
    assert t.value("otelcol_processor_tail_sampling_global_count_traces_sampled_total",
                   {**labels, "pipeline": "traces", "sampled": "true"}) == 4
    assert t.value("otelcol_processor_tail_sampling_count_traces_sampled_total",
                   {**labels, "pipeline": "traces", "policy": "errors", "sampled": "true"}) == 2


async def test_decision_waits_for_decision_wait_after_the_first_span(build: Callable[..., Any],
                                                                    clock: FakeClock) -> None:
    proc, sink = build(cfg(policies=[{"name": "all", "type": "always_sample"}]))
    await proc.consume_traces(make([span_spec(1, 1)]))
    clock.now += 9.9
    await proc.consume_traces(make([span_spec(1, 2), span_spec(2, 1)]))
    await proc.tick()
    assert sink.count(Signal.TRACES) == 0
    clock.now += 0.1
    await proc.tick()
    assert sampled_traces(sink) == {1} and sink.count(Signal.TRACES) == 2
    clock.now += 9.9
    await proc.tick()
    assert sampled_traces(sink) == {1, 2}


async def test_memory_is_bounded_and_evictions_decide_early(build: Callable[..., Any], clock: FakeClock,
                                                            make_settings: Callable[..., Settings]) -> None:
    proc, sink = build(cfg(num_traces=3))
    await proc.consume_traces(make([span_spec(1, 1, error=True), span_spec(2, 1), span_spec(3, 1)]))
    assert proc.pending_traces == 3
    await proc.consume_traces(make([span_spec(4, 1), span_spec(5, 1)]))
    assert proc.pending_traces == 3
    assert sampled_traces(sink) == {1}  # evicted first, decided early: the error trace is kept
    t = make_settings("x").telemetry
    assert t.value("otelcol_processor_tail_sampling_traces_evicted_total",
                   {"processor": "tail_sampling", "pipeline": "traces"}) == 2
    # A late span of the early-decided trace follows its decision.
    await proc.consume_traces(make([span_spec(1, 2), span_spec(2, 2)]))
    assert sink.count(Signal.TRACES) == 2
    for i in range(100):
        await proc.consume_traces(make([span_spec(100 + i, 1)]))
        assert proc.pending_traces <= 3


async def test_late_spans_follow_the_decision(build: Callable[..., Any], clock: FakeClock,
                                              make_settings: Callable[..., Settings]) -> None:
    proc, sink = build(cfg(decision_cache={"sampled_cache_size": 10, "non_sampled_cache_size": 10}))
    await proc.consume_traces(make([span_spec(1, 1, error=True), span_spec(2, 1)]))
    clock.now += 10
    await proc.tick()
    assert sink.count(Signal.TRACES) == 1
    await proc.consume_traces(make([span_spec(1, 2), span_spec(2, 2), span_spec(2, 3)]))
    assert sink.count(Signal.TRACES) == 2  # forwarded at once, without waiting
    assert proc.pending_traces == 0
    t = make_settings("x").telemetry
    labels = {"processor": "tail_sampling", "pipeline": "traces"}
    assert t.value("otelcol_processor_tail_sampling_late_spans_total", {**labels, "sampled": "true"}) == 1
    assert t.value("otelcol_processor_tail_sampling_late_spans_total", {**labels, "sampled": "false"}) == 2


async def test_decision_cache_is_bounded(build: Callable[..., Any], clock: FakeClock) -> None:
    proc, sink = build(cfg(decision_cache={"sampled_cache_size": 2}, policies=[{"name": "a", "type": "always_sample"}]))
    for t in range(1, 5):
        await proc.consume_traces(make([span_spec(t, 1)]))
    clock.now += 10
    await proc.tick()
    assert sink.count(Signal.TRACES) == 4
    # Trace 1 fell out of the 2-entry cache: its late span starts a new pending trace.
    await proc.consume_traces(make([span_spec(1, 2), span_spec(4, 2)]))
    assert proc.pending_traces == 1 and sink.count(Signal.TRACES) == 5


async def test_shutdown_decides_pending_traces(build: Callable[..., Any], clock: FakeClock) -> None:
    proc, sink = build(cfg())
    await proc.start(None)
    await proc.consume_traces(make([span_spec(1, 1, error=True), span_spec(2, 1)]))
    await proc.shutdown()
    assert sampled_traces(sink) == {1}
    await proc.shutdown()  # idempotent


async def test_shutdown_can_drop_pending_traces(build: Callable[..., Any]) -> None:
    proc, sink = build(cfg(drop_pending_traces_on_shutdown=True))
    await proc.consume_traces(make([span_spec(1, 1, error=True)]))
    await proc.shutdown()
    assert sink.count(Signal.TRACES) == 0


async def test_background_ticker_decides_in_real_time(make_settings: Callable[..., Settings]) -> None:
    sink = SinkConsumer()
    proc = TailSamplingProcessor(make_settings("tail_sampling", kind=Kind.PROCESSOR),
                                 cfg(decision_wait="100ms"), Signal.TRACES, sink)
    await proc.start(None)  # type: ignore[arg-type]
    try:
        await proc.consume_traces(make([span_spec(1, 1, error=True)]))
        await sink.wait_for(Signal.TRACES, 1, timeout=5)
    finally:
        await proc.shutdown()


async def test_downstream_failure_is_counted_not_raised(make_settings: Callable[..., Settings],
                                                        clock: FakeClock) -> None:
    failing = ErrorConsumer(lambda: QueueFullError("full"))
    proc = TailSamplingProcessor(make_settings("tail_sampling", kind=Kind.PROCESSOR), cfg(), Signal.TRACES,
                                 failing, clock=clock)
    await proc.consume_traces(make([span_spec(1, 1, error=True), span_spec(1, 2)]))
    clock.now += 10
    await proc.tick()
    assert failing.calls == 1
    assert make_settings("x").telemetry.value("otelcol_processor_dropped_spans_total",
                                              {"processor": "tail_sampling"}) == 2


# -- policies --------------------------------------------------------------------------------
async def _decide(build: Callable[..., Any], clock: FakeClock, policies: list[dict[str, Any]],
                  traces: list[list[dict[str, Any]]], **extra: Any) -> set[int]:
    proc, sink = build(cfg(policies=policies, **extra))
    for specs in traces:
        await proc.consume_traces(make(specs))
    clock.now += 10
    await proc.tick()
    return sampled_traces(sink)


async def test_latency_upper_threshold(build: Callable[..., Any], clock: FakeClock) -> None:
    traces = [[span_spec(1, 1, dur_ms=50)], [span_spec(2, 1, dur_ms=150)], [span_spec(3, 1, dur_ms=400)],
              # trace duration spans several spans: first start to last end
              [span_spec(4, 1, dur_ms=10), span_spec(4, 2, start_ms=190, dur_ms=10)]]
    got = await _decide(build, clock, [{"name": "l", "type": "latency",
                                        "latency": {"threshold_ms": 100, "upper_threshold_ms": 300}}], traces)
    assert got == {2, 4}


async def test_status_codes(build: Callable[..., Any], clock: FakeClock) -> None:
    got = await _decide(build, clock, [{"name": "s", "type": "status_code",
                                        "status_code": {"status_codes": ["UNSET"]}}],
                        [[span_spec(1, 1)], [span_spec(2, 1, error=True)]])
    assert got == {1}


async def test_probabilistic_rate_and_salt(build: Callable[..., Any], clock: FakeClock) -> None:
    traces = [[span_spec(t, 1)] for t in range(1, 2001)]
    pol = [{"name": "p", "type": "probabilistic", "probabilistic": {"sampling_percentage": 25}}]
    first = await _decide(build, clock, pol, traces, num_traces=5000)
    assert 400 <= len(first) <= 600
    again = await _decide(build, clock, pol, traces, num_traces=5000)
    assert again == first  # deterministic per trace id
    salted = [{"name": "p", "type": "probabilistic",
               "probabilistic": {"sampling_percentage": 25, "hash_salt": "other"}}]
    assert await _decide(build, clock, salted, traces, num_traces=5000) != first
    none = [{"name": "p", "type": "probabilistic", "probabilistic": {"sampling_percentage": 0}}]
    assert await _decide(build, clock, none, traces[:50]) == set()
    everything = [{"name": "p", "type": "probabilistic", "probabilistic": {"sampling_percentage": 100}}]
    assert len(await _decide(build, clock, everything, traces[:50])) == 50


def test_fnv1a64_reference_values() -> None:
    assert fnv1a64(b"") == 0xCBF29CE484222325
    assert fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a64(b"foobar") == 0x85944171F73967E8


async def test_string_attribute_exact_regex_resource_and_invert(build: Callable[..., Any], clock: FakeClock) -> None:
    traces = [[span_spec(1, 1, attrs={"http.route": "/api/orders"})],
              [span_spec(2, 1, attrs={"http.route": "/healthz"})],
              [span_spec(3, 1, service="payments")],  # matched through the resource attribute
              [span_spec(4, 1, attrs={"http.route": 5})]]  # not a string
    exact = [{"name": "s", "type": "string_attribute",
              "string_attribute": {"key": "http.route", "values": ["/api/orders"]}}]
    assert await _decide(build, clock, exact, traces) == {1}
    regex = [{"name": "s", "type": "string_attribute",
              "string_attribute": {"key": "http.route", "values": ["^/api/"], "enabled_regex_matching": True}}]
    assert await _decide(build, clock, regex, traces) == {1}
    resource = [{"name": "s", "type": "string_attribute",
                 "string_attribute": {"key": "service.name", "values": ["payments"]}}]
    assert await _decide(build, clock, resource, traces) == {3}
    # invert_match: everything but the health checks, and it vetoes other policies.
    invert = [{"name": "s", "type": "string_attribute",
               "string_attribute": {"key": "http.route", "values": ["/healthz"], "invert_match": True}},
              {"name": "all", "type": "always_sample"}]
    assert await _decide(build, clock, invert, traces) == {1, 3, 4}


async def test_numeric_attribute(build: Callable[..., Any], clock: FakeClock) -> None:
    traces = [[span_spec(t, 1, attrs={"http.response.status_code": code})]
              for t, code in ((1, 200), (2, 404), (3, 503), (4, 500))]
    pol = [{"name": "n", "type": "numeric_attribute",
            "numeric_attribute": {"key": "http.response.status_code", "min_value": 500, "max_value": 599}}]
    assert await _decide(build, clock, pol, traces) == {3, 4}
    open_upper = [{"name": "n", "type": "numeric_attribute",
                   "numeric_attribute": {"key": "http.response.status_code", "min_value": 400}}]
    assert await _decide(build, clock, open_upper, traces) == {2, 3, 4}


async def test_and_policy(build: Callable[..., Any], clock: FakeClock) -> None:
    traces = [[span_spec(1, 1, error=True, attrs={"tier": "gold"})], [span_spec(2, 1, error=True)],
              [span_spec(3, 1, attrs={"tier": "gold"})]]
    pol = [{"name": "a", "type": "and", "and": {"and_sub_policy": [
        {"name": "e", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
        {"name": "g", "type": "string_attribute", "string_attribute": {"key": "tier", "values": ["gold"]}}]}}]
    assert await _decide(build, clock, pol, traces) == {1}


async def test_composite_rate_allocation(build: Callable[..., Any], clock: FakeClock) -> None:
    # 10 error traces of 2 spans each; "errors" may sample 40% of 10 spans/s = 4 spans = 2 traces per second,
    # then "rest" (always_sample) gets the remaining budget of 6 spans = 3 traces.
    traces = [[span_spec(t, 1, error=True), span_spec(t, 2)] for t in range(1, 11)]
    pol = [{"name": "c", "type": "composite", "composite": {
        "max_total_spans_per_second": 10, "policy_order": ["errors", "rest"],
        "composite_sub_policy": [
            {"name": "rest", "type": "always_sample"},
            {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}],
        "rate_allocation": [{"policy": "errors", "percent": 40}, {"policy": "rest", "percent": 60}]}}]
    assert len(await _decide(build, clock, pol, traces)) == 5


async def test_sample_on_first_match(build: Callable[..., Any], clock: FakeClock,
                                     make_settings: Callable[..., Settings]) -> None:
    pol = [{"name": "all", "type": "always_sample"},
           {"name": "s", "type": "string_attribute", "string_attribute": {"key": "k", "values": ["v"]}}]
    assert await _decide(build, clock, pol, [[span_spec(1, 1)]], sample_on_first_match=True) == {1}
    t = make_settings("x").telemetry
    assert t.value("otelcol_processor_tail_sampling_count_traces_sampled_total",
                   {"processor": "tail_sampling", "pipeline": "traces", "policy": "s", "sampled": "false"}) == 0


async def test_only_traces(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(TypeError):
        TailSamplingProcessor(make_settings("t", kind=Kind.PROCESSOR), cfg(), Signal.LOGS, SinkConsumer())
    await asyncio.sleep(0)
