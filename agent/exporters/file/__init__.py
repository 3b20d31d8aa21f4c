"""The ``file`` exporter: OTLP/JSON lines or length-prefixed protobuf in one file, with rotation.

See :mod:`agent.exporters.file.exporter` for formats and buffering,
:mod:`agent.exporters.file.writer` for rotation and
:mod:`agent.exporters.file.config` for options.
"""

from agent.exporters.file.config import Config
from agent.exporters.file.exporter import FileExporter
from agent.exporters.file.factory import FACTORY

__all__ = ["FACTORY", "Config", "FileExporter"]
