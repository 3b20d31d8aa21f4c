"""Configuration of the ``otlp`` exporter (alias ``otlp_grpc``): OTLP over gRPC.

Keys and defaults are the collector's (``exporter/otlpexporter``):
``endpoint`` (required, ``host:port``), ``compression`` (``gzip``),
``timeout`` (5s), ``tls``, ``headers``, ``keepalive``, ``balancer_name``,
``authority``, ``wait_for_ready``, ``sending_queue``, ``retry_on_failure``;
see :class:`agent.exporters.otlp.grpc_client.GrpcClientConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.exporters.otlp.grpc_client import GrpcClientConfig

__all__ = ["Config"]


@dataclass(frozen=True)
class Config(GrpcClientConfig):
    """The ``otlp`` exporter's config (all keys from :class:`GrpcClientConfig`)."""
