"""Configuration of the ``otlphttp`` exporter (alias ``otlp_http``): OTLP over HTTP.

Keys and defaults follow the collector's ``exporter/otlphttpexporter`` and
``confighttp.ClientConfig``:

* ``endpoint``: base URL; each signal posts to ``<endpoint>/v1/<signal>``.
* ``traces_endpoint`` / ``metrics_endpoint`` / ``logs_endpoint``: full URLs
  used verbatim for one signal (they win over ``endpoint``).
* ``encoding``: ``proto`` (default, ``application/x-protobuf``) or ``json``
  (OTLP/JSON, ``application/json``).
* ``compression``: ``gzip`` (default), ``deflate``/``zlib`` (zlib stream), or
  ``none``/empty; ``compression_params.level`` (default 1: fastest; the
  team's measurements favour level 1 for outgoing payloads).
* ``timeout``: 30s per attempt; ``headers``; ``tls`` (used for ``https://``
  URLs); ``proxy_url``; ``max_conns_per_host`` (0: unlimited);
  ``idle_conn_timeout`` (90s); ``disable_keep_alives``;
  ``read_buffer_size``/``write_buffer_size`` (accepted, aiohttp sizes its own);
  ``sending_queue``; ``retry_on_failure``.
* ``auth`` is refused (authenticator extensions are not implemented).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from agent.component import Signal
from agent.config.decode import ByteSize, Duration
from agent.exporters.helper import ExporterConfig
from agent.exporters.otlp.tls import TLSClientConfig

__all__ = ["CompressionParams", "Config"]

HttpCompression = Literal["", "none", "gzip", "deflate", "zlib"]


@dataclass(frozen=True, slots=True)
class CompressionParams:
    """``compression_params``: ``level`` 1 (fastest) to 9 (smallest)."""

    level: int = 1

    def validate(self) -> list[tuple[str, str]]:
        return [] if 1 <= self.level <= 9 else [("level", "must be within 1..9")]


def _url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"invalid URL {url!r}: expected http(s)://host[:port][/path]"
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        return f"invalid port in URL {url!r}"
    return None


@dataclass(frozen=True)
class Config(ExporterConfig):
    """The ``otlphttp`` exporter's config (see the module docstring)."""

    timeout: Duration = 30.0
    endpoint: str = ""
    traces_endpoint: str = ""
    metrics_endpoint: str = ""
    logs_endpoint: str = ""
    encoding: Literal["proto", "json"] = "proto"
    compression: HttpCompression = "gzip"
    compression_params: CompressionParams = field(default_factory=CompressionParams)
    headers: dict[str, str] = field(default_factory=dict)
    tls: TLSClientConfig = field(default_factory=TLSClientConfig)
    proxy_url: str = ""
    max_conns_per_host: int = 0
    idle_conn_timeout: Duration = 90.0
    disable_keep_alives: bool = False
    read_buffer_size: ByteSize = 0
    write_buffer_size: ByteSize = 0
    auth: dict[str, Any] | None = None

    def validate(self) -> list[tuple[str, str]]:
        out = list(super().validate())
        if not (self.endpoint or self.traces_endpoint or self.metrics_endpoint or self.logs_endpoint):
            out.append(("endpoint", "at least one of endpoint, traces_endpoint, metrics_endpoint or "
                                    "logs_endpoint must be set"))
        for key in ("endpoint", "traces_endpoint", "metrics_endpoint", "logs_endpoint", "proxy_url"):
            value = getattr(self, key)
            if value and (problem := _url_problem(value)):
                out.append((key, problem))
        if self.max_conns_per_host < 0:
            out.append(("max_conns_per_host", "must be non-negative"))
        if self.idle_conn_timeout < 0:
            out.append(("idle_conn_timeout", "must be non-negative"))
        if self.auth is not None:
            out.append(("auth", "authenticator extensions are not implemented by otel-sidecar; "
                                "send credentials with `headers` instead"))
        for key in self.headers:
            if not key or any(c in key for c in " \t\r\n:") or not key.isascii():
                out.append((f"headers.{key}", "invalid HTTP header name"))
        return out

    def url_for(self, signal: Signal) -> str:
        """The URL ``signal`` is posted to ("" when none is configured).

        A per-signal endpoint is used verbatim; otherwise ``/v1/<signal>`` is
        appended to ``endpoint`` (the collector's ``composeSignalURL``).
        """
        own = getattr(self, f"{signal.value}_endpoint")
        if own:
            return str(own)
        if not self.endpoint:
            return ""
        sep = "" if self.endpoint.endswith("/") else "/"
        return f"{self.endpoint}{sep}v1/{signal.value}"
