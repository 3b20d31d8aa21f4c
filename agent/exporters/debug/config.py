"""Configuration of the ``debug`` exporter (the collector's keys and defaults).

Collector keys: ``verbosity`` (basic, normal, detailed; default basic),
``sampling_initial`` (2), ``sampling_thereafter`` (1), ``use_internal_logger``
(true), ``output_paths`` (used only without the internal logger; default
stdout), ``output`` (which resource, scope and record sections and attributes
the normal/detailed dumps show) and ``sending_queue`` (absent: no queue, the
exporter logs inline; present, even empty: a queue with the collector's
defaults).

otel-sidecar also accepts ``timeout`` (default 0: none, as the collector
forces for this exporter) and ``retry_on_failure`` (absent: off).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from agent.config.decode import Duration
from agent.exporters.helper import QueueConfig, RetryConfig, validate_timeout

__all__ = ["AttributesOutputConfig", "Config", "OutputConfig", "SectionOutputConfig", "Verbosity"]

Verbosity = Literal["basic", "normal", "detailed"]


@dataclass(frozen=True, slots=True)
class AttributesOutputConfig:
    """Which attributes of a section are shown: all, only ``include``, or all but ``exclude``."""

    enabled: bool = True
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def shows(self, key: str) -> bool:
        if self.include:
            return key in self.include
        return key not in self.exclude


@dataclass(frozen=True, slots=True)
class SectionOutputConfig:
    """Output of one level (resource, scope or record) in the dumps."""

    enabled: bool = True
    attributes: AttributesOutputConfig = field(default_factory=AttributesOutputConfig)


@dataclass(frozen=True, slots=True)
class OutputConfig:
    record: SectionOutputConfig = field(default_factory=SectionOutputConfig)
    scope: SectionOutputConfig = field(default_factory=SectionOutputConfig)
    resource: SectionOutputConfig = field(default_factory=SectionOutputConfig)

    def validate(self) -> list[tuple[str, str]]:
        out = []
        for name in ("record", "scope", "resource"):
            attrs = getattr(self, name).attributes
            if attrs.include and attrs.exclude:
                out.append((f"{name}.attributes",
                            f"cannot specify both include and exclude attributes for {name}"))
        return out


@dataclass(frozen=True)
class Config:
    """The ``debug`` exporter's options (see the module docstring)."""

    verbosity: Verbosity = "basic"
    sampling_initial: int = 2
    sampling_thereafter: int = 1
    use_internal_logger: bool = True
    output_paths: tuple[str, ...] = ()
    output: OutputConfig = field(default_factory=OutputConfig)
    sending_queue: QueueConfig | None = None
    timeout: Duration = 0.0
    retry_on_failure: RetryConfig | None = None

    def validate(self) -> list[tuple[str, str]]:
        return validate_timeout(self.timeout)
