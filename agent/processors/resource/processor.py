"""The ``resource`` processor: edits the resource attributes of every resource in a request.

Role
    Runs the ordered attribute actions of its config (the same engine as the
    ``attributes`` processor: :mod:`agent.processors.attributes.actions`) on
    the ``Resource.attributes`` of each ``ResourceSpans``/``ResourceMetrics``/
    ``ResourceLogs`` of a request. Typical uses: set ``deployment.environment``
    or ``k8s.cluster.name``, copy or delete an attribute, hash an identifier.

Invariants
    Declares ``Capabilities(mutates_data=True)``; calls ``PData.mutable()``
    before editing, which drops the original wire bytes. The work is per
    resource, not per item, so it is cheap even for large requests.

Blocking and errors
    Synchronous CPU work on the event loop, then an ``await`` on the next
    consumer whose errors reach the caller unchanged.
"""

from __future__ import annotations

from agent.component import Settings, Signal
from agent.pdata import PData
from agent.processors.attributes.actions import ActionPlan
from agent.processors.base import ProcessorBase
from agent.processors.resource.config import Config

__all__ = ["ResourceProcessor"]


class ResourceProcessor(ProcessorBase):
    """Applies attribute actions to resource attributes.

    Args:
        settings: the component's settings (id, telemetry, logger, pipeline).
        config: the decoded ``processors.resource`` config.
        signal: the signal of the pipeline.
        next_consumer: where the edited data goes.
    """

    mutates_data = True

    def __init__(self, settings: Settings, config: Config, signal: Signal, next_consumer: object) -> None:
        super().__init__(settings, signal, next_consumer)
        self._plan = ActionPlan(config.attributes, settings.logger)

    async def _consume(self, data: PData) -> None:
        n = data.item_count
        self._obs.incoming(self.signal, n)
        request = data.mutable()
        plan = self._plan
        for rs in getattr(request, data.fields[0]):
            plan(rs.resource.attributes)
        self._obs.outgoing(self.signal, n)
        await self._next(data)
