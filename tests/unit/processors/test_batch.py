"""The batch processor: size and age triggers, max size, exact delivery, shutdown flush,
bounded buffer under a slow next consumer, concurrent producers, error accounting."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

import pytest

from agent.component import Settings, Signal
from agent.config.decode import decode
from agent.errors import ConsumerError, PermanentError, QueueFullError, ThrottleError
from agent.processors.batch import BUFFER_LIMIT_FACTOR, FACTORY, BatchProcessor, Config
from agent.telemetry.metrics import SelfMetrics
from agent.testing import ErrorConsumer, SinkConsumer, make_traces

from .helpers import MAKERS, FlakyConsumer, GateConsumer, ids_of

SettingsFn = Callable[..., Settings]


def _batch(settings: Settings, sink: object, signal: Signal = Signal.TRACES, **cfg: object) -> BatchProcessor:
    config = decode(Config, cfg, "processors.batch")
    proc = FACTORY.create(settings, config, signal, sink)
    assert isinstance(proc, BatchProcessor)
    return proc


def _metric(tel: SelfMetrics, name: str, **labels: str) -> float:
    return tel.value(name, {"processor": "batch", **labels})


async def _until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.001)


def _expected_ids(sizes: list[int]) -> list[tuple[int, int]]:
    return sorted((b, i) for b, n in enumerate(sizes) for i in range(n))


async def test_flushes_by_size_without_waiting_for_the_timeout(
        proc_settings: SettingsFn, telemetry: SelfMetrics) -> None:
    sink = SinkConsumer()
    proc = _batch(proc_settings(), sink, send_batch_size=100, timeout="1h")
    await proc.start(None)  # type: ignore[arg-type]
    for b in range(3):
        await proc.consume_traces(make_traces(40, batch_index=b))
    await sink.wait_for(Signal.TRACES, 120)
    assert [d.item_count for d in sink.received[Signal.TRACES]] == [120]
    assert _metric(telemetry, "otelcol_processor_batch_batch_size_trigger_send_total") == 1
    assert _metric(telemetry, "otelcol_processor_batch_timeout_trigger_send_total") == 0
    assert _metric(telemetry, "otelcol_processor_batch_batch_send_size_sum") == 120
    await proc.shutdown()


async def test_flushes_by_timeout(proc_settings: SettingsFn, telemetry: SelfMetrics) -> None:
    sink = SinkConsumer()
    proc = _batch(proc_settings(), sink, send_batch_size=1000, timeout="20ms")
    await proc.start(None)  # type: ignore[arg-type]
    await proc.consume_traces(make_traces(10))
    await proc.consume_traces(make_traces(5, batch_index=1))
    await sink.wait_for(Signal.TRACES, 15)
    assert proc.buffered_items == 0
    assert _metric(telemetry, "otelcol_processor_batch_timeout_trigger_send_total") >= 1
    assert _metric(telemetry, "otelcol_processor_batch_batch_size_trigger_send_total") == 0
    # Idle afterwards: later data is sent by a later timeout as well.
    await proc.consume_traces(make_traces(3, batch_index=2))
    await sink.wait_for(Signal.TRACES, 18)
    assert sorted(ids_of(sink.received[Signal.TRACES])) == _expected_ids([10, 5, 3])
    await proc.shutdown()


@pytest.mark.parametrize("signal", list(Signal))
async def test_respects_send_batch_max_size(proc_settings: SettingsFn, signal: Signal) -> None:
    sink = SinkConsumer()
    proc = _batch(proc_settings(pipeline=signal.value), sink, signal,
                  send_batch_size=100, send_batch_max_size=150, timeout="1h")
    await proc.start(None)  # type: ignore[arg-type]
    sizes = [1000, 37, 37, 37, 37, 37, 3]
    for b, n in enumerate(sizes):
        await getattr(proc, "consume_" + signal.value)(MAKERS[signal](n, batch_index=b))
    await sink.wait_for(signal, 1100)
    await proc.shutdown()
    batches = sink.received[signal]
    assert all(d.item_count <= 150 for d in batches)
    assert sum(d.item_count for d in batches) == sum(sizes)
    # Size-triggered batches are exactly the max size; only the shutdown remainder is smaller.
    assert [d.item_count for d in batches[:-1]] == [150] * (len(batches) - 1)
    ids = ids_of(batches)
    assert len(ids) == len(set(ids))
    assert sorted(ids) == _expected_ids(sizes)
    for d in batches:  # merged and cut batches re-serialize to the same request
        assert type(d).parse(d.to_bytes()).item_count == d.item_count


@pytest.mark.parametrize("signal", list(Signal))
async def test_merges_many_requests_without_losing_or_duplicating_items(
        proc_settings: SettingsFn, signal: Signal) -> None:
    sink = SinkConsumer()
    proc = _batch(proc_settings(pipeline=signal.value), sink, signal,
                  send_batch_size=64, send_batch_max_size=100, timeout="10ms")
    await proc.start(None)  # type: ignore[arg-type]
    rng = random.Random(7)
    sizes = [rng.randint(1, 30) for _ in range(50)]
    consume = getattr(proc, "consume_" + signal.value)
    for b, n in enumerate(sizes):
        await consume(MAKERS[signal](n, batch_index=b))
    await sink.wait_for(signal, sum(sizes))
    await proc.shutdown()
    batches = sink.received[signal]
    assert sum(d.item_count for d in batches) == sum(sizes)
    ids = ids_of(batches)
    assert len(ids) == len(set(ids)) == sum(sizes)
    assert sorted(ids) == _expected_ids(sizes)
    assert len(batches) < len(sizes)  # actually batched
    assert all(d.item_count <= 100 for d in batches)


async def test_unmodified_requests_are_merged_from_wire_bytes(proc_settings: SettingsFn) -> None:
    sink = SinkConsumer()
    proc = _batch(proc_settings(), sink, send_batch_size=30, timeout="1h")
    await proc.start(None)  # type: ignore[arg-type]
    parts = [make_traces(10, batch_index=b) for b in range(3)]
    raw = [type(p).parse(p.to_bytes()) for p in parts]
    for p in raw:
        await proc.consume_traces(p)
    await sink.wait_for(Signal.TRACES, 30)
    (out,) = sink.received[Signal.TRACES]
    assert out.has_original_bytes
    assert out.to_bytes() == b"".join(p.to_bytes() for p in raw)
    await proc.shutdown()


async def test_shutdown_flushes_everything_buffered(proc_settings: SettingsFn, telemetry: SelfMetrics) -> None:
    sink = SinkConsumer()
    proc = _batch(proc_settings(), sink, send_batch_size=10_000, timeout="1h")
    await proc.start(None)  # type: ignore[arg-type]
    for b in range(4):
        await proc.consume_traces(make_traces(5, batch_index=b))
    assert sink.count(Signal.TRACES) == 0
    assert proc.buffered_items == 20
    await proc.shutdown()
    assert sink.count(Signal.TRACES) == 20
    assert sorted(ids_of(sink.received[Signal.TRACES])) == _expected_ids([5] * 4)
    assert _metric(telemetry, "otelcol_processor_batch_timeout_trigger_send_total") == 1
    assert telemetry.value("otelcol_processor_outgoing_items_total",
                           {"processor": "batch", "pipeline": "traces", "otel_signal": "traces"}) == 20
    await proc.shutdown()  # twice is fine


async def test_shutdown_without_start_flushes_and_is_idempotent(proc_settings: SettingsFn) -> None:
    sink = SinkConsumer()
    proc = _batch(proc_settings(), sink, send_batch_size=100, send_batch_max_size=100, timeout="1h")
    await proc.consume_traces(make_traces(250))
    await proc.shutdown()
    await proc.shutdown()
    assert [d.item_count for d in sink.received[Signal.TRACES]] == [100, 100, 50]


async def test_consume_after_shutdown_forwards_directly(proc_settings: SettingsFn) -> None:
    sink = SinkConsumer()
    proc = _batch(proc_settings(), sink, send_batch_size=100, send_batch_max_size=100, timeout="1h")
    await proc.start(None)  # type: ignore[arg-type]
    await proc.shutdown()
    await proc.consume_traces(make_traces(150))
    assert [d.item_count for d in sink.received[Signal.TRACES]] == [100, 50]
    assert proc.buffered_items == 0


async def test_buffer_stays_bounded_under_a_slow_next_consumer(proc_settings: SettingsFn) -> None:
    gate = GateConsumer()
    proc = _batch(proc_settings(), gate, send_batch_size=10, timeout="5ms")
    limit = BUFFER_LIMIT_FACTOR * 10
    assert proc.buffer_limit == limit
    await proc.start(None)  # type: ignore[arg-type]
    peak = 0

    async def produce(b: int) -> None:
        nonlocal peak
        await proc.consume_traces(make_traces(5, batch_index=b))
        peak = max(peak, proc.buffered_items)

    producers = [asyncio.create_task(produce(b)) for b in range(60)]
    await asyncio.sleep(0.1)
    # The next consumer is stuck: producers are held back instead of the buffer growing.
    assert proc.buffered_items <= limit - 1 + 5
    assert peak <= limit - 1 + 5
    assert sum(t.done() for t in producers) < len(producers)
    assert gate.max_in_flight <= 2  # the sender's batch and one inline batch
    gate.open()
    await asyncio.gather(*producers)
    await proc.shutdown()
    assert peak <= limit - 1 + 5
    ids = ids_of(gate.received[Signal.TRACES])
    assert len(ids) == len(set(ids)) == 300
    assert sorted(ids) == _expected_ids([5] * 60)


async def test_concurrent_producers_lose_nothing(proc_settings: SettingsFn, telemetry: SelfMetrics) -> None:
    sink = SinkConsumer()
    proc = _batch(proc_settings(), sink, send_batch_size=50, send_batch_max_size=80, timeout="5ms")
    await proc.start(None)  # type: ignore[arg-type]
    rng = random.Random(11)
    plan = [[rng.randint(1, 40) for _ in range(25)] for _ in range(20)]

    async def producer(p: int) -> None:
        for r, n in enumerate(plan[p]):
            await proc.consume_traces(make_traces(n, batch_index=p * 100 + r))
            if r % 3 == 0:
                await asyncio.sleep(0)

    await asyncio.gather(*(producer(p) for p in range(20)))
    total = sum(map(sum, plan))
    await sink.wait_for(Signal.TRACES, total)  # delivered by size and by the timer, before shutdown
    await proc.shutdown()
    batches = sink.received[Signal.TRACES]
    assert all(d.item_count <= 80 for d in batches)
    ids = ids_of(batches)
    assert len(ids) == len(set(ids)) == total
    expected = sorted((p * 100 + r, i) for p in range(20) for r, n in enumerate(plan[p]) for i in range(n))
    assert sorted(ids) == expected
    assert telemetry.value("otelcol_processor_incoming_items_total",
                           {"processor": "batch", "pipeline": "traces", "otel_signal": "traces"}) == total


async def test_errors_after_buffering_are_counted_and_logged_once_per_batch(
        proc_settings: SettingsFn, telemetry: SelfMetrics, caplog: pytest.LogCaptureFixture) -> None:
    failing = ErrorConsumer(lambda: PermanentError("backend says no"))
    proc = _batch(proc_settings(), failing, send_batch_size=10, timeout="1h")
    await proc.start(None)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        for b in range(3):
            await proc.consume_traces(make_traces(4, batch_index=b))  # accepted: the caller sees no error
        await _until(lambda: failing.calls == 1)
        for b in range(3, 5):
            await proc.consume_traces(make_traces(4, batch_index=b))
        await proc.shutdown()
    assert failing.calls == 2  # one size-triggered batch of 12, the shutdown remainder of 8
    assert _metric(telemetry, "otelcol_processor_dropped_spans_total") == 20
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "dropped a batch" in r.getMessage()]
    assert len(warnings) == 2
    assert "span-0" not in caplog.text  # counts, never payloads
    assert _metric(telemetry, "otelcol_processor_batch_batch_send_size_count") == 0


async def test_full_buffer_refuses_callers_while_the_next_consumer_refuses(
        proc_settings: SettingsFn, telemetry: SelfMetrics) -> None:
    flaky = FlakyConsumer([QueueFullError("queue full", retry_after=2.0)])
    proc = _batch(proc_settings(), flaky, send_batch_size=10, timeout="1h")  # not started: no sender task
    for b in range(4):
        await proc.consume_traces(make_traces(10, batch_index=b))
    assert proc.buffered_items == 40 == proc.buffer_limit
    with pytest.raises(ThrottleError) as info:
        await proc.consume_traces(make_traces(3, batch_index=4))
    assert info.value.retry_after == 2.0
    assert _metric(telemetry, "otelcol_processor_refused_spans_total") == 3
    assert _metric(telemetry, "otelcol_processor_dropped_spans_total") == 40  # the acknowledged batch
    assert proc.buffered_items == 0
    await proc.consume_traces(make_traces(3, batch_index=5))  # room again; the next consumer recovered
    await proc.shutdown()
    assert sorted(ids_of(flaky.received[Signal.TRACES])) == [(5, i) for i in range(3)]


async def test_full_buffer_with_retryable_error_without_hint(proc_settings: SettingsFn) -> None:
    flaky = FlakyConsumer([ConsumerError("unavailable")])
    proc = _batch(proc_settings(), flaky, send_batch_size=5, send_batch_max_size=5, timeout="1h")
    for b in range(4):
        await proc.consume_traces(make_traces(5, batch_index=b))
    with pytest.raises(ConsumerError) as info:
        await proc.consume_traces(make_traces(1, batch_index=9))
    assert not isinstance(info.value, ThrottleError)
    assert proc.buffered_items == 15
    await proc.shutdown()


async def test_full_buffer_with_permanent_error_keeps_accepting(
        proc_settings: SettingsFn, telemetry: SelfMetrics) -> None:
    flaky = FlakyConsumer([PermanentError("bad batch")])
    proc = _batch(proc_settings(), flaky, send_batch_size=10, send_batch_max_size=10, timeout="1h")
    for b in range(4):
        await proc.consume_traces(make_traces(10, batch_index=b))
    await proc.consume_traces(make_traces(2, batch_index=4))  # room made by dropping one bad batch
    assert _metric(telemetry, "otelcol_processor_dropped_spans_total") == 10
    assert _metric(telemetry, "otelcol_processor_refused_spans_total") == 0
    await proc.shutdown()
    expected = sorted([(b, i) for b in (1, 2, 3) for i in range(10)] + [(4, 0), (4, 1)])
    assert sorted(ids_of(flaky.received[Signal.TRACES])) == expected


@pytest.mark.parametrize("cfg", [{"timeout": 0}, {"timeout": "0s", "send_batch_max_size": 0},
                                 {"send_batch_size": 0}])
async def test_no_buffering_forwards_at_once(proc_settings: SettingsFn, cfg: dict[str, object]) -> None:
    sink = SinkConsumer()
    proc = _batch(proc_settings(), sink, Signal.TRACES, **cfg)
    await proc.start(None)  # type: ignore[arg-type]
    assert proc.buffer_limit == 0
    await proc.consume_traces(make_traces(3))
    assert sink.count(Signal.TRACES) == 3  # delivered before consume returned
    await proc.shutdown()


async def test_no_buffering_splits_by_max_and_propagates_errors(proc_settings: SettingsFn) -> None:
    sink = SinkConsumer()
    proc = _batch(proc_settings(), sink, timeout=0, send_batch_max_size=4, send_batch_size=0)
    await proc.consume_traces(make_traces(10))
    assert [d.item_count for d in sink.received[Signal.TRACES]] == [4, 4, 2]
    failing = ErrorConsumer(lambda: QueueFullError("full", retry_after=1))
    proc2 = _batch(proc_settings("batch/2"), failing, timeout=0)
    with pytest.raises(QueueFullError):
        await proc2.consume_traces(make_traces(2))


async def test_cancelled_shutdown_counts_what_it_could_not_send(
        proc_settings: SettingsFn, telemetry: SelfMetrics) -> None:
    gate = GateConsumer()
    proc = _batch(proc_settings(), gate, send_batch_size=1000, timeout="1h")
    await proc.start(None)  # type: ignore[arg-type]
    await proc.consume_traces(make_traces(5))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(proc.shutdown(), 0.05)
    assert _metric(telemetry, "otelcol_processor_dropped_spans_total") == 5
    assert proc.buffered_items == 0


async def test_empty_requests_are_ignored(proc_settings: SettingsFn) -> None:
    sink = SinkConsumer()
    proc = _batch(proc_settings(), sink, send_batch_size=1, timeout="1h")
    await proc.start(None)  # type: ignore[arg-type]
    await proc.consume_traces(make_traces(0))
    await proc.shutdown()
    assert sink.received[Signal.TRACES] == []


async def test_wrong_signal_method_is_a_type_error(proc_settings: SettingsFn) -> None:
    proc = _batch(proc_settings(), SinkConsumer())
    with pytest.raises(TypeError):
        await proc.consume_logs(MAKERS[Signal.LOGS](1))  # type: ignore[arg-type]
    assert not proc.capabilities().mutates_data
