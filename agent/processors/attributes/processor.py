"""The ``attributes`` processor: edits span, log record and data point attributes.

Role
    Runs an ordered list of attribute actions (insert, update, upsert,
    delete, hash, extract, convert; see
    :mod:`agent.processors.attributes.actions`) on the attributes of every
    span (traces), log record (logs) or metric data point (metrics) of a
    request, optionally restricted by ``include``/``exclude``
    (:mod:`agent.processors.attributes.matching`).

Invariants
    Declares ``Capabilities(mutates_data=True)``: it gets a private copy from
    the fan-out and calls ``PData.mutable()`` before editing, which drops the
    original wire bytes (exporters re-serialize). Actions and matchers are
    compiled once at creation; per item the work is a scan of a short
    ``KeyValue`` list per action, and resource- and scope-level matching runs
    once per resource and scope, not per item.

Blocking and errors
    Synchronous CPU work on the event loop, proportional to items × actions
    (microseconds per item), then an ``await`` on the next consumer whose
    errors reach the caller unchanged. Values that do not convert are left
    unchanged and logged at debug level only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.component import Settings, Signal
from agent.config.decode import join_path
from agent.errors import ConfigError, ConfigErrors
from agent.pdata import PData
from agent.processors.attributes.actions import ActionPlan
from agent.processors.attributes.config import Config
from agent.processors.attributes.matching import Matcher
from agent.processors.base import ProcessorBase

__all__ = ["AttributesProcessor"]

_ITEM_CHECK = {Signal.TRACES: "span", Signal.LOGS: "log", Signal.METRICS: "metric"}


class AttributesProcessor(ProcessorBase):
    """Applies attribute actions to the items of one signal.

    Args:
        settings: the component's settings (id, telemetry, logger, pipeline).
        config: the decoded ``processors.attributes`` config.
        signal: the signal of the pipeline.
        next_consumer: where the edited data goes.

    Raises:
        ConfigErrors: ``include``/``exclude`` use properties that do not apply to ``signal``.
    """

    mutates_data = True

    def __init__(self, settings: Settings, config: Config, signal: Signal, next_consumer: object) -> None:
        super().__init__(settings, signal, next_consumer)
        problems = config.problems_for(signal)
        if problems:
            base = f"{settings.kind.section}.{settings.id}"
            raise ConfigErrors(ConfigError(join_path(base, sub), msg) for sub, msg in problems)
        self._plan = ActionPlan(config.actions, settings.logger)
        self._include = Matcher(config.include) if config.include is not None else None
        self._exclude = Matcher(config.exclude) if config.exclude is not None else None
        check = _ITEM_CHECK[signal]
        self._include_item: Callable[[Any], bool] | None = (
            getattr(self._include, check) if self._include is not None else None)
        self._exclude_item: Callable[[Any], bool] | None = (
            getattr(self._exclude, check) if self._exclude is not None else None)
        self._visit: Callable[[Any], None] = self._visit_metric if signal is Signal.METRICS else self._visit_item

    async def _consume(self, data: PData) -> None:
        n = data.item_count
        self._obs.incoming(self.signal, n)
        if n:
            self._apply(data.fields, data.mutable())
        self._obs.outgoing(self.signal, n)
        await self._next(data)

    def _apply(self, fields: tuple[str, str, str], request: Any) -> None:
        rfield, sfield, ifield = fields
        include, exclude = self._include, self._exclude
        include_item, exclude_item = self._include_item, self._exclude_item
        visit = self._visit
        for rs in getattr(request, rfield):
            if include is not None and not include.resource(rs.resource):
                continue
            excluded_resource = exclude is not None and exclude.resource(rs.resource)
            for ss in getattr(rs, sfield):
                if include is not None and not include.scope(ss.scope):
                    continue
                excluded_scope = excluded_resource and exclude is not None and exclude.scope(ss.scope)
                for item in getattr(ss, ifield):
                    if include_item is not None and not include_item(item):
                        continue
                    if excluded_scope and exclude_item is not None and exclude_item(item):
                        continue
                    visit(item)

    def _visit_item(self, item: Any) -> None:
        self._plan(item.attributes)

    def _visit_metric(self, metric: Any) -> None:
        which = metric.WhichOneof("data")
        if which is None:
            return
        plan = self._plan
        for point in getattr(metric, which).data_points:
            plan(point.attributes)
