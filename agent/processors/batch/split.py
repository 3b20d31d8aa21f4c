"""Cut the first ``k`` items off a request, keeping resource and scope of each item.

The batch processor needs "exactly ``send_batch_max_size`` items from the front
of the buffer". :meth:`agent.pdata.PData.split` cuts a request into equal
chunks, which costs one message per chunk when only one cut is wanted; this
module makes the single cut, copying each item once.
"""

from __future__ import annotations

from typing import Any, TypeVar

from agent.component import Signal
from agent.pdata import PData, count_metric_points

__all__ = ["split_head"]

P = TypeVar("P", bound=PData)


class _Builder:
    """Builds one request, creating resource and scope entries only when an item lands in them."""

    __slots__ = ("_if", "_res_dst", "_res_src", "_rf", "_scope_dst", "_scope_src", "_sf", "msg")

    def __init__(self, data: PData) -> None:
        self.msg: Any = data.request_class()
        self._rf, self._sf, self._if = data.fields
        self._res_src: Any = None
        self._res_dst: Any = None
        self._scope_src: Any = None
        self._scope_dst: Any = None

    def enter_resource(self, res: Any) -> None:
        self._res_src = res
        self._res_dst = None
        self._scope_dst = None

    def enter_scope(self, scope: Any) -> None:
        self._scope_src = scope
        self._scope_dst = None

    def items(self) -> Any:
        """The item list of the current resource and scope in the request being built."""
        if self._res_dst is None:
            src = self._res_src
            dst = getattr(self.msg, self._rf).add()
            dst.resource.CopyFrom(src.resource)
            dst.schema_url = src.schema_url
            self._res_dst = dst
        if self._scope_dst is None:
            src = self._scope_src
            dst = getattr(self._res_dst, self._sf).add()
            dst.scope.CopyFrom(src.scope)
            dst.schema_url = src.schema_url
            self._scope_dst = dst
        return getattr(self._scope_dst, self._if)


def _split_metric(metric: Any, k: int, head: Any, tail: Any) -> None:
    """Append a copy of ``metric`` holding its first ``k`` points to ``head`` and one
    holding the rest to ``tail``."""
    which = metric.WhichOneof("data")
    for dst, lo, hi in ((head, 0, k), (tail, k, None)):
        piece = dst.add()
        piece.CopyFrom(metric)
        points = getattr(piece, which).data_points
        if hi is not None:
            del points[hi:]
        if lo:
            del points[:lo]


def split_head(data: P, k: int) -> tuple[P, P]:
    """Split ``data`` into its first ``k`` items and the rest.

    Items keep their order, resource and scope. A metric whose points straddle
    the cut is split between the two parts (both keep its name, type and
    metadata). ``data`` itself is not modified.

    Args:
        data: the request to cut.
        k: items in the first part; ``0 < k < data.item_count``.

    Returns:
        ``(head, tail)`` with ``k`` and ``data.item_count - k`` items.

    Raises:
        ValueError: ``k`` is out of range.
    """
    total = data.item_count
    if not 0 < k < total:
        raise ValueError(f"cut point {k} outside 1..{total - 1}")
    rfield, sfield, ifield = data.fields
    is_metrics = data.signal is Signal.METRICS
    head, tail = _Builder(data), _Builder(data)
    room = k
    for res in getattr(data.proto, rfield):
        head.enter_resource(res)
        tail.enter_resource(res)
        for scope in getattr(res, sfield):
            head.enter_scope(scope)
            tail.enter_scope(scope)
            for item in getattr(scope, ifield):
                n = count_metric_points(item) if is_metrics else 1
                if n == 0:  # a metric without points goes with the part being filled
                    (head if room else tail).items().add().CopyFrom(item)
                elif room >= n:
                    head.items().add().CopyFrom(item)
                    room -= n
                elif room:
                    _split_metric(item, room, head.items(), tail.items())
                    room = 0
                else:
                    tail.items().add().CopyFrom(item)
    cls = type(data)
    return cls(head.msg, count=k), cls(tail.msg, count=total - k)
