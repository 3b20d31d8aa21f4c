"""The ``redaction`` processor: removes and masks sensitive data in all three signals.

Role
    Applies :class:`~agent.processors.redaction.redactor.Redactor` to every
    place a string can hide in an OTLP request, which is wider than the
    collector's processor (it misses link attributes, and misses log bodies
    and span events in older releases):

    * traces: resource and scope attributes; span attributes, name and status
      message; event attributes and names; link attributes;
    * logs: resource and scope attributes; record attributes; the body
      (string, map keys and values, arrays);
    * metrics: resource and scope attributes; data point attributes and
      exemplar filtered attributes of every metric type.

    Names and messages only get the value rules (``blocked_values`` and the
    presets); attribute lists get the key rules too.

Invariants
    Declares ``Capabilities(mutates_data=True)``. It walks the request and
    calls ``PData.mutable()`` only when something changed, so a clean request
    keeps its original wire bytes (the OTLP exporters forward them without
    re-encoding). The secret values are never logged; every redaction is
    counted in ``otelcol_processor_redaction_redacted_total{processor, pipeline,
    reason}`` (one increment per reason and request).

Blocking and errors
    Synchronous CPU work on the event loop (memoized: repeated keys and values
    cost a dictionary lookup), then an ``await`` on the next consumer whose
    errors reach the caller unchanged.
"""

from __future__ import annotations

from typing import Any

from agent.component import Settings, Signal
from agent.pdata import PData
from agent.processors.base import ProcessorBase
from agent.processors.redaction.config import Config
from agent.processors.redaction.presets import Tally
from agent.processors.redaction.redactor import Redactor, Summary

__all__ = ["RedactionProcessor"]

_METRIC_KINDS = ("gauge", "sum", "histogram", "exponential_histogram", "summary")


class RedactionProcessor(ProcessorBase):
    """Redacts one signal's data (see the module docstring).

    Args:
        settings: the component's settings (id, telemetry, logger, pipeline).
        config: the decoded ``processors.redaction`` config.
        signal: the signal of the pipeline.
        next_consumer: where the redacted data goes.
    """

    mutates_data = True

    def __init__(self, settings: Settings, config: Config, signal: Signal, next_consumer: object) -> None:
        super().__init__(settings, signal, next_consumer)
        self.redactor = Redactor(config)
        self._counter = settings.telemetry.counter(
            "otelcol_processor_redaction_redacted",
            "Values removed or masked by the redaction processor, by reason (not_allowed, blocked_key, "
            "blocked_value, password, bearer_token, jwt, api_key, credit_card, email, sql_literal, "
            "url_credentials).", ("processor", "pipeline", "reason"))
        self._children: dict[str, Any] = {}
        self._walk = {Signal.TRACES: self._traces, Signal.LOGS: self._logs, Signal.METRICS: self._metrics}[signal]
        if self.redactor.fails_closed:
            self._logger.warning(
                "redaction processor %s: allowed_keys is empty and allow_all_keys is false, so every attribute "
                "is removed (the collector's fail-closed rule); set allow_all_keys: true to only mask values.",
                settings.id)

    async def _consume(self, data: PData) -> None:
        n = data.item_count
        self._obs.incoming(self.signal, n)
        if n:
            if data.read_only:
                data.mutable()  # raises ReadOnlyError: the pipeline must give mutators their own copy
            tally: Tally = {}
            if self._walk(data.proto, tally):
                data.mutable()  # the message was edited in place: drop the stale wire bytes
            if tally:
                self._count(tally)
        self._obs.outgoing(self.signal, n)
        await self._next(data)

    def _count(self, tally: Tally) -> None:
        children = self._children
        for reason, n in tally.items():
            child = children.get(reason)
            if child is None:
                child = children[reason] = self._counter.labels(str(self.id), self.pipeline, reason)
            child.inc(n)

    def _list(self, attrs: Any, tally: Tally) -> bool:
        """One attribute list with its summary attributes."""
        r = self.redactor
        if not r.summary_level:
            return r.attrs(attrs, tally)
        summary = Summary()
        changed = r.attrs(attrs, tally, summary)
        if summary:
            r.write_summary(attrs, summary)
            changed = True
        return changed

    def _common(self, resource: Any, scopes: Any, tally: Tally) -> bool:
        changed = self._list(resource.attributes, tally)
        for scope in scopes:
            changed |= self._list(scope.scope.attributes, tally)
        return changed

    def _traces(self, request: Any, tally: Tally) -> bool:
        r = self.redactor
        text = r.text
        attrs = self._list
        changed = False
        for rs in request.resource_spans:
            changed |= self._common(rs.resource, rs.scope_spans, tally)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    changed |= attrs(span.attributes, tally)
                    name = span.name
                    new = text(name, tally)
                    if new is not name:
                        span.name = new
                        changed = True
                    msg = span.status.message
                    if msg:
                        new = text(msg, tally)
                        if new is not msg:
                            span.status.message = new
                            changed = True
                    for event in span.events:
                        changed |= attrs(event.attributes, tally)
                        ename = event.name
                        new = text(ename, tally)
                        if new is not ename:
                            event.name = new
                            changed = True
                    for link in span.links:
                        changed |= attrs(link.attributes, tally)
        return changed

    def _logs(self, request: Any, tally: Tally) -> bool:
        r = self.redactor
        attrs = self._list
        changed = False
        for rl in request.resource_logs:
            changed |= self._common(rl.resource, rl.scope_logs, tally)
            for sl in rl.scope_logs:
                for record in sl.log_records:
                    changed |= attrs(record.attributes, tally)
                    if record.HasField("body"):
                        changed |= r.body(record.body, record.attributes, tally)
        return changed

    def _metrics(self, request: Any, tally: Tally) -> bool:
        attrs = self._list
        changed = False
        for rm in request.resource_metrics:
            changed |= self._common(rm.resource, rm.scope_metrics, tally)
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    which = metric.WhichOneof("data")
                    if which is None:
                        continue
                    for point in getattr(metric, which).data_points:
                        changed |= attrs(point.attributes, tally)
                        if which != "summary":
                            for ex in point.exemplars:
                                changed |= attrs(ex.filtered_attributes, tally)
        return changed
