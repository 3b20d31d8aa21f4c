"""Factory of the ``resource`` processor."""

from __future__ import annotations

from agent.processors.base import processor_factory
from agent.processors.resource.config import Config
from agent.processors.resource.processor import ResourceProcessor

__all__ = ["FACTORY"]

FACTORY = processor_factory(
    "resource", Config, ResourceProcessor,
    description="Inserts, updates, deletes, hashes, extracts or converts resource attributes.",
)
