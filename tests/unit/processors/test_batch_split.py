"""split_head: one cut, order, resource and scope kept, metrics cut inside a metric."""

from __future__ import annotations

import pytest

from agent.component import Signal
from agent.pdata import Logs, Metrics, PData, Traces
from agent.processors.batch.split import split_head
from agent.testing import make_logs, make_metrics, make_traces

from .helpers import MAKERS, ids_of


def _three_resources(signal: Signal) -> PData:
    parts = [MAKERS[signal](n, batch_index=b, service=f"svc-{b}") for b, n in enumerate((3, 4, 5))]
    merged = type(parts[0]).merge(parts)
    return type(merged).parse(merged.to_bytes())


@pytest.mark.parametrize("signal", list(Signal))
@pytest.mark.parametrize("k", [1, 3, 4, 7, 8, 11])
def test_split_head_keeps_order_and_context(signal: Signal, k: int) -> None:
    data = _three_resources(signal)
    original = data.to_bytes()
    head, tail = split_head(data, k)
    assert (head.item_count, tail.item_count) == (k, 12 - k)
    # the counts given are the real counts
    assert type(head).parse(head.to_bytes()).item_count == k
    assert type(tail).parse(tail.to_bytes()).item_count == 12 - k
    assert ids_of([head]) + ids_of([tail]) == ids_of([data])
    assert data.to_bytes() == original  # the source is untouched
    services = []
    for part in (head, tail):
        for res in part.resources():
            (kv,) = [a for a in res.resource.attributes if a.key == "service.name"]
            services.append(kv.value.string_value)
            for scope in getattr(res, part.fields[1]):
                assert scope.scope.name == "agent.testing"
    assert set(services) == {"svc-0", "svc-1", "svc-2"}


def test_split_metric_points_keep_metric_identity() -> None:
    data = make_metrics(10)
    head, tail = split_head(data, 4)
    for part, n in ((head, 4), (tail, 6)):
        (rm,) = part.proto.resource_metrics
        (sm,) = rm.scope_metrics
        (m,) = sm.metrics
        assert m.name == "test.requests" and m.sum.is_monotonic
        assert len(m.sum.data_points) == n
    assert [p.as_int for p in tail.proto.resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points] == list(
        range(5, 11))


@pytest.mark.parametrize(("k", "head_names", "tail_names"), [
    (4, ["test.requests"], ["empty", "second"]),  # head full: the empty metric opens the tail
    (5, ["test.requests", "empty", "second"], ["second"]),  # head still filling: it stays in the head
])
def test_metric_without_points_follows_the_part_being_filled(
        k: int, head_names: list[str], tail_names: list[str]) -> None:
    data = make_metrics(4)
    sm = data.mutable().resource_metrics[0].scope_metrics[0]
    empty = sm.metrics.add()
    empty.name = "empty"
    extra = sm.metrics.add()
    extra.CopyFrom(sm.metrics[0])
    extra.name = "second"
    head, tail = split_head(data, k)
    assert [m.name for m in head.proto.resource_metrics[0].scope_metrics[0].metrics] == head_names
    assert [m.name for m in tail.proto.resource_metrics[0].scope_metrics[0].metrics] == tail_names
    assert head.item_count + tail.item_count == 8


@pytest.mark.parametrize("k", [0, 5, -1])
def test_split_head_rejects_out_of_range(k: int) -> None:
    with pytest.raises(ValueError):
        split_head(make_logs(5), k)


def test_split_head_types() -> None:
    assert isinstance(split_head(make_traces(2), 1)[0], Traces)
    assert isinstance(split_head(make_logs(2), 1)[1], Logs)
    assert isinstance(split_head(make_metrics(2), 1)[0], Metrics)
