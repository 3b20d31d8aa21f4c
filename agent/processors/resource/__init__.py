"""The ``resource`` processor: edits the resource attributes of every resource in a request.

See :mod:`agent.processors.resource.processor`.
"""

from agent.processors.resource.config import Config
from agent.processors.resource.factory import FACTORY
from agent.processors.resource.processor import ResourceProcessor

__all__ = ["FACTORY", "Config", "ResourceProcessor"]
