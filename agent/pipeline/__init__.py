"""Pipeline graph: shared receivers, per-pipeline processors, fan-out to exporters, connectors."""

from agent.pipeline.fanout import FanOut
from agent.pipeline.graph import Graph

__all__ = ["FanOut", "Graph"]
