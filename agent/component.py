"""Component model: ids, kinds, signals, capabilities, factories and settings.

A component folder (``agent/<kind>s/<type>/``) exposes one :class:`Factory`.
The registry (``agent/components.py``) lists the factories; the pipeline graph
asks them for instances. Every instance implements :class:`Component`
(``start``/``shutdown``, both safe to call once each in any order, and
``shutdown`` safe without ``start``) plus the signal-named consumer methods of
``agent/consumer.py`` for the signals it takes.
"""

from __future__ import annotations

import builtins
import enum
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from agent.errors import ConfigError

if TYPE_CHECKING:
    from agent.telemetry.metrics import SelfMetrics

__all__ = [
    "Capabilities",
    "Component",
    "ComponentID",
    "Factory",
    "Host",
    "Kind",
    "Settings",
    "Signal",
    "Stability",
]


class Kind(enum.StrEnum):
    RECEIVER = "receiver"
    PROCESSOR = "processor"
    EXPORTER = "exporter"
    CONNECTOR = "connector"
    EXTENSION = "extension"

    @property
    def section(self) -> str:
        """The top-level config section holding this kind."""
        return self.value + "s"


class Signal(enum.StrEnum):
    TRACES = "traces"
    METRICS = "metrics"
    LOGS = "logs"

    @property
    def item_name(self) -> str:
        """The collector's self-metric item word: spans, metric_points, log_records."""
        return _ITEM_NAMES[self]


_ITEM_NAMES = {Signal.TRACES: "spans", Signal.METRICS: "metric_points", Signal.LOGS: "log_records"}


class Stability(enum.StrEnum):
    DEVELOPMENT = "development"
    ALPHA = "alpha"
    BETA = "beta"
    STABLE = "stable"


_TYPE_RE = re.compile(r"^[a-zA-Z][0-9a-zA-Z_]{0,62}$")
_NAME_BAD = re.compile(r"[\s\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class ComponentID:
    """``type`` or ``type/name``, as in the collector."""

    type: str
    name: str = ""

    @classmethod
    def parse(cls, text: object, path: str = "") -> ComponentID:
        if not isinstance(text, str):
            raise ConfigError(path, f"component id must be a string, got {type(text).__name__}")
        text = text.strip()
        typ, sep, name = text.partition("/")
        typ, name = typ.strip(), name.strip()
        if not _TYPE_RE.match(typ):
            raise ConfigError(path, f"invalid component type {typ!r} in id {text!r}")
        if sep and not name:
            raise ConfigError(path, f"component id {text!r} has an empty name after '/'")
        if len(name) > 1024 or _NAME_BAD.search(name):
            raise ConfigError(path, f"invalid component name {name!r} in id {text!r}")
        return cls(typ, name)

    def __str__(self) -> str:
        return f"{self.type}/{self.name}" if self.name else self.type


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a consumer does to the data it is handed.

    ``mutates_data``: the consumer edits the data in place, so the fan-out must
    give it its own copy and the cached wire bytes must be dropped first.
    """

    mutates_data: bool = False


@runtime_checkable
class Component(Protocol):
    async def start(self, host: Host) -> None: ...

    async def shutdown(self) -> None: ...


class Host(Protocol):
    """What a running component may ask of the service."""

    def get_extension(self, cid: ComponentID) -> Component | None: ...

    def is_ready(self) -> bool:
        """True once every pipeline has started, False while starting or draining."""
        ...


@dataclass(slots=True)
class Settings:
    """What the service passes to a factory when it creates an instance."""

    id: ComponentID
    kind: Kind
    telemetry: SelfMetrics
    logger: logging.Logger
    #: Seconds an exporter may spend draining its queue on shutdown.
    shutdown_grace: float = 10.0
    #: Directory for files a component writes by default (file exporter, queues).
    data_dir: str = "./data"
    extra: dict[str, Any] = field(default_factory=dict)


# A factory's create callables. For receivers and exporters one instance per id
# serves every signal it is used with; processors get one instance per pipeline.
CreateFn = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Factory:
    """Describes one component type.

    Attributes:
        type: the collector type name (``otlp``, ``batch``...).
        kind: receiver, processor, exporter, connector or extension.
        config_class: a dataclass decoded strictly from YAML (see ``agent/config/decode.py``).
        create: builds an instance. Signature by kind:
            receiver: ``create(settings, config, consumers: Mapping[Signal, Consumer])``
            processor: ``create(settings, config, signal, next_consumer)``
            exporter: ``create(settings, config, signals: frozenset[Signal])``
            connector: ``create(settings, config, consumers: Mapping[Signal, Consumer])``
            extension: ``create(settings, config)``
        signals: signals supported (receivers, processors, exporters).
        connects: for connectors, the supported (input signal, output signal) pairs.
        aliases: other type names accepted for this component.
        stability: per-component stability level.
        capabilities: processors only: whether the processor mutates data.
    """

    type: str
    kind: Kind
    config_class: builtins.type[Any]
    create: CreateFn
    signals: frozenset[Signal] = frozenset()
    connects: frozenset[tuple[Signal, Signal]] = frozenset()
    aliases: tuple[str, ...] = ()
    stability: Stability = Stability.BETA
    capabilities: Capabilities = field(default_factory=Capabilities)
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
