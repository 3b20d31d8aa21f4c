"""The ``memory_limiter`` processor: refuses data while the process uses too much memory.

See :mod:`agent.processors.memory_limiter.processor` for behaviour and limits.
"""

from agent.processors.memory_limiter.config import Config
from agent.processors.memory_limiter.factory import FACTORY
from agent.processors.memory_limiter.processor import (
    Limits,
    MemoryLimiterProcessor,
    MemoryMonitor,
    process_rss,
    total_memory,
)

__all__ = [
    "FACTORY",
    "Config",
    "Limits",
    "MemoryLimiterProcessor",
    "MemoryMonitor",
    "process_rss",
    "total_memory",
]
