"""Factory of the ``attributes`` processor.

Creating one raises :class:`~agent.errors.ConfigErrors` when ``include``/``exclude``
do not apply to the pipeline's signal.
"""

from __future__ import annotations

from agent.processors.attributes.config import Config
from agent.processors.attributes.processor import AttributesProcessor
from agent.processors.base import processor_factory

__all__ = ["FACTORY"]

FACTORY = processor_factory(
    "attributes", Config, AttributesProcessor,
    description="Inserts, updates, deletes, hashes, extracts or converts span, log and data point attributes.",
)
