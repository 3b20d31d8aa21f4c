"""Configuration of the ``jaeger`` exporter (Jaeger api_v2 gRPC, legacy Jaeger < 1.35).

Keys: the gRPC client keys of the collector's removed ``jaeger`` exporter
(``configgrpc``; see :class:`agent.exporters.otlp.grpc_client.GrpcClientConfig`):
``endpoint`` (required; ``host`` alone gets port 14250), ``tls``, ``headers``,
``compression`` (default none, as that exporter had), ``keepalive``,
``balancer_name``, ``authority``, ``wait_for_ready``; the exporter helper's
``timeout`` (5s), ``sending_queue`` and ``retry_on_failure``; and one
otel-sidecar key:

* ``internal_kind_tag`` (false): also tag INTERNAL spans ``span.kind=internal``
  as the collector did; the OpenTelemetry spec omits the tag (team decision,
  protocols.md 6.3).

Prefer the ``otlp`` exporter for Jaeger >= 1.35 (v1 is end-of-life; Jaeger v2
takes OTLP natively): it forwards spans loss-free and costs far less CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.exporters.otlp.grpc_client import GrpcClientConfig, GrpcCompression

__all__ = ["DEFAULT_PORT", "Config"]

#: Jaeger collector's gRPC port.
DEFAULT_PORT = 14250


@dataclass(frozen=True)
class Config(GrpcClientConfig):
    """The ``jaeger`` exporter's config (see the module docstring)."""

    compression: GrpcCompression = ""
    internal_kind_tag: bool = False
