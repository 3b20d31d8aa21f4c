"""Factory of the ``tail_sampling`` processor (traces only)."""

from __future__ import annotations

from agent.component import Capabilities, Factory, Kind, Settings, Signal, Stability
from agent.processors.tail_sampling.config import Config
from agent.processors.tail_sampling.processor import TailSamplingProcessor

__all__ = ["FACTORY", "create"]


def create(settings: Settings, config: Config, signal: Signal, next_consumer: object) -> TailSamplingProcessor:
    """One tail sampler for one traces pipeline."""
    return TailSamplingProcessor(settings, config, signal, next_consumer)


FACTORY = Factory(
    type="tail_sampling", kind=Kind.PROCESSOR, config_class=Config, create=create,
    signals=frozenset({Signal.TRACES}), capabilities=Capabilities(mutates_data=False), stability=Stability.BETA,
    description="buffers spans per trace and keeps whole traces chosen by policies (errors, latency, ...)",
)
