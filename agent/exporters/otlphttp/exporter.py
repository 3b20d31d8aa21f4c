"""The ``otlphttp`` exporter: OTLP over HTTP/1.1 (protobuf or JSON), e.g. to Loki's ``/otlp``.

Sending path (inside the exporter helper's queue -> retry -> timeout chain):

* protobuf bodies are :meth:`PData.to_bytes` (the original wire bytes when the
  batch is unmodified); JSON bodies come from
  :func:`agent.pdata.otlpjson.encode_request`;
* the body is compressed per ``compression`` and POSTed to the signal's URL
  with ``Content-Type``/``Content-Encoding`` set.

Response handling (opentelemetry-proto ``docs/specification.md``, OTLP/HTTP
"Failures"):

* 2xx: success; a body is decoded (in the response's content type) only to
  read ``partial_success`` (rejected items counted as send failures, logged,
  never retried);
* 429, 502, 503, 504: retryable; ``Retry-After`` (seconds or an HTTP-date) is
  honoured as the minimum wait (:class:`~agent.errors.ThrottleError`);
* any other status, 500 included: :class:`~agent.errors.PermanentError`;
  the ``google.rpc.Status`` message of the body is quoted in the error;
* connection failures and timeouts: retryable.
"""

from __future__ import annotations

import email.utils
import time
import zlib
from collections.abc import Callable, Iterable
from typing import Any, Final

import aiohttp

from agent import __version__
from agent.component import Host, Settings, Signal
from agent.errors import ConfigError, ConsumerError, PermanentError, ThrottleError
from agent.exporters.helper import BaseExporter
from agent.exporters.otlp.partial import PartialSuccessReporter
from agent.exporters.otlphttp.config import Config
from agent.pdata import PData, proto

__all__ = ["RETRYABLE_STATUS", "OTLPHttpExporter", "parse_retry_after"]

#: HTTP statuses the OTLP specification lets a client retry.
RETRYABLE_STATUS: Final = frozenset({429, 502, 503, 504})
_MAX_RESPONSE: Final = 4 << 20
_MAX_MESSAGE: Final = 200
_PROTOBUF: Final = "application/x-protobuf"
_JSON: Final = "application/json"


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP-date).

    Returns:
        None when absent or unparsable; never negative.
    """
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now())


def _compressor(name: str, level: int) -> tuple[str, Callable[[bytes], bytes]] | None:
    if name == "gzip":
        def gz(body: bytes) -> bytes:
            c = zlib.compressobj(level, zlib.DEFLATED, 31)
            return c.compress(body) + c.flush()
        return "gzip", gz
    if name in ("deflate", "zlib"):
        return "deflate", lambda body: zlib.compress(body, level)
    return None


class OTLPHttpExporter(BaseExporter):
    """OTLP/HTTP exporter for every signal it is created with.

    Args:
        settings: component settings.
        config: the decoded ``otlphttp`` config.
        signals: signals served by this instance.
        **helper_kw: test hooks forwarded to :class:`BaseExporter` (clock, sleep, rng).

    Raises:
        ConfigError: a signal it serves has no URL.
    """

    def __init__(self, settings: Settings, config: Config, signals: Iterable[Signal], **helper_kw: Any) -> None:
        super().__init__(settings, config, signals, **helper_kw)
        self.config = config
        self.urls: dict[Signal, str] = {}
        for signal in self.signals:
            url = config.url_for(signal)
            if not url:
                raise ConfigError(f"exporters.{settings.id}",
                                  f"no URL for {signal.value}: set endpoint or {signal.value}_endpoint")
            self.urls[signal] = url
        self._compress = _compressor(config.compression, config.compression_params.level)
        self._headers = {"User-Agent": f"otel-sidecar/{__version__}", **config.headers,
                         "Content-Type": _JSON if config.encoding == "json" else _PROTOBUF}
        if self._compress is not None:
            self._headers["Content-Encoding"] = self._compress[0]
        self._session: aiohttp.ClientSession | None = None
        self._partial = PartialSuccessReporter(self.logger)

    async def start_backend(self, host: Host) -> None:
        if self._session is not None:
            return
        c = self.config
        ssl_ctx: Any = None
        if any(u.startswith("https://") for u in self.urls.values()):
            ssl_ctx = c.tls.ssl_context()
        connector = aiohttp.TCPConnector(ssl=ssl_ctx if ssl_ctx is not None else True,
                                         limit=0, limit_per_host=c.max_conns_per_host,
                                         keepalive_timeout=None if c.disable_keep_alives else c.idle_conn_timeout,
                                         force_close=c.disable_keep_alives)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True,
                                              timeout=aiohttp.ClientTimeout(total=None))

    async def shutdown_backend(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _body(self, data: PData) -> bytes:
        if self.config.encoding == "json":
            from agent.pdata import otlpjson

            body = otlpjson.encode_request(data)
        else:
            body = data.to_bytes()
        if self._compress is not None:
            body = self._compress[1](body)
        return body

    async def push(self, signal: Signal, data: PData) -> int | None:
        """POST one request; raises per the OTLP/HTTP retry rules (see module docstring)."""
        session = self._session
        if session is None:
            raise ConsumerError("HTTP session is not open (exporter not started or shut down)")
        url = self.urls[signal]
        body = self._body(data)
        timeout = aiohttp.ClientTimeout(total=self.config.timeout or None)
        try:
            async with session.post(url, data=body, headers=self._headers, timeout=timeout,
                                    proxy=self.config.proxy_url or None) as resp:
                status = resp.status
                ctype = resp.headers.get("Content-Type", "")
                retry_after = resp.headers.get("Retry-After")
                length = resp.content_length
                reply = await resp.read() if length is None or length <= _MAX_RESPONSE else b""
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise ConsumerError(f"HTTP request to {url} failed: {type(e).__name__}: {e}") from None
        if 200 <= status < 300:
            if reply:
                response = self._decode(data.response_class(), reply, ctype)
                if response is not None:
                    return self._partial.report(signal, response)
            return None
        message = self._status_message(reply, ctype)
        text = f"HTTP {status} from {url}" + (f": {message}" if message else "")
        if status in RETRYABLE_STATUS:
            delay = parse_retry_after(retry_after)
            if delay is not None:
                raise ThrottleError(text, retry_after=delay)
            raise ConsumerError(text)
        raise PermanentError(text)

    def _decode(self, message: Any, body: bytes, ctype: str) -> Any:
        try:
            if ctype.split(";")[0].strip().lower() == _JSON:
                from agent.pdata import otlpjson

                return otlpjson.decode_message(type(message), body)
            message.ParseFromString(body)
            return message
        except Exception:  # a bad response body must not fail a delivered request
            self.logger.debug("Undecodable OTLP response body ignored (%d bytes).", len(body))
            return None

    def _status_message(self, body: bytes, ctype: str) -> str:
        if not body:
            return ""
        status = self._decode(proto.RpcStatus(), body, ctype)
        text = str(status.message) if status is not None else ""
        if not text and ctype.startswith("text/"):
            text = body[:_MAX_MESSAGE].decode("utf-8", "replace").strip()
        return text[:_MAX_MESSAGE] + ("..." if len(text) > _MAX_MESSAGE else "")
