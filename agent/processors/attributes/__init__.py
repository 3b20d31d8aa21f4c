"""The ``attributes`` processor: edits span, log record and data point attributes.

See :mod:`agent.processors.attributes.processor`; the action engine in
:mod:`~agent.processors.attributes.actions` is shared with the ``resource``
processor.
"""

from agent.processors.attributes.actions import ActionConfig, ActionPlan
from agent.processors.attributes.config import Config
from agent.processors.attributes.factory import FACTORY
from agent.processors.attributes.matching import AttributeMatch, LibraryMatch, Matcher, MatchProperties
from agent.processors.attributes.processor import AttributesProcessor

__all__ = [
    "FACTORY",
    "ActionConfig",
    "ActionPlan",
    "AttributeMatch",
    "AttributesProcessor",
    "Config",
    "LibraryMatch",
    "MatchProperties",
    "Matcher",
]
