"""The ``batch`` processor: groups items into larger requests by size or age.

See :mod:`agent.processors.batch.processor` for behaviour and limits.
"""

from agent.processors.batch.config import Config
from agent.processors.batch.factory import FACTORY
from agent.processors.batch.processor import BUFFER_LIMIT_FACTOR, BatchProcessor

__all__ = ["BUFFER_LIMIT_FACTOR", "FACTORY", "BatchProcessor", "Config"]
