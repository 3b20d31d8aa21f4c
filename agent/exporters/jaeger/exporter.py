"""The ``jaeger`` exporter: OTLP spans converted to Jaeger api_v2 and sent with ``PostSpans``.

Path: the exporter helper (queue -> retry -> timeout) calls :meth:`JaegerExporter.push`
with a Traces batch; the :class:`~agent.exporters.jaeger.convert.Converter`
turns its wire bytes into one ``PostSpansRequest`` per distinct resource (split
when larger than Jaeger's 4 MiB default limit), and each is sent to
``/jaeger.api_v2.CollectorService/PostSpans`` as bytes.

Errors follow the gRPC rules of the OTLP exporter
(:func:`agent.exporters.otlp.grpc_client.error_from_rpc`): UNAVAILABLE and the
other transient codes are retried (honouring RetryInfo), the rest is permanent.
A batch that does not decode is permanent.

Retries resume where they stopped: when request *k* of a batch fails, the
converted requests from *k* on are remembered (bounded) and a retry of the
same batch sends only those, so a multi-resource batch is neither converted
nor delivered twice because one of its requests failed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Final

from google.protobuf.message import DecodeError

from agent import __version__
from agent.component import Host, Settings, Signal
from agent.errors import ConsumerError, PermanentError
from agent.exporters.helper import BaseExporter
from agent.exporters.jaeger.config import DEFAULT_PORT, Config
from agent.exporters.jaeger.convert import Converter
from agent.exporters.otlp.grpc_client import GrpcClient
from agent.pdata import PData

__all__ = ["POST_SPANS", "JaegerExporter"]

#: The Jaeger collector's gRPC method.
POST_SPANS: Final = "/jaeger.api_v2.CollectorService/PostSpans"
_RESUME_ENTRIES: Final = 64


class JaegerExporter(BaseExporter):
    """Jaeger api_v2 gRPC exporter (traces only).

    Args:
        settings: component settings.
        config: the decoded ``jaeger`` config.
        signals: must be ``{traces}``.
        **helper_kw: test hooks forwarded to :class:`BaseExporter` (clock, sleep, rng).
    """

    def __init__(self, settings: Settings, config: Config, signals: Iterable[Signal], **helper_kw: Any) -> None:
        super().__init__(settings, config, signals, **helper_kw)
        self.config = config
        self.converter = Converter(internal_kind_tag=config.internal_kind_tag)
        self.client = GrpcClient(config, user_agent=f"otel-sidecar/{__version__}", default_port=DEFAULT_PORT)
        self._resume: OrderedDict[int, tuple[PData, list[bytes]]] = OrderedDict()

    async def start_backend(self, host: Host) -> None:
        await self.client.start()

    async def shutdown_backend(self) -> None:
        self._resume.clear()
        await self.client.close()

    def _requests(self, data: PData) -> list[bytes]:
        entry = self._resume.pop(id(data), None)
        if entry is not None and entry[0] is data:
            return entry[1]
        try:
            return self.converter.convert(data.to_bytes())
        except DecodeError as e:
            raise PermanentError(f"traces batch cannot be decoded for Jaeger conversion: {e}") from None

    async def push(self, signal: Signal, data: PData) -> None:
        """Convert and send one Traces batch (see the module docstring for errors)."""
        requests = self._requests(data)
        for i, body in enumerate(requests):
            try:
                await self.client.call(POST_SPANS, body, self.config.timeout)
            except PermanentError:
                raise
            except ConsumerError:
                if i > 0:
                    self._resume[id(data)] = (data, requests[i:])
                    while len(self._resume) > _RESUME_ENTRIES:
                        self._resume.popitem(last=False)
                raise
