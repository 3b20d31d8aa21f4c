"""OTLP/gRPC server (grpc.aio) for the ``otlp`` receiver.

Role: serves ``/opentelemetry.proto.collector.{trace,metrics,logs}.v1.*Service/Export``
through generic handlers without a request deserializer, so each handler gets
the raw request bytes: they are parsed once (``PData.parse``) and kept for
forwarding. Responses are serialized ``Export*ServiceResponse`` bytes.

Invariants:

* Messages above ``max_recv_msg_size_mib`` are refused by grpc itself with
  RESOURCE_EXHAUSTED, after gzip decompression as well (grpc core checks the
  decompressed size); gzip (and deflate) request compression is accepted.
* Every non-OK status comes from :mod:`agent.receivers.otlp.status`; retryable
  ones carry ``google.rpc.RetryInfo`` in ``grpc-status-details-bin``.
* ``grpc.so_reuseport`` is off, so a port already in use fails :meth:`start`
  (grpc's default would silently share it).
* While the receiver is not accepting, refusals are parked briefly (see
  :meth:`ExportCore.hold_refusal`), so that at stop time callers sit inside
  handlers and get UNAVAILABLE, instead of racing grpc's stop (a call that
  arrives while grpc stops ends CANCELLED).
* TLS uses ``grpc.ssl_server_credentials``; with ``reload_interval`` the
  certificate files are re-read (when changed) through grpc's dynamic
  credentials, with no restart.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

import grpc

from agent.component import Signal
from agent.receivers.otlp import status
from agent.receivers.otlp.config import GRPCConfig, TLSConfig, parse_endpoint
from agent.receivers.otlp.receiver import ExportCore, ListenError

if TYPE_CHECKING:
    from agent.telemetry.metrics import ReceiverObs

__all__ = ["SERVICES", "GRPCServer"]

#: Fully qualified gRPC service name per signal; the method is always ``Export``.
SERVICES = {
    Signal.TRACES: "opentelemetry.proto.collector.trace.v1.TraceService",
    Signal.METRICS: "opentelemetry.proto.collector.metrics.v1.MetricsService",
    Signal.LOGS: "opentelemetry.proto.collector.logs.v1.LogsService",
}




def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def server_options(cfg: GRPCConfig) -> list[tuple[str, Any]]:
    """grpc channel arguments for ``cfg``."""
    opts: list[tuple[str, Any]] = [
        ("grpc.so_reuseport", 0),
        ("grpc.max_receive_message_length", cfg.max_recv_bytes),
    ]
    if cfg.max_concurrent_streams:
        opts.append(("grpc.max_concurrent_streams", cfg.max_concurrent_streams))
    ka = cfg.keepalive
    if ka is not None:
        sp = ka.server_parameters
        if sp is not None:
            for name, value in (("grpc.max_connection_idle_ms", sp.max_connection_idle),
                                ("grpc.max_connection_age_ms", sp.max_connection_age),
                                ("grpc.max_connection_age_grace_ms", sp.max_connection_age_grace),
                                ("grpc.keepalive_time_ms", sp.time),
                                ("grpc.keepalive_timeout_ms", sp.timeout)):
                if value > 0:
                    opts.append((name, _ms(value)))
        ep = ka.enforcement_policy
        if ep is not None:
            if ep.min_time > 0:
                opts.append(("grpc.http2.min_recv_ping_interval_without_data_ms", _ms(ep.min_time)))
                opts.append(("grpc.http2.min_ping_interval_without_data_ms", _ms(ep.min_time)))
            if ep.permit_without_stream:
                opts.append(("grpc.keepalive_permit_without_calls", 1))
    return opts


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class _CertificateSource:
    """Certificate files for grpc's dynamic credentials, re-read when they change."""

    def __init__(self, tls: TLSConfig) -> None:
        self._tls = tls
        self._lock = threading.Lock()
        self._next_check = 0.0
        self._stamp = self._mtimes()

    def _mtimes(self) -> tuple[float, ...]:
        files = [self._tls.cert_file, self._tls.key_file]
        if self._tls.client_ca_file and self._tls.reload_client_ca_file:
            files.append(self._tls.client_ca_file)
        return tuple(os.stat(f).st_mtime_ns for f in files)

    def configuration(self) -> Any:
        tls = self._tls
        return grpc.ssl_server_certificate_configuration(
            [(_read(tls.key_file), _read(tls.cert_file))],
            root_certificates=_read(tls.client_ca_file) if tls.client_ca_file else None)

    def fetch(self) -> Any:
        """Called by grpc (on its threads) for each handshake: a new configuration or None."""
        now = time.monotonic()
        with self._lock:
            if now < self._next_check:
                return None
            self._next_check = now + self._tls.reload_interval
            try:
                stamp = self._mtimes()
                if stamp == self._stamp:
                    return None
                config = self.configuration()
            except OSError:
                return None  # files mid-rotation: keep serving the current certificate
            self._stamp = stamp
            return config


def server_credentials(tls: TLSConfig) -> grpc.ServerCredentials:
    """Server TLS credentials (mutual TLS when ``client_ca_file`` is set).

    Raises:
        OSError: a certificate file cannot be read.
    """
    require_client = bool(tls.client_ca_file)
    if tls.reload_interval > 0:
        source = _CertificateSource(tls)
        return grpc.dynamic_ssl_server_credentials(
            source.configuration(), source.fetch, require_client_authentication=require_client)
    return grpc.ssl_server_credentials(
        [(_read(tls.key_file), _read(tls.cert_file))],
        root_certificates=_read(tls.client_ca_file) if require_client else None,
        require_client_auth=require_client)


class GRPCServer:
    """One grpc.aio server for the three OTLP services."""

    def __init__(self, config: GRPCConfig, core: ExportCore, obs: ReceiverObs, grace: float) -> None:
        self.config = config
        self.core = core
        self.obs = obs
        self.grace = grace
        self._server: grpc.aio.Server | None = None
        self.address: tuple[str, int] | str | None = None

    def _handlers(self) -> list[grpc.GenericRpcHandler]:
        handlers = []
        for signal, service in SERVICES.items():
            behaviour = self._behaviour(signal)
            method = grpc.unary_unary_rpc_method_handler(
                behaviour, request_deserializer=None, response_serializer=None)
            handlers.append(grpc.method_handlers_generic_handler(service, {"Export": method}))
        return handlers

    def _behaviour(self, signal: Signal) -> Any:
        core, obs = self.core, self.obs

        async def export(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            core.last_request = time.monotonic()
            try:
                if not core.accepting:
                    await core.hold_refusal()
                core.preflight(signal)
                data = core.decode_protobuf(signal, request, obs)
                response = await core.export(data, obs)
                return response.SerializeToString()  # type: ignore[no-any-return]
            except status.ExportFailure as failure:
                failed = failure
            except Exception:  # a bug of ours: never crash the server
                core.log_unexpected(f"unexpected error handling a {signal.value} export over grpc")
                failed = status.internal_error()
            await context.abort_with_status(failed.grpc_status())
            raise AssertionError("unreachable: abort_with_status raises")

        return export

    def _target(self) -> str:
        cfg = self.config
        if cfg.transport == "unix":
            return "unix:" + cfg.endpoint
        host, port = parse_endpoint(cfg.endpoint)
        if host == "":
            host = "[::]"
        elif ":" in host:
            host = f"[{host}]"
        return f"{host}:{port}"

    async def start(self) -> None:
        """Bind and serve.

        Raises:
            ListenError: the endpoint is taken or invalid, or the TLS files cannot be read.
        """
        cfg = self.config
        target = self._target()
        server = grpc.aio.server(options=server_options(cfg))
        server.add_generic_rpc_handlers(tuple(self._handlers()))
        try:
            if cfg.tls is not None and cfg.tls.enabled:
                port = server.add_secure_port(target, server_credentials(cfg.tls))
            else:
                port = server.add_insecure_port(target)
        except OSError as e:
            raise ListenError(f"otlp receiver (grpc): cannot load TLS files: {e}") from e
        except RuntimeError as e:
            raise ListenError(f"otlp receiver (grpc): cannot listen on {target}: address in use or "
                              f"unavailable ({e})") from e
        if cfg.transport == "unix":
            self.address = cfg.endpoint
        else:
            host, _ = parse_endpoint(cfg.endpoint)
            self.address = (host, port)
        await server.start()
        self._server = server

    async def stop(self) -> None:
        """Stop listening (GOAWAY to clients); in-flight calls get ``grace`` seconds, then are cancelled."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(self.grace)
