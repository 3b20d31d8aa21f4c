"""Configuration of the ``otlp`` receiver, in the collector's shape.

Decoded strictly by :mod:`agent.config.decode` (unknown keys are errors)::

    receivers:
      otlp:
        protocols:
          grpc:            # present, even as null: serve OTLP/gRPC
            endpoint: 127.0.0.1:4317
          http:            # present, even as null: serve OTLP/HTTP
            endpoint: 127.0.0.1:4318

Implemented behaviourally: ``endpoint``, ``transport`` (``tcp``/``unix``),
``max_recv_msg_size_mib``, ``max_concurrent_streams``, ``keepalive.*``,
``tls.*`` (``cert_file``, ``key_file``, ``client_ca_file``, ``min_version``,
``max_version``, ``reload_interval``, ``reload_client_ca_file``, ``insecure``),
``max_request_body_size``, ``*_url_path``, ``cors.*``, ``compression_algorithms``,
``read_timeout``, ``read_header_timeout``, ``write_timeout``, ``idle_timeout``,
``keep_alives_enabled`` and ``response_headers``.

Accepted but ignored, because they only tune or annotate and ignoring them
changes no observable contract:

* ``grpc.read_buffer_size`` / ``grpc.write_buffer_size``: grpcio has no equivalent
  socket buffer options;
* ``include_metadata`` (both protocols): otel-sidecar carries no client metadata
  in its data model, so there is nothing to include;
* ``tls.ca_file`` and ``tls.include_system_ca_certs_pool``: a server only uses
  the CA given as ``client_ca_file``, as in the collector;
* ``tcp4``/``tcp6`` as ``transport``: behave as ``tcp`` (the endpoint's host
  picks the address family).

Refused with "not implemented by otel-sidecar": ``auth`` (any value),
``tls.cipher_suites``, ``tls.curve_preferences``, ``tls.cert_pem``/``key_pem``/
``ca_pem``/``client_ca_pem``, and compression algorithms this build cannot
decode (``lz4`` always; ``zstd``/``snappy`` when ``cramjam`` is missing).

Differences from the collector's defaults (documented choices):

* ``endpoint`` defaults to the literal ``127.0.0.1`` (the collector's ``localhost``
  may resolve to ``::1`` only or to both families).
* ``max_recv_msg_size_mib`` is 4 (the collector leaves it unset, which is grpc's 4 MiB).
* ``read_header_timeout`` is 10s (collector: 1m), following the project's
  slowloris goal; aiohttp has a single timer for "waiting for a request's
  headers" and "idle between requests", so the smaller of ``read_header_timeout``
  and ``idle_timeout`` is that timer.
* TLS versions below 1.2 are refused at validation.
"""

from __future__ import annotations

import importlib
import ipaddress
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.config.decode import ByteSize, Duration

__all__ = [
    "CORSConfig",
    "Config",
    "EnforcementPolicy",
    "GRPCConfig",
    "HTTPConfig",
    "KeepaliveConfig",
    "Protocols",
    "ServerParameters",
    "TLSConfig",
    "parse_endpoint",
    "supported_compressions",
]

MiB = 1024 * 1024
NOT_IMPLEMENTED = "not implemented by otel-sidecar"
Problems = list[tuple[str, str]]


def _have_cramjam() -> bool:
    try:
        importlib.import_module("cramjam")
    except ImportError:
        return False
    return True


def supported_compressions() -> tuple[str, ...]:
    """Content-Encoding names the HTTP server can decode (``""`` = identity)."""
    names: tuple[str, ...] = ("", "gzip", "zlib", "deflate")
    if _have_cramjam():
        names += ("zstd", "snappy", "x-snappy-framed")
    return names


#: Encodings the collector knows; the ones missing from supported_compressions()
#: are refused as not implemented rather than as unknown.
_KNOWN_COMPRESSIONS = frozenset({"", "none", "identity", "gzip", "zlib", "deflate", "zstd", "snappy",
                                 "x-snappy-framed", "lz4"})


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port``, ``:port`` for every interface).

    Raises:
        ValueError: not ``host:port`` or a port outside 0-65535.
    """
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected host:port, got {endpoint!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"invalid IPv6 address in {endpoint!r}")
    elif ":" in host:
        raise ValueError(f"IPv6 addresses must be bracketed, as in [::1]:4317; got {endpoint!r}")
    number = int(port)
    if number > 65535:
        raise ValueError(f"port {number} out of range in {endpoint!r}")
    return host, number


def _endpoint_problems(endpoint: str, transport: str) -> Problems:
    if transport == "unix":
        return [] if endpoint else [("endpoint", "a unix socket path is required")]
    try:
        parse_endpoint(endpoint)
    except ValueError as e:
        return [("endpoint", str(e))]
    return []


_TLS_VERSIONS = ("", "1.2", "1.3")


@dataclass(frozen=True)
class TLSConfig:
    """Server TLS (``configtls.ServerConfig``)."""

    cert_file: str = ""
    key_file: str = ""
    #: Ignored by servers (the collector uses it for clients only).
    ca_file: str = ""
    #: Client certificates must be signed by this CA (mutual TLS) when set.
    client_ca_file: str = ""
    #: "1.2" (default) or "1.3".
    min_version: str = ""
    #: "" (highest: 1.3), "1.2" or "1.3".
    max_version: str = ""
    #: Re-read certificate and key files this often (0 = never).
    reload_interval: Duration = 0.0
    reload_client_ca_file: bool = False
    #: True serves plaintext (this block then must not name certificates).
    insecure: bool = False
    include_system_ca_certs_pool: bool = False
    cipher_suites: list[str] = field(default_factory=list)
    curve_preferences: list[str] = field(default_factory=list)
    cert_pem: str = ""
    key_pem: str = ""
    ca_pem: str = ""
    client_ca_pem: str = ""

    @property
    def enabled(self) -> bool:
        return not self.insecure and bool(self.cert_file)

    def validate(self) -> Problems:
        out: Problems = []
        for name in ("cert_pem", "key_pem", "ca_pem", "client_ca_pem"):
            if getattr(self, name):
                out.append((name, f"{NOT_IMPLEMENTED}; use the *_file options"))
        if self.cipher_suites:
            out.append(("cipher_suites", f"{NOT_IMPLEMENTED}; the TLS library's defaults apply"))
        if self.curve_preferences:
            out.append(("curve_preferences", f"{NOT_IMPLEMENTED}; the TLS library's defaults apply"))
        if self.insecure:
            if self.cert_file or self.key_file or self.client_ca_file:
                out.append(("insecure", "insecure: true serves plaintext and cannot be combined with certificates"))
            return out
        if bool(self.cert_file) != bool(self.key_file):
            out.append(("cert_file" if not self.cert_file else "key_file",
                        "cert_file and key_file must be set together"))
        elif not self.cert_file:
            out.append(("cert_file", "a TLS server needs cert_file and key_file (or insecure: true)"))
        for name in ("min_version", "max_version"):
            value = getattr(self, name)
            if value in ("1.0", "1.1"):
                out.append((name, f"TLS {value} is not supported by otel-sidecar; the minimum is 1.2"))
            elif value not in _TLS_VERSIONS:
                out.append((name, f"invalid TLS version {value!r}; expected 1.2 or 1.3"))
        if (self.min_version in _TLS_VERSIONS and self.max_version in _TLS_VERSIONS
                and self.min_version == "1.3" and self.max_version == "1.2"):
            out.append(("max_version", "max_version is below min_version"))
        if self.reload_interval < 0:
            out.append(("reload_interval", "must not be negative"))
        return out


@dataclass(frozen=True)
class ServerParameters:
    """gRPC keepalive server parameters (0 = grpc's default)."""

    max_connection_idle: Duration = 0.0
    max_connection_age: Duration = 0.0
    max_connection_age_grace: Duration = 0.0
    time: Duration = 0.0
    timeout: Duration = 0.0


@dataclass(frozen=True)
class EnforcementPolicy:
    """gRPC keepalive enforcement policy (0/false = grpc's default)."""

    min_time: Duration = 0.0
    permit_without_stream: bool = False


@dataclass(frozen=True)
class KeepaliveConfig:
    server_parameters: ServerParameters | None = None
    enforcement_policy: EnforcementPolicy | None = None


@dataclass(frozen=True)
class GRPCConfig:
    """``protocols.grpc`` (``configgrpc.ServerConfig``)."""

    endpoint: str = "127.0.0.1:4317"
    transport: Literal["tcp", "tcp4", "tcp6", "unix"] = "tcp"
    #: Largest request accepted, after decompression (0 = 4 MiB); larger gets RESOURCE_EXHAUSTED.
    max_recv_msg_size_mib: int = 4
    max_concurrent_streams: int = 0
    read_buffer_size: ByteSize = 512 * 1024
    write_buffer_size: ByteSize = 0
    keepalive: KeepaliveConfig | None = None
    include_metadata: bool = False
    tls: TLSConfig | None = None
    auth: dict[str, Any] | None = None

    @property
    def max_recv_bytes(self) -> int:
        return (self.max_recv_msg_size_mib or 4) * MiB

    def validate(self) -> Problems:
        out = _endpoint_problems(self.endpoint, self.transport)
        if self.auth is not None:
            out.append(("auth", f"{NOT_IMPLEMENTED}: no authenticator extensions are available"))
        if self.max_recv_msg_size_mib < 0:
            out.append(("max_recv_msg_size_mib", "must not be negative"))
        elif self.max_recv_msg_size_mib > 2047:
            out.append(("max_recv_msg_size_mib", "must be below 2048 (grpc's limit is 2 GiB)"))
        if self.max_concurrent_streams < 0:
            out.append(("max_concurrent_streams", "must not be negative"))
        if self.tls is not None and self.tls.enabled:
            if self.tls.min_version == "1.3":
                out.append(("tls.min_version", "grpcio always offers TLS 1.2 and 1.3; "
                            f"min_version 1.3 is {NOT_IMPLEMENTED} for grpc"))
            if self.tls.max_version == "1.2":
                out.append(("tls.max_version", "grpcio always offers TLS 1.2 and 1.3; "
                            f"max_version 1.2 is {NOT_IMPLEMENTED} for grpc"))
        return out


@dataclass(frozen=True)
class CORSConfig:
    """``protocols.http.cors``. Off unless ``allowed_origins`` is non-empty."""

    #: Exact origins or patterns with one ``*`` (``https://*.example.com``); a bare ``*`` is refused.
    allowed_origins: list[str] = field(default_factory=list)
    #: Extra request headers allowed (Accept, Content-Type, Content-Encoding, X-Requested-With always are).
    allowed_headers: list[str] = field(default_factory=list)
    #: Preflight cache time in seconds (0 = not sent; browsers then assume 5s).
    max_age: int = 0
    exposed_headers: list[str] = field(default_factory=list)

    def validate(self) -> Problems:
        out: Problems = []
        for i, origin in enumerate(self.allowed_origins):
            if origin.strip() == "*":
                out.append((f"allowed_origins[{i}]", 'a bare "*" is refused: responses allow credentials, '
                            "so list the origins (wildcards such as https://*.example.com are allowed)"))
            elif origin.count("*") > 1:
                out.append((f"allowed_origins[{i}]", "at most one '*' per origin pattern"))
        if self.max_age < 0:
            out.append(("max_age", "must not be negative"))
        return out


@dataclass(frozen=True)
class HTTPConfig:
    """``protocols.http`` (``confighttp.ServerConfig`` plus the OTLP paths)."""

    endpoint: str = "127.0.0.1:4318"
    transport: Literal["tcp", "tcp4", "tcp6", "unix"] = "tcp"
    #: Largest body accepted, both as received and after decompression (0 = 20 MiB).
    max_request_body_size: ByteSize = 20 * MiB
    traces_url_path: str = "/v1/traces"
    metrics_url_path: str = "/v1/metrics"
    logs_url_path: str = "/v1/logs"
    cors: CORSConfig | None = None
    include_metadata: bool = False
    #: Content-Encodings accepted; None = every one this build decodes, [] = identity only.
    compression_algorithms: list[str] | None = None
    #: Deadline for reading a request body (0 = use write_timeout).
    read_timeout: Duration = 0.0
    read_header_timeout: Duration = 10.0
    #: Deadline for reading a request body when read_timeout is 0 (0 = none).
    write_timeout: Duration = 30.0
    idle_timeout: Duration = 60.0
    keep_alives_enabled: bool = True
    response_headers: dict[str, str] = field(default_factory=dict)
    tls: TLSConfig | None = None
    auth: dict[str, Any] | None = None

    @property
    def body_limit(self) -> int:
        return self.max_request_body_size or 20 * MiB

    @property
    def encodings(self) -> frozenset[str]:
        """Accepted Content-Encoding values, normalised (identity is always accepted)."""
        if self.compression_algorithms is None:
            return frozenset(supported_compressions())
        names = {_normal_encoding(n) for n in self.compression_algorithms}
        return frozenset(names | {""})

    def url_paths(self) -> tuple[str, str, str]:
        return tuple(p if p.startswith("/") else "/" + p  # type: ignore[return-value]
                     for p in (self.traces_url_path, self.metrics_url_path, self.logs_url_path))

    def validate(self) -> Problems:
        out = _endpoint_problems(self.endpoint, self.transport)
        if self.auth is not None:
            out.append(("auth", f"{NOT_IMPLEMENTED}: no authenticator extensions are available"))
        paths = self.url_paths()
        if len(set(paths)) != 3:
            out.append(("traces_url_path", "traces, metrics and logs URL paths must differ"))
        for name, path in zip(("traces_url_path", "metrics_url_path", "logs_url_path"), paths, strict=True):
            if path == "/" or any(c in path for c in "?# "):
                out.append((name, f"invalid URL path {path!r}"))
        supported = set(supported_compressions())
        for i, name in enumerate(self.compression_algorithms or ()):
            norm = _normal_encoding(name)
            if norm not in _KNOWN_COMPRESSIONS and name.lower() not in _KNOWN_COMPRESSIONS:
                out.append((f"compression_algorithms[{i}]", f"unknown compression {name!r}; supported: "
                            + ", ".join(n for n in supported if n)))
            elif norm not in supported:
                out.append((f"compression_algorithms[{i}]", f"{name!r} is {NOT_IMPLEMENTED}; supported: "
                            + ", ".join(n for n in supported if n)))
        for name in ("read_timeout", "read_header_timeout", "write_timeout", "idle_timeout"):
            if getattr(self, name) < 0:
                out.append((name, "must not be negative"))
        for key, value in self.response_headers.items():
            if not key or any(c in key for c in ":\r\n ") or any(c in value for c in "\r\n"):
                out.append((f"response_headers.{key}", "invalid header name or value"))
        return out


def _normal_encoding(name: str) -> str:
    n = name.strip().lower()
    return "" if n in ("none", "identity") else n


@dataclass(frozen=True)
class Protocols:
    grpc: GRPCConfig | None = None
    http: HTTPConfig | None = None


@dataclass(frozen=True)
class Config:
    """The ``otlp`` receiver's configuration."""

    protocols: Protocols = field(default_factory=Protocols)

    def validate(self) -> Problems:
        if self.protocols.grpc is None and self.protocols.http is None:
            return [("protocols", "must specify at least one protocol when using the OTLP receiver "
                                  "(protocols.grpc and/or protocols.http; an empty key enables the defaults)")]
        return []
