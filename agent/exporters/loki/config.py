"""Configuration of the ``loki`` exporter (Loki push API).

Keys and defaults (every block is optional)::

    exporters:
      loki:
        endpoint: http://loki:3100/loki/api/v1/push   # required: the full push URL
        encoding: protobuf          # protobuf (snappy-compressed push.proto) | json
        compression: gzip           # json only: gzip (level 1) | none. protobuf is always snappy
        tenant_id: ""               # X-Scope-OrgID (<= 150 bytes, no ':'); empty or null: none
        headers: {}                 # extra request headers (values are never logged)
        tls: {}                     # client TLS for https:// endpoints (the shared configtls keys:
                                    # ca_file/ca_pem, cert_*/key_*, insecure_skip_verify, min/max_version...)
        timeout: 5s                 # per attempt; plus sending_queue / retry_on_failure (exporter helper)
        labels:
          default_resource: true    # Loki's OTLP index labels (service_name, k8s_namespace_name, ...)
          resource: {}              # extra resource attribute -> label name
          attributes: {}            # log attribute -> label name
          level: level              # label carrying the severity (trace..fatal, unknown); "" = none
          max_label_names: 15       # Loki's max_label_names_per_series
        structured_metadata:
          enabled: true             # trace_id, span_id, severity_text, severity_number (+ attributes)
          attributes: {include: null, exclude: []}
          resource_attributes: {include: [], exclude: []}
          max_entries: 128          # Loki's max_structured_metadata_entries_count
        line_format: json           # json | logfmt | raw
        max_line_size: 256KB        # Loki's default (256,000 bytes); 0 = no limit
        line_too_long: truncate     # truncate | drop

Where a log attribute goes (each attribute is written once):

1. ``labels.attributes`` names it: an index label (and nowhere else).
2. Otherwise ``structured_metadata.attributes``: with ``include`` unset (the
   default) the attributes go to structured metadata only when the line does
   not carry them (``line_format: raw``); ``json`` and ``logfmt`` lines already
   hold them, so storing them twice is opt-in (``include: ["*"]``). ``include``
   set: those keys (exact names or ``*`` globs) are structured metadata and are
   left out of the line; ``exclude`` always wins.
3. Otherwise the line (``json``: ``{"body": ..., "attributes": {...}}``;
   ``logfmt``: ``msg=... key=value``; ``raw``: the body only, the attribute is
   not sent).

High-cardinality fields (trace and span ids, user, session and request ids)
are refused as labels at validation: they belong in structured metadata.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Final, Literal
from urllib.parse import urlsplit

from agent.config.decode import REQUIRED, ByteSize, Duration
from agent.exporters.helper import QueueConfig, RetryConfig, validate_timeout
from agent.exporters.otlp.tls import TLSClientConfig

__all__ = [
    "DEFAULT_RESOURCE_LABELS",
    "HIGH_CARDINALITY",
    "AttributeSelection",
    "Config",
    "LabelsConfig",
    "StructuredMetadataConfig",
    "is_high_cardinality",
    "sanitize_label_name",
]

Problems = list[tuple[str, str]]

#: Resource attributes Loki's native OTLP ingest indexes by default
#: (``grafana/loki:pkg/loghttp/push/otlplabels/config.go``,
#: ``DefaultOTLPResourceAttributesAsIndexLabels``), in Loki's order. Both
#: ``deployment.environment`` (old semconv) and ``deployment.environment.name``
#: are listed upstream; shared/docs list 17 of these 18.
DEFAULT_RESOURCE_LABELS: Final[tuple[str, ...]] = (
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
)

#: Attribute keys / label names that must never become Loki labels (one stream
#: per value: unbounded cardinality). Compared after lower-casing and removing
#: ``.``, ``_`` and ``-``.
HIGH_CARDINALITY: Final[frozenset[str]] = frozenset({
    "traceid", "spanid", "parentspanid", "userid", "enduserid", "useremail", "username", "usersessionid",
    "sessionid", "requestid", "httprequestid", "xrequestid", "correlationid", "messageid", "eventid",
    "logrecorduid", "transactionid", "orderid", "uuid", "guid",
})

_LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")
_MAX_TENANT = 150


def sanitize_label_name(key: str) -> str:
    """Loki's conversion of an attribute key to a label name: invalid characters
    (dots included) become ``_``; a leading digit gets a ``_`` prefix."""
    name = _INVALID_LABEL_CHARS.sub("_", key)
    if not name:
        return "_"
    if name[0].isdigit():
        name = "_" + name
    return name


def is_high_cardinality(name: str) -> bool:
    """True for trace/span/user/session/request ids, whatever their spelling."""
    norm = name.lower().replace(".", "").replace("_", "").replace("-", "")
    return norm in HIGH_CARDINALITY


@dataclass(frozen=True, slots=True)
class AttributeSelection:
    """An allowlist/denylist of attribute keys (exact names or ``*`` globs).

    Attributes:
        include: keys selected; ``None`` means "the default for this place" (see
            :class:`StructuredMetadataConfig`); ``["*"]`` selects every key.
        exclude: keys never selected; wins over ``include``.
    """

    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()

    def matcher(self, default_all: bool) -> _KeyMatcher:
        """A fast predicate over keys; ``default_all`` applies when ``include`` is unset."""
        include = self.include
        return _KeyMatcher(("*",) if include is None and default_all else (include or ()), self.exclude)


class _KeyMatcher:
    """Key predicate with a memo (attribute key sets are small and repeat)."""

    __slots__ = ("_cache", "_exclude", "_include", "all")

    def __init__(self, include: tuple[str, ...], exclude: tuple[str, ...]) -> None:
        self._include = include
        self._exclude = exclude
        self._cache: dict[str, bool] = {}
        #: True when every key is selected (nothing excluded).
        self.all = "*" in include and not exclude

    @property
    def none(self) -> bool:
        """True when no key can be selected."""
        return not self._include

    def __call__(self, key: str) -> bool:
        hit = self._cache.get(key)
        if hit is None:
            hit = _matches(key, self._include) and not _matches(key, self._exclude)
            if len(self._cache) < 4096:
                self._cache[key] = hit
        return hit


def _matches(key: str, patterns: tuple[str, ...]) -> bool:
    return any(p == key or p == "*" or (("*" in p or "?" in p) and fnmatch.fnmatchcase(key, p)) for p in patterns)


@dataclass(frozen=True, slots=True)
class LabelsConfig:
    """``labels``: which values become Loki index labels.

    Attributes:
        default_resource: map Loki's default OTLP resource attributes
            (:data:`DEFAULT_RESOURCE_LABELS`) to labels, dots -> underscores.
        resource: more resource attribute -> label name pairs (win over the defaults).
        attributes: log record attribute -> label name pairs.
        level: name of the label holding the severity level ("" = no such label).
        max_label_names: most label names per stream; extra labels are dropped
            in a fixed order (attribute labels first, then resource labels from
            the end of the list; ``service_name`` and ``level`` last) and counted.
    """

    default_resource: bool = True
    resource: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    level: str = "level"
    max_label_names: int = 15

    def validate(self) -> Problems:
        out: Problems = []
        seen: dict[str, str] = {}
        if self.level:
            out.extend(_check_label("level", self.level, self.level))
            seen[self.level] = "level"
        for section, mapping in (("resource", self.resource), ("attributes", self.attributes)):
            for attr, label in mapping.items():
                path = f"{section}.{attr}"
                out.extend(_check_label(path, attr, label))
                if section == "attributes" and label in seen and seen[label] != path:
                    out.append((path, f"label {label!r} is also produced by {seen[label]}"))
                seen.setdefault(label, path)
        if not 1 <= self.max_label_names <= 1024:
            out.append(("max_label_names", "max_label_names must be within [1, 1024] (Loki's default is 15)"))
        return out


def _check_label(path: str, attr: str, label: str) -> Problems:
    out: Problems = []
    if not _LABEL_NAME_RE.match(label) or label.startswith("__"):
        out.append((path, f"invalid Loki label name {label!r}: use [a-zA-Z_][a-zA-Z0-9_]*, not starting with '__'"))
    for name in (attr, label):
        if is_high_cardinality(name):
            out.append((path, f"{name!r} is a high-cardinality field (one stream per value); it must not be a "
                              "Loki label: keep it in structured metadata (structured_metadata.attributes)"))
            break
    return out


@dataclass(frozen=True, slots=True)
class StructuredMetadataConfig:
    """``structured_metadata``: per-entry, non-indexed key/value pairs (Loki >= 3.0, schema v13).

    Always included when enabled: ``trace_id`` and ``span_id`` (hex),
    ``severity_text`` and ``severity_number`` (when set).

    Attributes:
        enabled: send structured metadata at all (turn off for Loki < 3 or
            ``allow_structured_metadata: false``).
        attributes: log attributes sent as structured metadata. ``include``
            unset: all of them when ``line_format`` is ``raw``, none otherwise
            (the line carries them); see the module docstring.
        resource_attributes: resource attributes that are not labels, sent as
            structured metadata on every entry (default: none).
        max_entries: most pairs per entry (Loki's default limit 128); the rest
            are dropped (counted).
    """

    enabled: bool = True
    attributes: AttributeSelection = field(default_factory=AttributeSelection)
    resource_attributes: AttributeSelection = field(default_factory=lambda: AttributeSelection(include=()))
    max_entries: int = 128

    def validate(self) -> Problems:
        if self.max_entries < 4:
            return [("max_entries", "max_entries must be at least 4 (trace_id, span_id, severity_text, "
                                    "severity_number)")]
        return []


LineFormat = Literal["json", "logfmt", "raw"]


@dataclass(frozen=True)
class Config:
    """The ``loki`` exporter's options (see the module docstring)."""

    endpoint: str = field(default="", metadata=REQUIRED)
    encoding: Literal["protobuf", "json"] = "protobuf"
    compression: Literal["gzip", "none"] = "gzip"
    tenant_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # may hold credentials
    tls: TLSClientConfig = field(default_factory=TLSClientConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    structured_metadata: StructuredMetadataConfig = field(default_factory=StructuredMetadataConfig)
    line_format: LineFormat = "json"
    max_line_size: ByteSize = 256_000
    line_too_long: Literal["truncate", "drop"] = "truncate"
    timeout: Duration = 5.0
    sending_queue: QueueConfig = field(default_factory=QueueConfig)
    retry_on_failure: RetryConfig = field(default_factory=RetryConfig)

    def validate(self) -> Problems:
        out: Problems = list(validate_timeout(self.timeout))
        if self.endpoint:
            parts = urlsplit(self.endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                out.append(("endpoint", f"endpoint {self.endpoint!r} must be a full http(s) URL such as "
                                        "http://loki:3100/loki/api/v1/push"))
            elif parts.path.rstrip("/").endswith("/otlp") or "/otlp/" in parts.path:
                out.append(("endpoint", "this is Loki's native OTLP endpoint: use the otlphttp exporter with "
                                        "endpoint http://loki:3100/otlp for it, or point loki at "
                                        "/loki/api/v1/push"))
        if self.tenant_id and (len(self.tenant_id.encode()) > _MAX_TENANT or ":" in self.tenant_id):
            out.append(("tenant_id", "tenant_id must be at most 150 bytes and must not contain ':'"))
        for name in self.headers:
            if name.lower() in ("content-type", "content-encoding", "content-length"):
                out.append((f"headers.{name}", f"header {name!r} is set by the exporter"))
        if self.max_line_size < 0:
            out.append(("max_line_size", "max_line_size must not be negative"))
        return out
