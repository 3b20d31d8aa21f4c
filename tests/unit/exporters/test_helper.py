"""ExporterHelper: queue, backpressure, retry, timeout, batching, shutdown and self-metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest

from agent.component import Signal
from agent.errors import ConsumerError, PermanentError, QueueFullError, ShutdownError, ThrottleError
from agent.exporters.helper import BatchConfig, ExporterHelper, QueueConfig, RetryConfig
from agent.pdata import Traces
from agent.telemetry.metrics import SelfMetrics
from agent.testing import make_logs, make_metrics, make_traces
from tests.unit.exporters.conftest import Backend, FakeClock, metric

MakeHelper = Callable[..., ExporterHelper]
EXP = "otlp/x"
# Deterministic backoff: 1s, 2s, 4s, 8s, then capped at 10s.
RETRY = RetryConfig(initial_interval=1.0, randomization_factor=0.0, multiplier=2.0, max_interval=10.0,
                    max_elapsed_time=0.0)


def sent(t: SelfMetrics, item: str = "spans") -> float:
    return metric(t, f"otelcol_exporter_sent_{item}_total", exporter=EXP)


def failed(t: SelfMetrics, item: str = "spans") -> float:
    return metric(t, f"otelcol_exporter_send_failed_{item}_total", exporter=EXP)


def enqueue_failed(t: SelfMetrics, item: str = "spans") -> float:
    return metric(t, f"otelcol_exporter_enqueue_failed_{item}_total", exporter=EXP)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


# -- queue and backpressure ------------------------------------------------------------------------
async def test_full_queue_refuses_with_retry_hint_and_counts_enqueue_failed(
        make_helper: MakeHelper, telemetry: SelfMetrics) -> None:
    h = make_helper(Backend(), queue=QueueConfig(queue_size=2))
    await h.consume_traces(make_traces(1))
    await h.consume_traces(make_traces(2))
    with pytest.raises(QueueFullError) as info:
        await h.consume_traces(make_traces(3))
    assert info.value.retry_after == pytest.approx(1.0)
    assert enqueue_failed(telemetry) == 3
    assert h.queue_size(Signal.TRACES) == 2
    await h.shutdown()  # never started: what is queued is dropped and counted
    assert failed(telemetry) == 3 and sent(telemetry) == 0


async def test_full_queue_report_is_rate_limited(make_helper: MakeHelper, caplog: pytest.LogCaptureFixture) -> None:
    h = make_helper(Backend(), queue=QueueConfig(queue_size=1))
    await h.consume_traces(make_traces(1))
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            with pytest.raises(QueueFullError):
                await h.consume_traces(make_traces(1))
    assert len([r for r in caplog.records if "queue is full" in r.getMessage()]) == 1
    await h.shutdown()


@pytest.mark.parametrize("queue", [QueueConfig(queue_size=1, block_on_overflow=True),
                                   QueueConfig(queue_size=1, blocking=True)], ids=["block_on_overflow", "blocking"])
async def test_block_on_overflow_waits_for_room(make_helper: MakeHelper, telemetry: SelfMetrics,
                                                queue: QueueConfig, caplog: pytest.LogCaptureFixture) -> None:
    backend = Backend(gate=asyncio.Event())
    with caplog.at_level(logging.WARNING):
        h = make_helper(backend, queue=queue)
    assert any("deprecated" in r.getMessage() for r in caplog.records) == queue.blocking
    await h.start()
    await h.consume_traces(make_traces(2))
    await backend.wait(lambda: backend.calls == 1)  # taken, in flight: capacity still held
    second = asyncio.create_task(h.consume_traces(make_traces(3)))
    await settle()
    assert not second.done()
    assert enqueue_failed(telemetry) == 0
    assert backend.gate is not None
    backend.gate.set()
    await asyncio.wait_for(second, 5)
    await h.shutdown()
    assert sent(telemetry) == 5 and failed(telemetry) == 0


async def test_blocked_producer_gets_shutdown_error(make_helper: MakeHelper) -> None:
    h = make_helper(Backend(), queue=QueueConfig(queue_size=1, block_on_overflow=True), grace=0.0)
    await h.consume_traces(make_traces(1))
    blocked = asyncio.create_task(h.consume_traces(make_traces(1)))
    await settle()
    await h.shutdown()
    with pytest.raises(ShutdownError):
        await blocked


async def test_request_larger_than_capacity_is_permanent(make_helper: MakeHelper, telemetry: SelfMetrics) -> None:
    h = make_helper(Backend(), queue=QueueConfig(queue_size=5, sizer="items"))
    with pytest.raises(PermanentError):
        await h.consume_traces(make_traces(6))
    assert enqueue_failed(telemetry) == 6
    await h.shutdown()


async def test_empty_request_is_ignored_by_items_sizer(make_helper: MakeHelper) -> None:
    backend = Backend()
    h = make_helper(backend, queue=QueueConfig(queue_size=5, sizer="items"))
    await h.consume_traces(Traces())
    assert h.queue_size(Signal.TRACES) == 0
    await h.shutdown()


async def test_queue_gauges_follow_size_and_capacity(make_helper: MakeHelper, telemetry: SelfMetrics) -> None:
    backend = Backend()
    h = make_helper(backend, queue=QueueConfig(queue_size=10, sizer="items"), signals=frozenset({Signal.TRACES}))
    for _ in range(3):
        await h.consume_traces(make_traces(2))
    labels = {"exporter": EXP, "data_type": "traces"}
    assert metric(telemetry, "otelcol_exporter_queue_size", **labels) == 6
    assert metric(telemetry, "otelcol_exporter_queue_capacity", **labels) == 10
    await h.start()
    await backend.wait(lambda: backend.count() == 6)
    await settle()
    assert metric(telemetry, "otelcol_exporter_queue_size", **labels) == 0
    await h.shutdown()


async def test_in_flight_gauge(make_helper: MakeHelper, telemetry: SelfMetrics) -> None:
    backend = Backend(gate=asyncio.Event())
    h = make_helper(backend, queue=QueueConfig())
    await h.start()
    await h.consume_logs(make_logs(1))
    await backend.wait(lambda: backend.calls == 1)
    assert metric(telemetry, "otelcol_exporter_in_flight_requests", exporter=EXP) == 1
    assert backend.gate is not None
    backend.gate.set()
    await backend.wait(lambda: backend.count(Signal.LOGS) == 1)
    await settle()
    assert metric(telemetry, "otelcol_exporter_in_flight_requests", exporter=EXP) == 0
    await h.shutdown()


async def test_signals_have_separate_lanes(make_helper: MakeHelper, telemetry: SelfMetrics) -> None:
    backend = Backend()
    h = make_helper(backend, queue=QueueConfig(queue_size=1))
    await h.consume_traces(make_traces(1))
    await h.consume_metrics(make_metrics(2))  # the traces queue being full does not matter
    await h.consume_logs(make_logs(3))
    await h.start()
    await h.shutdown()
    assert sent(telemetry, "spans") == 1
    assert sent(telemetry, "metric_points") == 2
    assert sent(telemetry, "log_records") == 3


async def test_wait_for_result_returns_after_the_send(make_helper: MakeHelper) -> None:
    backend = Backend(gate=asyncio.Event())
    h = make_helper(backend, queue=QueueConfig(wait_for_result=True))
    await h.start()
    call = asyncio.create_task(h.consume_traces(make_traces(1)))
    await backend.wait(lambda: backend.calls == 1)
    await settle()
    assert not call.done()
    assert backend.gate is not None
    backend.gate.set()
    await asyncio.wait_for(call, 5)
    await h.shutdown()


async def test_unknown_signal_is_a_type_error(make_helper: MakeHelper) -> None:
    h = make_helper(Backend(), signals=frozenset({Signal.LOGS}))
    with pytest.raises(TypeError):
        await h.consume_traces(make_traces(1))


# -- retry -----------------------------------------------------------------------------------------
async def test_retry_until_success_counts_sent_exactly(make_helper: MakeHelper, telemetry: SelfMetrics,
                                                       clock: FakeClock) -> None:
    backend = Backend([ConsumerError("unavailable")] * 3)
    h = make_helper(backend, queue=QueueConfig(num_consumers=1, wait_for_result=True), retry=RETRY)
    await h.start()
    await h.consume_traces(make_traces(5))
    assert backend.calls == 4
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert sent(telemetry) == 5 and failed(telemetry) == 0
    await h.shutdown()


async def test_jitter_stays_within_the_randomization_factor(make_helper: MakeHelper, clock: FakeClock) -> None:
    backend = Backend([ConsumerError("x")] * 4)
    retry = RetryConfig(initial_interval=2.0, randomization_factor=0.5, multiplier=1.5, max_interval=30.0)
    h = make_helper(backend, retry=retry)
    await h.consume_traces(make_traces(1))
    bases = [2.0, 3.0, 4.5, 6.75]
    assert len(clock.sleeps) == 4
    for slept, base in zip(clock.sleeps, bases, strict=True):
        assert base * 0.5 <= slept <= base * 1.5


async def test_permanent_error_is_not_retried_and_logged_once(
        make_helper: MakeHelper, telemetry: SelfMetrics, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    backend = Backend(always=PermanentError("400 bad request"))
    h = make_helper(backend, queue=QueueConfig(wait_for_result=True), retry=RETRY)
    await h.start()
    with caplog.at_level(logging.INFO), pytest.raises(PermanentError):
        await h.consume_traces(make_traces(5))
    assert backend.calls == 1 and clock.sleeps == []
    assert failed(telemetry) == 5 and sent(telemetry) == 0
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1
    text = errors[0].getMessage()
    assert "Dropping 5 spans" in text and "permanent error" in text
    assert "span-0" not in text  # counts and reasons, never the payload
    assert errors[0].dropped_items == 5  # type: ignore[attr-defined]
    await h.shutdown()


async def test_throttle_retry_after_is_honoured(make_helper: MakeHelper, clock: FakeClock,
                                                telemetry: SelfMetrics) -> None:
    backend = Backend([ThrottleError("429", retry_after=7.0)])
    retry = RetryConfig(initial_interval=0.1, randomization_factor=0.5, max_elapsed_time=0.0)
    h = make_helper(backend, retry=retry)
    await h.consume_traces(make_traces(2))
    assert len(clock.sleeps) == 1 and clock.sleeps[0] >= 7.0
    assert sent(telemetry) == 2


async def test_max_elapsed_time_gives_up_and_counts(make_helper: MakeHelper, clock: FakeClock,
                                                    telemetry: SelfMetrics) -> None:
    backend = Backend(always=ConsumerError("503"))
    retry = RetryConfig(initial_interval=1.0, randomization_factor=0.0, multiplier=2.0, max_interval=10.0,
                        max_elapsed_time=20.0)
    h = make_helper(backend, queue=QueueConfig(wait_for_result=True), retry=retry)
    await h.start()
    with pytest.raises(ConsumerError, match="503"):
        await h.consume_traces(make_traces(4))
    # 1+2+4+8 = 15 s slept; the next wait (10 s) would end after 20 s: given up without sleeping.
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0]
    assert backend.calls == 5
    assert failed(telemetry) == 4 and sent(telemetry) == 0
    await h.shutdown()


async def test_throttle_hint_beyond_max_elapsed_time_gives_up(make_helper: MakeHelper, clock: FakeClock,
                                                              telemetry: SelfMetrics) -> None:
    backend = Backend([ThrottleError("429", retry_after=60.0)])
    retry = RetryConfig(initial_interval=1.0, max_interval=5.0, max_elapsed_time=30.0)
    h = make_helper(backend, retry=retry)
    with pytest.raises(ThrottleError):
        await h.consume_traces(make_traces(1))
    assert clock.sleeps == [] and failed(telemetry) == 1


async def test_retry_disabled_sends_once(make_helper: MakeHelper, telemetry: SelfMetrics) -> None:
    backend = Backend(always=ConsumerError("503"))
    h = make_helper(backend, retry=RetryConfig(enabled=False))
    with pytest.raises(ConsumerError):
        await h.consume_traces(make_traces(1))
    assert backend.calls == 1 and failed(telemetry) == 1


async def test_non_consumer_exceptions_are_retried_and_wrapped(make_helper: MakeHelper) -> None:
    backend = Backend([OSError("connection reset")], always=None)
    h = make_helper(backend, retry=RETRY)
    await h.consume_traces(make_traces(1))
    assert backend.calls == 2
    backend2 = Backend(always=OSError("connection reset"))
    h2 = make_helper(backend2, retry=None)
    with pytest.raises(ConsumerError, match="OSError: connection reset"):
        await h2.consume_traces(make_traces(1))


async def test_inline_send_propagates_errors_after_retries(make_helper: MakeHelper, telemetry: SelfMetrics,
                                                           clock: FakeClock) -> None:
    backend = Backend([ConsumerError("a"), ConsumerError("b")])
    h = make_helper(backend, retry=RETRY)
    assert not h.queued
    await h.consume_metrics(make_metrics(3))
    assert backend.calls == 3 and clock.sleeps == [1.0, 2.0]
    assert sent(telemetry, "metric_points") == 3
    h2 = make_helper(Backend(always=PermanentError("400")), retry=RETRY)
    with pytest.raises(PermanentError):
        await h2.consume_metrics(make_metrics(2))
    assert failed(telemetry, "metric_points") == 2


async def test_attempt_timeout(make_helper: MakeHelper, telemetry: SelfMetrics) -> None:
    backend = Backend(gate=asyncio.Event())  # never answers
    h = make_helper(backend, timeout=0.05)
    with pytest.raises(ConsumerError, match="timed out after 50ms"):
        await h.consume_traces(make_traces(2))
    assert failed(telemetry) == 2
    assert metric(telemetry, "otelcol_exporter_in_flight_requests", exporter=EXP) == 0


# -- batching --------------------------------------------------------------------------------------
def batch_queue(**kw: object) -> QueueConfig:
    return QueueConfig(num_consumers=4, batch=BatchConfig(**kw))  # type: ignore[arg-type]


async def test_batch_merges_until_min_size(make_helper: MakeHelper, telemetry: SelfMetrics) -> None:
    backend = Backend()
    h = make_helper(backend, queue=batch_queue(min_size=10, flush_timeout=60.0))
    await h.start()
    for i in range(5):
        await h.consume_traces(make_traces(2, batch_index=i))
    await backend.wait(lambda: backend.count() == 10)
    assert len(backend.received) == 1  # one request of 10 spans
    await h.shutdown()
    assert sent(telemetry) == 10


async def test_batch_cuts_at_max_size(make_helper: MakeHelper, telemetry: SelfMetrics) -> None:
    backend = Backend()
    h = make_helper(backend, queue=batch_queue(min_size=10, max_size=4, flush_timeout=60.0))
    await h.start()
    for i in range(5):
        await h.consume_traces(make_traces(2, batch_index=i))
    await backend.wait(lambda: backend.count() == 10)
    assert sorted(d.item_count for _, d in backend.received) == [2, 4, 4]
    await h.shutdown()
    assert sent(telemetry) == 10


async def test_batch_by_bytes(make_helper: MakeHelper) -> None:
    one = make_traces(10).byte_size
    backend = Backend()
    q = QueueConfig(sizer="bytes", queue_size=100 * one, batch=BatchConfig(min_size=3 * one, max_size=2 * one,
                                                                          flush_timeout=60.0))
    h = make_helper(backend, queue=q)
    await h.start()
    for i in range(3):
        await h.consume_traces(make_traces(10, batch_index=i))
    await backend.wait(lambda: backend.count() == 30)
    assert all(d.item_count <= 20 for _, d in backend.received) and len(backend.received) >= 2
    await h.shutdown()


async def test_batch_flushes_on_timeout(make_helper: MakeHelper) -> None:
    backend = Backend()
    h = make_helper(backend, queue=batch_queue(min_size=1000, flush_timeout=0.01))
    await h.start()
    for i in range(3):
        await h.consume_traces(make_traces(2, batch_index=i))
    await backend.wait(lambda: backend.count() == 6)
    assert len(backend.received) == 1
    await h.shutdown()


async def test_batch_is_flushed_at_shutdown_without_waiting(make_helper: MakeHelper, telemetry: SelfMetrics) -> None:
    backend = Backend()
    h = make_helper(backend, queue=batch_queue(min_size=1000, flush_timeout=3600.0), fake_time=False)
    await h.start()
    for i in range(3):
        await h.consume_logs(make_logs(2, batch_index=i))
    t0 = time.monotonic()
    await h.shutdown()
    assert time.monotonic() - t0 < 2.0
    assert sent(telemetry, "log_records") == 6 and len(backend.received) == 1


async def test_batch_with_wait_for_result_and_failure(make_helper: MakeHelper, telemetry: SelfMetrics) -> None:
    backend = Backend(always=PermanentError("400"))
    q = QueueConfig(wait_for_result=True, batch=BatchConfig(min_size=4, flush_timeout=60.0))
    h = make_helper(backend, queue=q)
    await h.start()
    calls = [asyncio.create_task(h.consume_traces(make_traces(2, batch_index=i))) for i in range(2)]
    results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)
    assert all(isinstance(r, PermanentError) for r in results)
    assert backend.calls == 1 and failed(telemetry) == 4
    await h.shutdown()


# -- shutdown --------------------------------------------------------------------------------------
async def test_shutdown_drains_all_queued_data_within_grace(make_helper: MakeHelper, telemetry: SelfMetrics) -> None:
    backend = Backend()
    h = make_helper(backend, queue=QueueConfig(num_consumers=3), grace=5.0, fake_time=False)
    for i in range(100):
        await h.consume_traces(make_traces(3, batch_index=i))
    await h.start()
    t0 = time.monotonic()
    await h.shutdown()
    assert time.monotonic() - t0 < 5.0
    assert sent(telemetry) == 300 and failed(telemetry) == 0
    assert h.queue_size(Signal.TRACES) == 0
    with pytest.raises(ShutdownError):
        await h.consume_traces(make_traces(1))


async def test_shutdown_drain_retries_while_time_remains(make_helper: MakeHelper, telemetry: SelfMetrics,
                                                         clock: FakeClock) -> None:
    backend = Backend([ConsumerError("blip")])
    h = make_helper(backend, queue=QueueConfig(num_consumers=1), retry=RETRY, grace=5.0)
    await h.consume_traces(make_traces(2))
    await h.start()
    await h.shutdown()  # the 1 s retry fits in the 5 s grace
    assert clock.sleeps == [1.0] and sent(telemetry) == 2


@pytest.mark.parametrize("dead", ["hanging", "refusing"])
async def test_shutdown_with_dead_backend_counts_everything_within_grace(
        make_helper: MakeHelper, telemetry: SelfMetrics, caplog: pytest.LogCaptureFixture, dead: str) -> None:
    backend = (Backend(gate=asyncio.Event()) if dead == "hanging"
               else Backend(always=ConsumerError("connection refused")))
    grace = 0.3
    h = make_helper(backend, queue=QueueConfig(num_consumers=2), retry=RetryConfig(), grace=grace, fake_time=False)
    await h.start()
    for i in range(20):
        await h.consume_traces(make_traces(5, batch_index=i))
    await backend.wait(lambda: backend.calls >= 2)
    t0 = time.monotonic()
    with caplog.at_level(logging.ERROR):
        await h.shutdown()
    assert time.monotonic() - t0 < grace + 0.5
    assert failed(telemetry) == 100 and sent(telemetry) == 0
    assert h.queue_size(Signal.TRACES) == 0
    drops = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert 1 <= len(drops) <= 20
    assert sum(r.dropped_items for r in drops) == 100  # type: ignore[attr-defined]


async def test_backoff_in_progress_is_cut_short_by_shutdown(make_helper: MakeHelper,
                                                            telemetry: SelfMetrics) -> None:
    backend = Backend(always=ConsumerError("down"))
    retry = RetryConfig(initial_interval=60.0, randomization_factor=0.0, max_interval=60.0, max_elapsed_time=0.0)
    h = make_helper(backend, queue=QueueConfig(), retry=retry, grace=5.0, fake_time=False)
    await h.start()
    await h.consume_traces(make_traces(3))
    await backend.wait(lambda: backend.calls == 1)
    await settle()
    t0 = time.monotonic()
    await h.shutdown()
    assert time.monotonic() - t0 < 2.0  # neither the 60 s backoff nor the 5 s grace was waited for
    assert failed(telemetry) == 3


async def test_shutdown_is_idempotent_and_safe_without_start(make_helper: MakeHelper) -> None:
    h = make_helper(Backend(), queue=QueueConfig())
    await h.shutdown()
    await h.shutdown()
    await h.start()  # no-op after shutdown
    h2 = make_helper(Backend(), queue=QueueConfig())
    await h2.start()
    await asyncio.gather(h2.shutdown(), h2.shutdown())


async def test_every_item_is_either_sent_or_failed(make_helper: MakeHelper, telemetry: SelfMetrics) -> None:
    errors: list[BaseException] = []
    for i in range(60):
        errors.append(PermanentError("bad") if i % 7 == 0 else ConsumerError("flaky") if i % 3 == 0
                      else ThrottleError("slow", retry_after=0.5))
    backend = Backend(errors)
    retry = RetryConfig(initial_interval=1.0, max_interval=4.0, max_elapsed_time=10.0)
    h = make_helper(backend, queue=QueueConfig(num_consumers=4, queue_size=100), retry=retry)
    await h.start()
    total = 0
    for i in range(50):
        await h.consume_traces(make_traces(i % 5 + 1, batch_index=i))
        total += i % 5 + 1
    await h.shutdown()
    assert sent(telemetry) + failed(telemetry) == total
    assert sent(telemetry) == backend.count()
