"""otel-sidecar: an OpenTelemetry-native sidecar collector agent.

The package is laid out like the OpenTelemetry Collector: ``receivers/``,
``processors/``, ``exporters/``, ``connectors/`` and ``extensions/`` hold one
folder per component (config, factory, behaviour); ``components.py`` is the
registry; ``pipeline/`` builds the graph; ``service.py`` runs it.
"""

from importlib import metadata as _metadata

try:
    __version__: str = _metadata.version("otel-sidecar")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
