"""The ``loki`` exporter: OTLP logs to Loki's push API (``POST /loki/api/v1/push``).

Each queued request is converted once (:mod:`.convert`), encoded once
(:mod:`.encode`: snappy-compressed protobuf, or JSON) and posted with
aiohttp. Queueing, retries with backoff and the per-attempt timeout are the
exporter helper's (``sending_queue``, ``retry_on_failure``, ``timeout``).

How Loki's answers are handled (``docs/sources/operations/request-validation-rate-limits.md``):

====================  ==================================================================
2xx (204)             delivered.
429, 5xx              retried by the helper, honouring ``Retry-After`` (seconds or an
                      HTTP date) as the lower bound of the wait
                      (:class:`~agent.errors.ThrottleError`); connection errors too.
400 (bad data)        never retried. When the request held several streams, each stream
                      is re-sent alone so one bad stream (entry out of order, too many
                      labels, line too long) does not drop the others; the streams Loki
                      still refuses are dropped and counted.
413 (too large)       the request is split in halves and each half re-sent, down to a
                      single entry, which is then dropped and counted.
other 4xx (401, 403,  dropped and counted (:class:`~agent.errors.PermanentError`).
404...)
260                   Loki's ``block_ingestion_until`` answer: nothing was stored; dropped
                      and counted (``reason="blocked"``), not retried.
====================  ==================================================================

Accounting: records dropped here (``reason`` = ``line_too_long``,
``bad_request``, ``too_large``, ``rejected``, ``blocked``) are counted in
``otelcol_exporter_loki_dropped_log_records_total{exporter,reason}``. When a
whole request is dropped the helper counts it in
``otelcol_exporter_send_failed_log_records``; when only some streams are,
``push`` returns their record count and the helper counts those as failed and
the rest as sent (``sent + send_failed`` equals the records). Retrying after
a partial failure re-sends streams that were already accepted; Loki drops exact duplicates (same stream, timestamp and
line), so delivery stays at-least-once without visible duplicates.

Ordering: entries are sorted by timestamp within each stream of a request.
With ``sending_queue.num_consumers`` > 1, requests are sent concurrently, so a
stream's requests may reach Loki out of order; Loki >= 2.4 accepts entries up
to ``max_chunk_age / 2`` (1 h) older than the stream's newest one. Set
``num_consumers: 1`` for strictly ordered delivery (older Loki, or backfills).

Event loop: conversion and protobuf encoding run in steps of a few hundred
records with ``await asyncio.sleep(0)`` between them, so an 8192-record batch
does not stall the receivers for its whole ~100 ms of CPU.

Secrets: header values (``headers``, ``X-Scope-OrgID``) and payloads are never
logged; Loki's error text is cut to 200 characters in errors and logs.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import ssl
import time
from collections.abc import Iterable, Sequence
from typing import Final
from urllib.parse import urlsplit

import aiohttp

from agent import __version__
from agent.component import Host, Settings, Signal
from agent.errors import ConsumerError, PermanentError, ThrottleError
from agent.exporters.helper import BaseExporter, Clock, SleepFn
from agent.exporters.loki.config import Config
from agent.exporters.loki.convert import Batch, Converter, Stream
from agent.exporters.loki.encode import JSONEncoder, ProtobufEncoder, snappy_compress
from agent.pdata import PData

__all__ = ["LokiExporter", "parse_retry_after", "split_streams"]

_MAX_ERROR_TEXT: Final = 200
_MAX_RESPONSE_READ: Final = 64 * 1024
#: Loki's answer while ``block_ingestion_until`` is active: a 2xx that stores nothing.
_BLOCKED: Final = 260


def parse_retry_after(value: str | None, now: float | None = None) -> float:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); 0 if absent/invalid."""
    if not value:
        return 0.0
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return 0.0
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return 0.0
    return max(0.0, seconds)


def split_streams(streams: Sequence[Stream]) -> tuple[list[Stream], list[Stream]]:
    """Two halves of ``streams`` by entry count (a single stream's entries are cut in two)."""
    if len(streams) > 1:
        total = sum(len(s.entries) for s in streams)
        acc = 0
        for i, s in enumerate(streams):
            acc += len(s.entries)
            if acc * 2 >= total:
                cut = max(1, min(i + 1, len(streams) - 1))
                return list(streams[:cut]), list(streams[cut:])
    only = streams[0]
    half = len(only.entries) // 2
    a, b = Stream(only.pairs), Stream(only.pairs)
    a.entries = only.entries[:half]
    b.entries = only.entries[half:]
    return [a], [b]


def _entries(streams: Iterable[Stream]) -> int:
    return sum(len(s.entries) for s in streams)


class _Refused(Exception):
    """A final (non-retryable) answer from Loki for one post."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text}")
        self.status = status
        self.text = text


class LokiExporter(BaseExporter):
    """Pushes logs to Loki (see the module docstring).

    Args:
        settings: from the factory.
        config: the decoded ``loki`` config.
        signals: must be ``{logs}``.
        clock: backoff clock for tests.
        sleep: backoff sleep for tests.
    """

    def __init__(self, settings: Settings, config: Config, signals: Iterable[Signal], *,
                 clock: Clock | None = None, sleep: SleepFn | None = None) -> None:
        super().__init__(settings, config, signals, clock=clock, sleep=sleep)
        self.config = config
        protobuf = config.encoding == "protobuf"
        self._converter = Converter(config, protobuf=protobuf)
        self._proto = ProtobufEncoder() if protobuf else None
        self._json = None if protobuf else JSONEncoder(gzip_body=config.compression == "gzip")
        headers = {"User-Agent": f"otel-sidecar/{__version__}"}
        headers.update(config.headers)
        if config.tenant_id:
            headers["X-Scope-OrgID"] = config.tenant_id
        if protobuf:
            headers["Content-Type"] = "application/x-protobuf"
        else:
            headers["Content-Type"] = "application/json"
            if config.compression == "gzip":
                headers["Content-Encoding"] = "gzip"
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None
        self._sni = config.tls.server_name_override or None if config.endpoint.startswith("https://") else None
        #: A password in the endpoint's userinfo, masked in error messages.
        self._url_secret = urlsplit(config.endpoint).password or ""
        eid = str(settings.id)
        t = settings.telemetry
        dropped = t.counter("otelcol_exporter_loki_dropped_log_records",
                            "Log records the loki exporter dropped, by reason (line_too_long, bad_request, "
                            "too_large, rejected, blocked).", ("exporter", "reason"))
        self._dropped = {r: dropped.labels(eid, r)
                         for r in ("line_too_long", "bad_request", "too_large", "rejected", "blocked")}
        self._truncated = t.counter("otelcol_exporter_loki_truncated_lines",
                                    "Log lines cut to max_line_size by the loki exporter.", ("exporter",)).labels(eid)
        self._dropped_labels = t.counter(
            "otelcol_exporter_loki_dropped_label_names",
            "Label names left out of Loki streams by labels.max_label_names (counted per stream and request).",
            ("exporter",)).labels(eid)
        self._dropped_metadata = t.counter(
            "otelcol_exporter_loki_dropped_structured_metadata",
            "Structured metadata pairs over structured_metadata.max_entries.", ("exporter",)).labels(eid)
        self._responses = t.counter("otelcol_exporter_loki_responses",
                                    "HTTP responses from Loki, by status code.", ("exporter", "status_code"))
        self._eid = eid

    # -- lifecycle ------------------------------------------------------------------------
    async def start_backend(self, host: Host) -> None:
        ssl_ctx: ssl.SSLContext | bool = False
        if self.config.endpoint.startswith("https://"):
            try:
                ssl_ctx = self.config.tls.ssl_context()
            except ValueError as e:
                raise RuntimeError(f"exporter {self._eid}: {e}") from None
        q = self.config.sending_queue
        limit = q.num_consumers if q.enabled else 4
        connector = aiohttp.TCPConnector(limit=max(1, limit), ssl=ssl_ctx)
        self._session = aiohttp.ClientSession(connector=connector, headers=self._headers,
                                              timeout=aiohttp.ClientTimeout(total=None))

    async def shutdown_backend(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- sending --------------------------------------------------------------------------
    async def convert(self, data: PData) -> Batch:
        """Convert one request into Loki streams, counting what the limits changed.

        Converts in steps of a few hundred records and yields to the event loop
        between them, so a large batch does not stall the receivers."""
        batch = Batch()
        for _ in self._converter.steps(data.proto, batch):
            await asyncio.sleep(0)
        if batch.truncated_lines:
            self._truncated.inc(batch.truncated_lines)
        if batch.dropped_label_names:
            self._dropped_labels.inc(batch.dropped_label_names)
        if batch.dropped_metadata:
            self._dropped_metadata.inc(batch.dropped_metadata)
        return batch

    async def encode(self, streams: Sequence[Stream]) -> bytes:
        """The HTTP body for ``streams`` (yielding to the event loop between steps)."""
        if self._proto is not None:
            out: list[bytes] = []
            for _ in self._proto.steps(streams, out):
                await asyncio.sleep(0)
            return snappy_compress(out[0])
        assert self._json is not None
        return self._json.encode(streams)

    async def push(self, signal: Signal, data: PData) -> int | None:
        if signal is not Signal.LOGS:
            raise PermanentError(f"loki exporter {self._eid} only exports logs, not {signal.value}")
        batch = await self.convert(data)
        total = data.item_count
        dropped: dict[str, int] = {}
        if batch.dropped_lines:
            dropped["line_too_long"] = batch.dropped_lines
        last_error: _Refused | None = None
        if batch.streams:
            last_error = await self._deliver(batch.streams, dropped)
        n_dropped = sum(dropped.values())
        for reason, n in dropped.items():
            self._dropped[reason].inc(n)
        if n_dropped == 0:
            return None
        if n_dropped >= total or not batch.streams:
            # Nothing was delivered: the helper counts the whole request as failed.
            what = f"Loki refused the request ({last_error})" if last_error else "every record exceeded max_line_size"
            raise PermanentError(f"{what}; {total} log records dropped")
        self.logger.warning("Loki refused part of a request; %d of %d log records dropped (%s): %s.",
                            n_dropped, total, ", ".join(f"{k}={v}" for k, v in sorted(dropped.items())),
                            last_error, extra={"dropped_items": n_dropped, "reasons": sorted(dropped)})
        return n_dropped

    async def _deliver(self, streams: list[Stream], dropped: dict[str, int]) -> _Refused | None:
        """Post ``streams``; on 400/413 fall back to smaller requests. Returns the last refusal
        (its records are added to ``dropped``); retryable failures raise."""
        try:
            await self._post(await self.encode(streams))
            return None
        except _Refused as refused:
            if refused.status == 413:
                if _entries(streams) <= 1:
                    dropped["too_large"] = dropped.get("too_large", 0) + _entries(streams)
                    return refused
                first, second = split_streams(streams)
                r1 = await self._deliver(first, dropped)
                r2 = await self._deliver(second, dropped)
                return r2 or r1
            if refused.status == 400 and len(streams) > 1:
                last: _Refused | None = None
                for stream in streams:
                    r = await self._deliver([stream], dropped)
                    last = r or last
                return last
            reason = {400: "bad_request", _BLOCKED: "blocked"}.get(refused.status, "rejected")
            dropped[reason] = dropped.get(reason, 0) + _entries(streams)
            return refused

    async def _post(self, body: bytes) -> None:
        session = self._session
        if session is None:
            raise ConsumerError(f"loki exporter {self._eid} is not started")
        try:
            async with session.post(self.config.endpoint, data=body, server_hostname=self._sni) as resp:
                status = resp.status
                self._responses.labels(self._eid, str(status)).inc()
                if 200 <= status < 300 and status != _BLOCKED:
                    await resp.read()
                    return
                text = await _short_text(resp)
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except aiohttp.ClientError as e:
            text = _cut(str(e))
            if self._url_secret:
                text = text.replace(self._url_secret, "****")
            raise ConsumerError(f"cannot reach Loki: {type(e).__name__}: {text}") from None
        except OSError as e:
            raise ConsumerError(f"cannot reach Loki: {e.strerror or type(e).__name__}") from None
        if status == 429 or status >= 500:
            msg = f"Loki answered HTTP {status}: {text}"
            if retry_after > 0 or status in (429, 503):
                raise ThrottleError(msg, retry_after=retry_after)
            raise ConsumerError(msg)
        raise _Refused(status, text)


async def _short_text(resp: aiohttp.ClientResponse) -> str:
    try:
        raw = await resp.content.read(_MAX_RESPONSE_READ)
    except (TimeoutError, aiohttp.ClientError):
        return ""
    return _cut(raw.decode("utf-8", "replace").strip())


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_TEXT else text[:_MAX_ERROR_TEXT] + "..."
