"""Factory of the ``tail_sampling`` processor (traces only)."""

from __future__ import annotations

from agent.component import Signal
from agent.processors.base import processor_factory
from agent.processors.tail_sampling.config import Config
from agent.processors.tail_sampling.processor import TailSamplingProcessor

__all__ = ["FACTORY"]

FACTORY = processor_factory(
    "tail_sampling", Config, TailSamplingProcessor, signals=frozenset({Signal.TRACES}),
    description="buffers spans per trace and keeps whole traces chosen by policies (errors, latency, ...)",
)
