"""The validated configuration: components resolved through the registry,
pipelines checked, every problem reported with its YAML path."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.component import ComponentID, Factory, Kind, Signal
from agent.config.decode import Duration, decode
from agent.errors import ConfigError, ConfigErrors

__all__ = ["ComponentConfig", "Config", "PipelineConfig", "PipelineID", "TelemetryConfig", "build"]

_SECTIONS = ("receivers", "processors", "exporters", "connectors", "extensions", "service")


@dataclass(frozen=True, slots=True)
class PipelineID:
    signal: Signal
    name: str = ""

    def __str__(self) -> str:
        return f"{self.signal.value}/{self.name}" if self.name else self.signal.value


@dataclass(frozen=True)
class _LogsTelemetry:
    level: Literal["debug", "info", "warn", "error"] = "info"
    encoding: Literal["json", "console"] = "json"
    development: bool = False
    disable_caller: bool = False
    disable_stacktrace: bool = False
    sampling: dict[str, Any] = field(default_factory=dict)
    output_paths: list[str] = field(default_factory=lambda: ["stderr"])
    error_output_paths: list[str] = field(default_factory=lambda: ["stderr"])
    initial_fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _PromPull:
    host: str = "127.0.0.1"
    port: int = 8888
    without_units: bool = False
    without_type_suffix: bool = False
    without_scope_info: bool = False


@dataclass(frozen=True)
class _PullExporter:
    prometheus: _PromPull = field(default_factory=_PromPull)


@dataclass(frozen=True)
class _Pull:
    exporter: _PullExporter = field(default_factory=_PullExporter)


@dataclass(frozen=True)
class _Reader:
    pull: _Pull | None = None
    periodic: dict[str, Any] | None = None


@dataclass(frozen=True)
class _MetricsTelemetry:
    level: Literal["none", "basic", "normal", "detailed"] = "normal"
    #: Deprecated in the collector in favour of ``readers``; still accepted.
    address: str = ""
    readers: list[_Reader] = field(default_factory=list)


@dataclass(frozen=True)
class TelemetryConfig:
    logs: _LogsTelemetry = field(default_factory=_LogsTelemetry)
    metrics: _MetricsTelemetry = field(default_factory=_MetricsTelemetry)
    traces: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics_endpoint(self) -> tuple[str, int] | None:
        """(host, port) of the self-metrics endpoint, or None when level is none."""
        m = self.metrics
        if m.level == "none":
            return None
        for r in m.readers:
            if r.pull is not None:
                p = r.pull.exporter.prometheus
                return (p.host, p.port)
        if m.readers:
            return None
        if m.address:
            host, _, port = m.address.rpartition(":")
            return (host or "127.0.0.1", int(port))
        return ("127.0.0.1", 8888)

    def validate(self) -> list[tuple[str, str]]:
        out = []
        if self.metrics.address:
            _, sep, port = self.metrics.address.rpartition(":")
            if not sep or not port.isdigit():
                out.append(("metrics.address", f"expected host:port, got {self.metrics.address!r}"))
        for i, r in enumerate(self.metrics.readers):
            if r.periodic is not None:
                out.append((f"metrics.readers[{i}].periodic", "not implemented by otel-sidecar; use pull"))
        return out


@dataclass(frozen=True)
class _RawPipeline:
    receivers: list[str] = field(default_factory=list)
    processors: list[str] = field(default_factory=list)
    exporters: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _RawService:
    extensions: list[str] = field(default_factory=list)
    pipelines: dict[str, _RawPipeline] = field(default_factory=dict)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    #: otel-sidecar extension: how long exporters may drain their queues on SIGTERM.
    shutdown_grace: Duration = 10.0


@dataclass(frozen=True, slots=True)
class ComponentConfig:
    id: ComponentID
    kind: Kind
    factory: Factory
    config: Any


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    id: PipelineID
    receivers: tuple[ComponentID, ...]
    processors: tuple[ComponentID, ...]
    exporters: tuple[ComponentID, ...]


@dataclass
class Config:
    receivers: dict[ComponentID, ComponentConfig]
    processors: dict[ComponentID, ComponentConfig]
    exporters: dict[ComponentID, ComponentConfig]
    connectors: dict[ComponentID, ComponentConfig]
    extensions: dict[ComponentID, ComponentConfig]
    service_extensions: tuple[ComponentID, ...]
    pipelines: dict[PipelineID, PipelineConfig]
    telemetry: TelemetryConfig
    shutdown_grace: float


def _section(
    kind: Kind, raw: Any, errors: list[ConfigError], invalid: set[ComponentID]
) -> dict[ComponentID, ComponentConfig]:
    """Decode one section; ids that are defined but invalid go to ``invalid`` so
    references to them are not reported a second time."""
    from agent import components

    out: dict[ComponentID, ComponentConfig] = {}
    sec = kind.section
    if raw is None:
        return out
    if not isinstance(raw, dict):
        errors.append(ConfigError(sec, f"expected a mapping of component ids, got {type(raw).__name__}"))
        return out
    for key, body in raw.items():
        path = f"{sec}.{key}"
        cid = None
        try:
            cid = ComponentID.parse(key, path)
            factory = components.lookup(kind, cid.type, path)
            if cid in out:
                raise ConfigError(path, "duplicate component id")
            cfg: Any = decode(factory.config_class, body, path)
            out[cid] = ComponentConfig(cid, kind, factory, cfg)
        except ConfigErrors as e:
            errors.extend(e.errors)
            if cid is not None:
                invalid.add(cid)
        except ConfigError as e:
            errors.append(e)
            if cid is not None:
                invalid.add(cid)
    return out


def build(raw: dict[str, Any]) -> Config:
    """Validate a merged, expanded raw config.

    Raises:
        ConfigErrors: every problem found.
    """
    errors: list[ConfigError] = []
    for key in raw:
        if key not in _SECTIONS:
            errors.append(ConfigError(str(key), f"unknown top-level key; valid keys: {', '.join(_SECTIONS)}"))
    invalid: set[ComponentID] = set()
    receivers = _section(Kind.RECEIVER, raw.get("receivers"), errors, invalid)
    processors = _section(Kind.PROCESSOR, raw.get("processors"), errors, invalid)
    exporters = _section(Kind.EXPORTER, raw.get("exporters"), errors, invalid)
    connectors = _section(Kind.CONNECTOR, raw.get("connectors"), errors, invalid)
    extensions = _section(Kind.EXTENSION, raw.get("extensions"), errors, invalid)

    for cid in connectors:
        if cid in receivers or cid in exporters:
            errors.append(ConfigError(f"connectors.{cid}", "a connector id must not also name a receiver or exporter"))

    try:
        svc = decode(_RawService, raw.get("service"), "service")
    except ConfigErrors as e:
        errors.extend(e.errors)
        svc = _RawService()

    svc_ext: list[ComponentID] = []
    for i, text in enumerate(svc.extensions):
        path = f"service.extensions[{i}]"
        try:
            cid = ComponentID.parse(text, path)
        except ConfigError as e:
            errors.append(e)
            continue
        if cid in invalid:
            continue
        if cid not in extensions:
            errors.append(ConfigError(path, f"references extension {str(cid)!r} which is not configured"))
        elif cid in svc_ext:
            errors.append(ConfigError(path, f"extension {str(cid)!r} listed twice"))
        else:
            svc_ext.append(cid)

    pipelines: dict[PipelineID, PipelineConfig] = {}
    if not svc.pipelines:
        errors.append(ConfigError("service.pipelines", "at least one pipeline is required"))
    for pkey, p in svc.pipelines.items():
        ppath = f"service.pipelines.{pkey}"
        sig_text, _, pname = pkey.partition("/")
        try:
            signal = Signal(sig_text)
        except ValueError:
            errors.append(ConfigError(ppath, f"unknown signal {sig_text!r}; expected traces, metrics or logs"))
            continue
        pid = PipelineID(signal, pname)
        rec = _refs(p.receivers, f"{ppath}.receivers", (receivers, connectors), signal, "receiver", errors, invalid)
        proc = _refs(p.processors, f"{ppath}.processors", (processors,), signal, "processor", errors, invalid)
        exp = _refs(p.exporters, f"{ppath}.exporters", (exporters, connectors), signal, "exporter", errors, invalid)
        if not p.receivers:
            errors.append(ConfigError(f"{ppath}.receivers", "at least one receiver is required"))
        if not p.exporters:
            errors.append(ConfigError(f"{ppath}.exporters", "at least one exporter is required"))
        if len(set(p.processors)) != len(p.processors):
            errors.append(ConfigError(f"{ppath}.processors", "a processor may appear only once per pipeline"))
        pipelines[pid] = PipelineConfig(pid, tuple(rec), tuple(proc), tuple(exp))

    _check_connectors(connectors, pipelines, errors)
    if errors:
        raise ConfigErrors(errors)
    return Config(
        receivers, processors, exporters, connectors, extensions, tuple(svc_ext), pipelines,
        svc.telemetry, svc.shutdown_grace,
    )


def _refs(
    ids: list[str],
    path: str,
    pools: tuple[dict[ComponentID, ComponentConfig], ...],
    signal: Signal,
    role: str,
    errors: list[ConfigError],
    invalid: set[ComponentID],
) -> list[ComponentID]:
    out = []
    for i, text in enumerate(ids):
        ipath = f"{path}[{i}]"
        try:
            cid = ComponentID.parse(text, ipath)
        except ConfigError as e:
            errors.append(e)
            continue
        cc = next((pool[cid] for pool in pools if cid in pool), None)
        if cc is None and cid in invalid:
            continue  # already reported where it is defined
        if cc is None:
            errors.append(ConfigError(ipath, f"references {role} {str(cid)!r} which is not configured"))
            continue
        if cc.kind is not Kind.CONNECTOR and cc.factory.signals and signal not in cc.factory.signals:
            supported = ", ".join(sorted(s.value for s in cc.factory.signals))
            errors.append(ConfigError(
                ipath, f"{role} {str(cid)!r} does not support {signal.value} (supports {supported})"))
            continue
        out.append(cid)
    return out


def _check_connectors(
    connectors: dict[ComponentID, ComponentConfig],
    pipelines: dict[PipelineID, PipelineConfig],
    errors: list[ConfigError],
) -> None:
    for cid, cc in connectors.items():
        as_exp = {p.id.signal for p in pipelines.values() if cid in p.exporters}
        as_rec = {p.id.signal for p in pipelines.values() if cid in p.receivers}
        path = f"connectors.{cid}"
        if not as_exp and not as_rec:
            continue  # defined but unused: validated, never started
        if not as_exp or not as_rec:
            errors.append(ConfigError(
                path, "a connector must be used as an exporter in one pipeline and as a receiver in another"))
            continue
        pairs = {(a, b) for a in as_exp for b in as_rec}
        bad = pairs - set(cc.factory.connects)
        usable = pairs & set(cc.factory.connects)
        if not usable:
            pairs_text = ", ".join(f"{a}->{b}" for a, b in sorted(bad))
            errors.append(ConfigError(path, f"connector does not connect {pairs_text}"))


def replace_telemetry(cfg: Config, telemetry: TelemetryConfig) -> Config:
    return dataclasses.replace(cfg, telemetry=telemetry)
