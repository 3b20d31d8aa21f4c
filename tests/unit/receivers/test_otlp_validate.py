"""Id checks (fast view/regex path vs exact walk) and metric data point drops."""

from __future__ import annotations

import math
import os
import random
from typing import Any

import pytest

from agent.pdata import Logs, Metrics, Traces, proto
from agent.receivers.otlp import validate as v
from agent.testing import make_logs, make_metrics, make_traces


def _fast_traces(data: Traces) -> bool:
    blobs = v._scope_blobs(v._TracesView(), data.to_bytes(), "resource_spans", "scope_spans")
    return v._fast_ok(blobs, v._SPANS_OK, v._SPAN_ZEROS)


def _fast_logs(data: Logs) -> bool:
    blobs = v._scope_blobs(v._LogsView(), data.to_bytes(), "resource_logs", "scope_logs")
    return v._fast_ok(blobs, v._LOGS_OK, v._LOG_ZEROS)


def _rand_id(rng: random.Random, size: int) -> bytes:
    roll = rng.random()
    if roll < 0.80:
        return os.urandom(size)
    if roll < 0.86:
        return b""
    if roll < 0.92:
        return bytes(size)
    return os.urandom(rng.choice([1, size - 1, size + 1, 2 * size, 24]))


def _random_traces(rng: random.Random) -> Traces:
    req = proto.ExportTraceServiceRequest()
    for _ in range(rng.randint(1, 3)):
        rs = req.resource_spans.add()
        for _ in range(rng.randint(0, 3)):
            ss = rs.scope_spans.add()
            ss.scope.name = "s"
            for _ in range(rng.randint(0, 6)):
                s = ss.spans.add(name="x" * rng.randint(0, 200))
                s.trace_id = _rand_id(rng, 16)
                s.span_id = _rand_id(rng, 8)
                if rng.random() < 0.6:
                    s.parent_span_id = _rand_id(rng, 8)
                for _ in range(rng.choice([0, 0, 0, 1, 2, 5])):
                    s.links.add(trace_id=_rand_id(rng, 16), span_id=_rand_id(rng, 8), trace_state="a=b")
                s.attributes.add(key="k", value=proto.AnyValue(string_value="v"))
    return Traces(req)


def test_fast_path_is_sound_and_agrees_with_the_exact_walk() -> None:
    rng = random.Random(1234)
    fast_accepts = exact_accepts = 0
    for _ in range(3000):
        data = _random_traces(rng)
        exact = v._exact_traces(data.proto)
        if _fast_traces(data):
            fast_accepts += 1
            assert exact is None, exact  # soundness: the fast path never accepts bad ids
        exact_accepts += exact is None
        assert v.check_traces(data) == exact
    assert fast_accepts > 300 and exact_accepts >= fast_accepts


def test_typical_valid_requests_take_the_fast_path() -> None:
    data = make_traces(300)
    m = data.mutable()
    for i, s in enumerate(m.resource_spans[0].scope_spans[0].spans):
        s.trace_id, s.span_id = os.urandom(16), os.urandom(8)
        if i % 3:
            s.parent_span_id = os.urandom(8)
        for _ in range(i % 5):
            s.links.add(trace_id=os.urandom(16), span_id=os.urandom(8))
    assert _fast_traces(Traces.parse(m.SerializeToString()))
    logs = make_logs(50)
    for i, r in enumerate(logs.mutable().resource_logs[0].scope_logs[0].log_records):
        if i % 2:
            r.trace_id, r.span_id = os.urandom(16), os.urandom(8)
    assert _fast_logs(logs)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: setattr(s, "trace_id", b""), "spans[3]: trace_id is empty"),
    (lambda s: setattr(s, "trace_id", b"x" * 15), "trace_id must be 16 bytes, got 15"),
    (lambda s: setattr(s, "trace_id", bytes(16)), "trace_id is all zeros"),
    (lambda s: setattr(s, "span_id", bytes(8)), "span_id is all zeros"),
    (lambda s: setattr(s, "span_id", b"x" * 9), "span_id must be 8 bytes, got 9"),
    (lambda s: setattr(s, "parent_span_id", b"x" * 4), "parent_span_id must be 8 bytes, got 4"),
    (lambda s: s.links.add(trace_id=b"x" * 16, span_id=b"y" * 7), "spans[3].links[0]: span_id must be 8 bytes"),
])
def test_bad_span_ids_are_reported(edit: Any, message: str) -> None:
    data = make_traces(5)
    edit(data.mutable().resource_spans[0].scope_spans[0].spans[3])
    assert message in (v.check_traces(Traces.parse(data.to_bytes())) or "")


def test_zero_parent_and_link_ids_are_tolerated() -> None:
    data = make_traces(2)
    s = data.mutable().resource_spans[0].scope_spans[0].spans[1]
    s.parent_span_id = bytes(8)
    s.links.add(trace_id=bytes(16), span_id=bytes(8))
    assert v.check_traces(data) is None


def test_log_ids() -> None:
    assert v.check_logs(make_logs(3)) is None  # no ids at all is fine
    for tid, sid, message in [(b"x" * 16, b"", None), (b"", b"y" * 8, None), (bytes(16), b"", "trace_id is all zeros"),
                              (b"x" * 3, b"", "trace_id must be 16 bytes"), (b"x" * 16, bytes(8), "span_id is all zeros")]:
        data = make_logs(3)
        rec = data.mutable().resource_logs[0].scope_logs[0].log_records[2]
        rec.trace_id, rec.span_id = tid, sid
        got = v.check_logs(data)
        assert (got is None) if message is None else (message in (got or "")), (tid, sid, got)


def _histogram_request(points: list[dict[str, Any]]) -> Metrics:
    req = proto.ExportMetricsServiceRequest()
    m = req.resource_metrics.add().scope_metrics.add().metrics.add(name="h")
    for p in points:
        m.histogram.data_points.add(**p)
    return Metrics(req)


def test_invalid_points_are_dropped_and_counted() -> None:
    ok = {"time_unix_nano": 10, "bucket_counts": [1, 2], "explicit_bounds": [1.0], "count": 3}
    data = _histogram_request([
        ok,
        {**ok, "explicit_bounds": [math.nan]},
        {**ok, "explicit_bounds": [math.inf]},
        {**ok, "bucket_counts": [1, 2, 3]},
        {**ok, "time_unix_nano": 1 << 63},
        {**ok, "start_time_unix_nano": (1 << 64) - 1},
        {"time_unix_nano": 5, "count": 2, "sum": 1.0},  # no buckets at all: valid
        {**ok, "explicit_bounds": [1e308, 1e308], "bucket_counts": [1, 1, 1]},  # finite (the sum overflows)
    ])
    dropped, reason = v.drop_invalid_points(data)
    assert dropped == 5
    assert "dropped 5 invalid data points" in reason and "2 with NaN or infinite" in reason
    assert "1 with bucket_counts length" in reason and "2 with timestamps at or after year 2262" in reason
    assert data.item_count == 3
    assert not data.has_original_bytes


def test_metrics_emptied_by_drops_are_removed_and_valid_data_untouched() -> None:
    data = make_metrics(3)
    raw = data.to_bytes()
    assert v.drop_invalid_points(data) == (0, "")
    assert data.to_bytes() is raw
    m = data.mutable().resource_metrics[0].scope_metrics[0]
    m.metrics.add(name="bad").gauge.data_points.add(time_unix_nano=1 << 63, as_int=1)
    dropped, _ = v.drop_invalid_points(data)
    assert dropped == 1
    assert [x.name for x in data.proto.resource_metrics[0].scope_metrics[0].metrics] == ["test.requests"]
