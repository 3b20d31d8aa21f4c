"""gRPC client plumbing shared by the ``otlp`` and ``jaeger`` exporters.

* :class:`GrpcClientConfig`: the collector's ``configgrpc.ClientConfig`` keys
  (``endpoint``, ``compression``, ``tls``, ``headers``, ``keepalive``,
  ``balancer_name``, ``authority``, ``wait_for_ready``, buffer sizes) on top of
  the exporter helper's ``timeout``/``sending_queue``/``retry_on_failure``.
* :class:`GrpcClient`: one ``grpc.aio`` channel per exporter instance and a
  raw-bytes unary call (``request_serializer=None``), so callers send bytes
  they already hold (the OTLP exporter sends the batch's original wire bytes).
* :func:`error_from_rpc`: the OTLP retry table (opentelemetry-proto
  ``docs/specification.md``, "Failures") as :mod:`agent.errors` types.

Endpoint forms (as ``configgrpc``): ``host:port``; ``http://host:port``
(plaintext) or ``https://host:port`` (TLS), the scheme overriding
``tls.insecure``; any gRPC target URI such as ``dns:///host:port`` or
``unix:///path`` is passed through.

The channel is created in :meth:`GrpcClient.start` (it needs the running event
loop) and closed in :meth:`GrpcClient.close`; both are idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

import grpc
from google.protobuf.message import DecodeError

from agent.config.decode import REQUIRED, ByteSize, Duration
from agent.errors import ConsumerError, PermanentError, ThrottleError
from agent.exporters.helper import ExporterConfig
from agent.exporters.otlp.tls import TLSClientConfig, grpc_problems
from agent.pdata import proto

__all__ = [
    "RETRYABLE_CODES",
    "GrpcClient",
    "GrpcClientConfig",
    "KeepaliveConfig",
    "error_from_rpc",
    "retry_delay_from_details",
]

#: gRPC codes the OTLP specification lets a client retry (RESOURCE_EXHAUSTED: only with RetryInfo).
RETRYABLE_CODES: Final = frozenset({
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,
})
_DETAILS_KEY: Final = "grpc-status-details-bin"
_MAX_MESSAGE: Final = 200

GrpcCompression = Literal["", "none", "gzip", "deflate"]
_COMPRESSION: Final = {"": grpc.Compression.NoCompression, "none": grpc.Compression.NoCompression,
                       "gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}


@dataclass(frozen=True, slots=True)
class KeepaliveConfig:
    """``keepalive``: client pings on idle connections (configgrpc's defaults).

    Attributes:
        time: idle time after which the client pings the server.
        timeout: how long to wait for the ping's answer before closing.
        permit_without_stream: ping even when no call is active.
    """

    time: Duration = 10.0
    timeout: Duration = 10.0
    permit_without_stream: bool = False

    def validate(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.time < 0:
            out.append(("time", "must be non-negative"))
        if self.timeout < 0:
            out.append(("timeout", "must be non-negative"))
        return out


@dataclass(frozen=True)
class GrpcClientConfig(ExporterConfig):
    """The collector's gRPC client keys plus ``timeout``, ``sending_queue`` and ``retry_on_failure``.

    Attributes:
        endpoint: ``host:port``, ``http(s)://host:port`` or a gRPC target URI.
        compression: ``gzip``, ``deflate``, ``none`` or empty (none).
        tls: TLS settings; plaintext needs ``insecure: true`` (or ``http://``).
        headers: metadata sent with every call (keys are lower-cased).
        keepalive: client keepalive pings; absent: off.
        balancer_name: ``round_robin`` or ``pick_first`` (gRPC load-balancing policy).
        authority: the ``:authority`` sent (virtual host), instead of the endpoint's.
        wait_for_ready: queue calls while the channel connects instead of failing fast.
        read_buffer_size: accepted for compatibility (grpcio sizes its buffers itself).
        write_buffer_size: accepted for compatibility.
        auth: authenticator extension (not implemented: a validation error).
    """

    endpoint: str = field(default="", metadata=REQUIRED)
    compression: GrpcCompression = "gzip"
    tls: TLSClientConfig = field(default_factory=TLSClientConfig)
    headers: dict[str, str] = field(default_factory=dict)
    keepalive: KeepaliveConfig | None = None
    balancer_name: Literal["", "round_robin", "pick_first"] = ""
    authority: str = ""
    wait_for_ready: bool = False
    read_buffer_size: ByteSize = 0
    write_buffer_size: ByteSize = 0
    auth: dict[str, Any] | None = None

    def validate(self) -> list[tuple[str, str]]:
        out = list(super().validate())
        if self.auth is not None:
            out.append(("auth", "authenticator extensions are not implemented by otel-sidecar; "
                                "send credentials with `headers` instead"))
        if self.endpoint.strip() != self.endpoint or any(c.isspace() for c in self.endpoint):
            out.append(("endpoint", "must not contain whitespace"))
        for key in self.headers:
            if not key or not key.isascii() or any(c.isspace() for c in key) or key.lower().startswith("grpc-"):
                out.append((f"headers.{key}", "invalid gRPC metadata key"))
            elif key.lower().endswith("-bin"):
                out.append((f"headers.{key}", "binary (-bin) metadata is not supported in headers"))
        if not self._plaintext:
            out.extend((f"tls.{sub}", msg) for sub, msg in grpc_problems(self.tls))
        return out

    @property
    def _plaintext(self) -> bool:
        if self.endpoint.startswith("http://"):
            return True
        if self.endpoint.startswith("https://"):
            return False
        return self.tls.insecure

    def target(self, default_port: int | None = None) -> tuple[str, bool]:
        """The gRPC target and whether the channel is plaintext.

        Args:
            default_port: appended when a plain ``host`` has no port.
        """
        ep = self.endpoint
        plaintext = self.tls.insecure
        for scheme, insecure in (("http://", True), ("https://", False)):
            if ep.startswith(scheme):
                ep, plaintext = ep[len(scheme):].rstrip("/"), insecure
        if default_port is not None and "://" not in ep and not ep.startswith(("unix:", "dns:", "ipv4:", "ipv6:")):
            host, sep, port = ep.rpartition(":")
            bracketed_v6 = ep.startswith("[") and ep.endswith("]")
            if not sep or bracketed_v6 or not port.isdigit() or (host.count(":") and not host.startswith("[")):
                ep = f"{ep}:{default_port}"
        return ep, plaintext


class GrpcClient:
    """One channel and a raw-bytes unary method.

    Args:
        config: the exporter's gRPC client config.
        method: full method path, e.g. ``/jaeger.api_v2.CollectorService/PostSpans``.
        user_agent: the ``grpc.primary_user_agent`` channel option.
        default_port: port appended to an endpoint without one.
    """

    def __init__(self, config: GrpcClientConfig, *, user_agent: str, default_port: int | None = None) -> None:
        self.config = config
        self.target, self.plaintext = config.target(default_port)
        self._user_agent = user_agent
        self._channel: grpc.aio.Channel | None = None
        self._methods: dict[str, Any] = {}
        self.metadata: tuple[tuple[str, str], ...] = tuple((k.lower(), v) for k, v in config.headers.items())

    def options(self) -> list[tuple[str, Any]]:
        """The channel options derived from the config."""
        c = self.config
        opts: list[tuple[str, Any]] = [
            ("grpc.primary_user_agent", self._user_agent),
            ("grpc.max_send_message_length", -1),
            ("grpc.max_receive_message_length", 4 << 20),
        ]
        if c.balancer_name:
            opts.append(("grpc.lb_policy_name", c.balancer_name))
        if c.authority:
            opts.append(("grpc.default_authority", c.authority))
        if c.tls.server_name_override and not self.plaintext:
            opts.append(("grpc.ssl_target_name_override", c.tls.server_name_override))
            if not c.authority:
                opts.append(("grpc.default_authority", c.tls.server_name_override))
        if c.keepalive is not None:
            opts.append(("grpc.keepalive_time_ms", int(c.keepalive.time * 1000)))
            opts.append(("grpc.keepalive_timeout_ms", int(c.keepalive.timeout * 1000)))
            opts.append(("grpc.keepalive_permit_without_calls", int(c.keepalive.permit_without_stream)))
            opts.append(("grpc.http2.max_pings_without_data", 0))
        return opts

    async def start(self) -> None:
        """Create the channel (idempotent).

        Raises:
            ValueError: a TLS file cannot be read.
        """
        if self._channel is not None:
            return
        compression = _COMPRESSION[self.config.compression]
        if self.plaintext:
            self._channel = grpc.aio.insecure_channel(self.target, options=self.options(), compression=compression)
        else:
            creds = self.config.tls.grpc_credentials()
            self._channel = grpc.aio.secure_channel(self.target, creds, options=self.options(),
                                                    compression=compression)

    async def close(self) -> None:
        """Close the channel, cancelling calls still in flight (idempotent)."""
        channel, self._channel = self._channel, None
        self._methods.clear()
        if channel is not None:
            await channel.close(grace=None)

    async def call(self, method: str, body: bytes, timeout: float) -> bytes:
        """Send ``body`` (an already serialized request) and return the response bytes.

        Args:
            method: full method path.
            body: serialized request message.
            timeout: deadline of the call in seconds (0: none).

        Raises:
            ConsumerError: the channel is closed, or a retryable status (see :func:`error_from_rpc`).
            PermanentError: a non-retryable status.
        """
        channel = self._channel
        if channel is None:
            raise ConsumerError("gRPC channel is not open (exporter not started or shut down)")
        fn = self._methods.get(method)
        if fn is None:
            fn = self._methods[method] = channel.unary_unary(method, request_serializer=None,
                                                             response_deserializer=None)
        try:
            result: bytes = await fn(body, timeout=timeout if timeout > 0 else None, metadata=self.metadata or None,
                                     wait_for_ready=self.config.wait_for_ready or None)
        except grpc.aio.AioRpcError as e:
            raise error_from_rpc(e, self.target) from None
        return result


def retry_delay_from_details(trailing: Any) -> float | None:
    """The ``google.rpc.RetryInfo.retry_delay`` carried by ``grpc-status-details-bin``, in seconds.

    Args:
        trailing: the call's trailing metadata (pairs or ``grpc.aio.Metadata``).

    Returns:
        None when there is no RetryInfo (or it cannot be decoded).
    """
    if not trailing:
        return None
    for key, value in trailing:
        if key != _DETAILS_KEY or not isinstance(value, bytes | bytearray):
            continue
        status = proto.RpcStatus()
        try:
            status.ParseFromString(bytes(value))
        except DecodeError:
            return None
        for detail in status.details:
            if detail.Is(proto.RetryInfo.DESCRIPTOR):
                info = proto.RetryInfo()
                if detail.Unpack(info):
                    d = info.retry_delay
                    return max(0.0, float(d.seconds) + float(d.nanos) / 1e9)
    return None


def error_from_rpc(e: grpc.aio.AioRpcError, target: str = "") -> ConsumerError:
    """Map a failed call to the OTLP client rules.

    * retryable codes -> :class:`ThrottleError` with the RetryInfo delay, or
      :class:`ConsumerError` when the server gave none;
    * RESOURCE_EXHAUSTED -> retryable only with RetryInfo, else permanent;
    * every other code -> :class:`PermanentError`.
    """
    code = e.code()
    details = (e.details() or "").strip()
    if len(details) > _MAX_MESSAGE:
        details = details[:_MAX_MESSAGE] + "..."
    where = f" from {target}" if target else ""
    text = f"gRPC {code.name}{where}" + (f": {details}" if details else "")
    try:
        delay = retry_delay_from_details(e.trailing_metadata())
    except Exception:  # malformed trailers never turn into a crash
        delay = None
    if code in RETRYABLE_CODES or (code is grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None):
        if delay is not None:
            return ThrottleError(text, retry_after=delay)
        return ConsumerError(text)
    return PermanentError(text)
