"""The ``otlp`` receiver: OTLP/gRPC (default 127.0.0.1:4317) and OTLP/HTTP
(default 127.0.0.1:4318, protobuf and JSON) into the pipelines.

Modules: ``config`` (collector-shaped, strict), ``factory`` (``FACTORY``),
``receiver`` (lifecycle and the transport-independent request core), ``grpc``
and ``http`` (servers), ``status`` (errors to gRPC/HTTP codes), ``validate``
(id and data-point checks), ``compression`` (bounded body decompression).
"""

from agent.receivers.otlp.config import Config
from agent.receivers.otlp.receiver import ListenError, OTLPReceiver

__all__ = ["Config", "ListenError", "OTLPReceiver"]
