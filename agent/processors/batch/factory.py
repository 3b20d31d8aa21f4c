"""Factory of the ``batch`` processor."""

from __future__ import annotations

from agent.processors.base import processor_factory
from agent.processors.batch.config import Config
from agent.processors.batch.processor import BatchProcessor

__all__ = ["FACTORY"]

FACTORY = processor_factory(
    "batch", Config, BatchProcessor,
    description="Groups items into larger requests by size (send_batch_size) or age (timeout).",
)
