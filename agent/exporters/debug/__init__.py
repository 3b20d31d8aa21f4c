"""The ``debug`` exporter: logs what it receives (counts, one line per item, or a full dump).

See :mod:`agent.exporters.debug.exporter` for behaviour and
:mod:`agent.exporters.debug.config` for options.
"""

from agent.exporters.debug.config import Config
from agent.exporters.debug.exporter import DebugExporter
from agent.exporters.debug.factory import FACTORY

__all__ = ["FACTORY", "Config", "DebugExporter"]
