"""OTLP/HTTP server (aiohttp) for the ``otlp`` receiver.

Role: ``POST <traces|metrics|logs>_url_path`` with ``application/x-protobuf`` or
``application/json`` (OTLP/JSON) bodies, identity/gzip/deflate (zlib or raw)
and, with ``cramjam``, zstd/snappy ``Content-Encoding``. Replies use the
request's content type: an ``Export*ServiceResponse`` on success or partial
success, a ``google.rpc.Status`` otherwise.

Status codes: 404 unknown path or signal without pipeline, 405 (with
``Allow: POST``) other methods, 415 other content types or encodings (the
message names the encoding), 413 bodies over ``max_request_body_size`` as sent
or once decompressed, 400 undecodable or invalid data, 408 a body not received
within ``read_timeout`` (else ``write_timeout``), 503 with ``Retry-After`` for
retryable refusals (pipeline backpressure, shutting down, unexpected errors).

Invariants:

* The body is read chunk by chunk and decompressed as it arrives with an
  output cap (see :mod:`compression`): memory per request stays below twice
  the limit whatever the compression ratio; a ``Content-Length`` above the
  limit is refused before reading.
* aiohttp's own request decompression is off and no access log is written.
* The low-level ``aiohttp.web.Server`` is used (no router or middlewares): the
  paths are a dict lookup.
* aiohttp has one timer for "waiting for the next request's headers" (from
  connection open or the previous response): it is the smaller of
  ``read_header_timeout`` and ``idle_timeout``, so slow-header clients are cut.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
from typing import TYPE_CHECKING

from aiohttp import web

from agent.component import Signal
from agent.pdata import otlpjson
from agent.receivers.otlp import status
from agent.receivers.otlp.compression import BadEncoding, TooLarge, decoder_for
from agent.receivers.otlp.config import CORSConfig, HTTPConfig, TLSConfig, parse_endpoint
from agent.receivers.otlp.receiver import ExportCore, ListenError

if TYPE_CHECKING:
    from agent.telemetry.metrics import ReceiverObs

__all__ = ["HTTPServer", "ssl_context"]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
#: Seconds aiohttp keeps reading (and discarding) an unread body after an early
#: reply (413, 503...), so the client gets to read the reply.
LINGER = 2.0
_ALWAYS_ALLOWED_HEADERS = ("accept", "content-type", "content-encoding", "x-requested-with", "origin")


def ssl_context(tls: TLSConfig) -> ssl.SSLContext:
    """Server TLS context: TLS 1.2+ (or as configured), mutual TLS with ``client_ca_file``.

    Raises:
        OSError, ssl.SSLError: unreadable or invalid certificate files.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3 if tls.min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    if tls.max_version == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.client_ca_file:
        ctx.load_verify_locations(cafile=tls.client_ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class _Cors:
    """The collector's CORS behaviour (rs/cors with AllowCredentials)."""

    def __init__(self, cfg: CORSConfig) -> None:
        self.exact: set[str] = set()
        self.patterns: list[tuple[str, str]] = []
        for origin in cfg.allowed_origins:
            o = origin.strip().lower()
            if "*" in o:
                prefix, _, suffix = o.partition("*")
                self.patterns.append((prefix, suffix))
            else:
                self.exact.add(o)
        headers = [h.strip().lower() for h in cfg.allowed_headers]
        self.any_header = "*" in headers
        self.allowed_headers = set(headers) | set(_ALWAYS_ALLOWED_HEADERS)
        self.max_age = cfg.max_age
        self.exposed = ", ".join(cfg.exposed_headers)

    def allows(self, origin: str) -> bool:
        o = origin.lower()
        if o in self.exact:
            return True
        return any(len(o) >= len(p) + len(s) and o.startswith(p) and o.endswith(s) for p, s in self.patterns)

    def preflight(self, request: web.BaseRequest) -> web.Response:
        resp = web.Response(status=204)
        resp.headers["Vary"] = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
        origin = request.headers.get("Origin", "")
        method = request.headers.get("Access-Control-Request-Method", "").upper()
        if not origin or not self.allows(origin) or method != "POST":
            return resp  # no CORS headers: the browser refuses the request
        requested = [h.strip().lower() for h in request.headers.get("Access-Control-Request-Headers", "").split(",")
                     if h.strip()]
        if not self.any_header and any(h not in self.allowed_headers for h in requested):
            return resp
        resp.headers["Access-Control-Allow-Origin"] = origin
        resp.headers["Access-Control-Allow-Credentials"] = "true"
        resp.headers["Access-Control-Allow-Methods"] = "POST"
        if requested:
            resp.headers["Access-Control-Allow-Headers"] = ", ".join(requested)
        if self.max_age > 0:
            resp.headers["Access-Control-Max-Age"] = str(self.max_age)
        return resp

    def decorate(self, request: web.BaseRequest, resp: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if origin is None:
            return
        resp.headers["Vary"] = "Origin"
        if self.allows(origin):
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers["Access-Control-Allow-Credentials"] = "true"
            if self.exposed:
                resp.headers["Access-Control-Expose-Headers"] = self.exposed


def _text(status_code: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status_code, text=text, content_type="text/plain", headers=headers)


class HTTPServer:
    """The OTLP/HTTP endpoint of one receiver."""

    def __init__(self, config: HTTPConfig, core: ExportCore, obs: ReceiverObs, grace: float) -> None:
        self.config = config
        self.core = core
        self.obs = obs
        self.grace = grace
        self.address: tuple[str, int] | str | None = None
        traces, metrics, logs = config.url_paths()
        self._routes = {traces: Signal.TRACES, metrics: Signal.METRICS, logs: Signal.LOGS}
        self._limit = config.body_limit
        self._encodings = config.encodings
        self._cors = _Cors(config.cors) if config.cors is not None and config.cors.allowed_origins else None
        self._read_timeout = config.read_timeout or config.write_timeout or None
        self._extra_headers = dict(config.response_headers)
        self._runner: web.ServerRunner | None = None
        self._tls_task: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------
    def _socket(self) -> socket.socket:
        cfg = self.config
        if cfg.transport == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(cfg.endpoint)
            except OSError:
                sock.close()
                raise
            sock.listen(128)
            return sock
        host, port = parse_endpoint(cfg.endpoint)
        if host == "":
            if socket.has_dualstack_ipv6():
                return socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=128)
            return socket.create_server(("", port), backlog=128)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family, backlog=128)

    async def start(self) -> None:
        """Bind and serve (TLS when configured).

        Raises:
            ListenError: the endpoint is taken or invalid, or the TLS files cannot be loaded.
        """
        cfg = self.config
        ctx: ssl.SSLContext | None = None
        stamp: tuple[int, ...] = ()
        if cfg.tls is not None and cfg.tls.enabled:
            try:
                stamp = self._tls_stamp(cfg.tls)
                ctx = ssl_context(cfg.tls)
            except (OSError, ssl.SSLError) as e:
                raise ListenError(f"otlp receiver (http): cannot load TLS files: {e}") from e
        try:
            sock = self._socket()
        except OSError as e:
            reason = e.strerror or str(e)
            raise ListenError(e.errno, f"otlp receiver (http): cannot listen on {cfg.endpoint}: {reason}") from e
        timers = [t for t in (cfg.read_header_timeout, cfg.idle_timeout) if t > 0]
        server = web.Server(
            self._handle,
            access_log=None,
            keepalive_timeout=min(timers) if timers else 3630.0,
            auto_decompress=False,
            lingering_time=LINGER,
        )
        runner = web.ServerRunner(server, shutdown_timeout=self.grace)
        await runner.setup()
        site = web.SockSite(runner, sock, ssl_context=ctx, backlog=128)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            sock.close()
            raise
        self._runner = runner
        self.address = sock.getsockname() if cfg.transport != "unix" else cfg.endpoint
        if isinstance(self.address, tuple):
            self.address = (self.address[0], self.address[1])
        if ctx is not None and cfg.tls is not None and cfg.tls.reload_interval > 0:
            self._tls_task = asyncio.create_task(self._reload_tls(ctx, cfg.tls, stamp), name="otlp-http-tls-reload")

    async def stop(self) -> None:
        """Close the listener, let in-flight requests finish within ``grace``, close connections."""
        task, self._tls_task = self._tls_task, None
        if task is not None:
            task.cancel()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        if self.config.transport == "unix" and self.address is not None:
            try:
                os.unlink(self.config.endpoint)
            except OSError:
                pass

    @staticmethod
    def _tls_stamp(tls: TLSConfig) -> tuple[int, ...]:
        files = [tls.cert_file, tls.key_file]
        if tls.reload_client_ca_file and tls.client_ca_file:
            files.append(tls.client_ca_file)
        return tuple(os.stat(f).st_mtime_ns for f in files)

    async def _reload_tls(self, ctx: ssl.SSLContext, tls: TLSConfig, last: tuple[int, ...]) -> None:
        """Re-load changed certificate files into the live context (new handshakes use them).

        ``last`` is the files' state when ``ctx`` was loaded. A reloaded
        ``client_ca_file`` adds its CAs to the trusted set; removing a CA takes a
        restart (OpenSSL stores cannot drop certificates).
        """
        while True:
            await asyncio.sleep(tls.reload_interval)
            try:
                now = self._tls_stamp(tls)
                if now == last:
                    continue
                ctx.load_cert_chain(tls.cert_file, tls.key_file)
                if tls.reload_client_ca_file and tls.client_ca_file:
                    ctx.load_verify_locations(cafile=tls.client_ca_file)
                last = now
                self.core.logger.info("otlp receiver (http): reloaded TLS certificate %s", tls.cert_file)
            except (OSError, ssl.SSLError) as e:
                self.core.logger.warning("otlp receiver (http): TLS reload failed, keeping the current "
                                         "certificate: %s", e)

    # -- requests ---------------------------------------------------------------------
    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            resp = await self._dispatch(request)
        except Exception:  # a bug of ours: answer retryable, never 500
            self.core.log_unexpected("unexpected error handling an OTLP/HTTP request")
            resp = self._failure(status.internal_error(), False)
        if self._cors is not None:
            self._cors.decorate(request, resp)
        if self._extra_headers:
            resp.headers.update(self._extra_headers)
        if not self.config.keep_alives_enabled:
            resp.force_close()
        return resp

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        signal = self._routes.get(request.path)
        if signal is None:
            return _text(404, "404 page not found")
        if request.method != "POST":
            if request.method == "OPTIONS" and self._cors is not None and "Origin" in request.headers:
                return self._cors.preflight(request)
            return _text(405, "405 method not allowed, supported: [POST]", {"Allow": "POST"})
        ctype = request.content_type
        if ctype == PROTOBUF:
            is_json = False
        elif ctype == JSON:
            is_json = True
        else:
            return _text(415, f"415 unsupported media type {ctype!r}, supported: [{JSON}, {PROTOBUF}]")
        obs = self.obs
        core = self.core
        core.last_request = time.monotonic()
        try:
            encoding = self._encoding(request)
            if not core.accepting:
                await core.hold_refusal()
            core.preflight(signal)
            try:
                body = await self._read_body(request, encoding)
            except status.ExportFailure:
                obs.failed(signal, 0)  # too large, corrupt compression or too slow
                raise
            decode = self.core.decode_json if is_json else self.core.decode_protobuf
            data = decode(signal, body, obs)
            del body
            response = await self.core.export(data, obs)
        except status.ExportFailure as failure:
            return self._failure(failure, is_json)
        if is_json:
            return web.Response(body=otlpjson.encode_response(response), content_type=JSON)
        return web.Response(body=response.SerializeToString(), content_type=PROTOBUF)

    def _encoding(self, request: web.BaseRequest) -> str:
        raw = request.headers.get("Content-Encoding", "")
        name = raw.strip().lower()
        if name in ("identity", "none"):
            name = ""
        if name not in self._encodings:
            offered = ", ".join(sorted(n for n in self._encodings if n)) or "none"
            raise status.unsupported_encoding(f"unsupported Content-Encoding {raw!r}; supported: {offered}")
        return name

    async def _read_body(self, request: web.BaseRequest, encoding: str) -> bytes:
        limit = self._limit
        length = request.content_length
        if length is not None and length > limit:
            raise status.too_large(f"request body of {length} bytes exceeds max_request_body_size ({limit} bytes)")
        decoder = decoder_for(encoding, limit)
        content = request.content
        received = 0
        try:
            async with asyncio.timeout(self._read_timeout):
                while True:
                    chunk = await content.readany()
                    if not chunk:
                        break
                    received += len(chunk)
                    if received > limit:
                        raise TooLarge()
                    decoder.feed(chunk)
            return decoder.finish()
        except TooLarge:
            what = "decompressed request body" if encoding and received <= limit else "request body"
            raise status.too_large(f"{what} exceeds max_request_body_size ({limit} bytes)")
        except BadEncoding as e:
            raise status.bad_data(f"invalid {encoding} body: {e}")
        except TimeoutError:
            raise status.body_timeout(f"request body not received within {self._read_timeout:g}s")
        except (ConnectionError, asyncio.IncompleteReadError) as e:
            raise status.bad_data(f"request body could not be read: {e}")
        except Exception as e:  # aiohttp payload errors (truncated body, bad chunking)
            if type(e).__module__.startswith("aiohttp"):
                raise status.bad_data(f"request body could not be read: {e}")
            raise

    def _failure(self, failure: status.ExportFailure, is_json: bool) -> web.Response:
        headers: dict[str, str] = {}
        retry = failure.retry_after_header
        if retry is not None:
            headers["Retry-After"] = retry
        code = failure.code.value[0]
        if is_json:
            body = otlpjson.status_json(code, failure.message)
            ctype = JSON
        else:
            body = failure.rpc_status().SerializeToString()
            ctype = PROTOBUF
        resp = web.Response(status=failure.status, body=body, content_type=ctype, headers=headers)
        if failure.status in (408, 413) or not self.core.accepting:
            resp.force_close()
        return resp
