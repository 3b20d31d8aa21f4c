"""A Loki test double: ``POST /loki/api/v1/push`` and ``POST /otlp/v1/logs`` on loopback.

It decodes pushes the way Loki does, with its **own** decoding (the small
protobuf wire reader of tests/protowire.py, not the exporter's encoder):

* protobuf: snappy *block* format (``cramjam.snappy.decompress_raw``), then
  ``logproto.PushRequest`` (streams = 1; StreamAdapter labels = 1, entries = 2;
  EntryAdapter timestamp = 1, line = 2, structuredMetadata = 3;
  LabelPairAdapter name = 1, value = 2; Timestamp seconds = 1, nanos = 2);
* JSON: ``{"streams": [{"stream": {...}, "values": [["<ns string>", "line", {metadata}]]}]}``
  with the timestamp required to be a JSON string, optional gzip/deflate body.

It enforces Loki's default limits: at most 15 label names, valid and unique
label names, a ``service_name``-free stream still needs one label, lines of at
most 256,000 bytes, and per-stream timestamp order (an entry older than the
stream's newest one is "entry out of order"; an identical entry is a
duplicate and silently ignored). Unlike Loki, a request with any invalid
stream is refused whole (400) and nothing of it is stored: stricter, so the
exporter's per-stream fallback is what lets the good streams through.

Scripted answers (``script``) are served before any decoding: e.g.
``[(429, {"Retry-After": "1"})]`` throttles the next request once;
``reject_stream`` answers 400 for requests holding a matching stream.

``/otlp/v1/logs`` accepts OTLP/HTTP protobuf or JSON (Loki's native ingest)
and keeps the decoded requests.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import ssl
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cramjam
from aiohttp import web

from tests.protowire import read_fields

MAX_LABEL_NAMES = 15
MAX_LINE_SIZE = 256_000
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass
class Entry:
    ts: int
    line: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class PushedStream:
    labels: dict[str, str]
    entries: list[Entry]


def decode_push_proto(raw: bytes) -> list[PushedStream]:
    """A snappy-compressed ``PushRequest`` as streams."""
    body = bytes(cramjam.snappy.decompress_raw(raw))
    streams: list[PushedStream] = []
    for num, wt, val in read_fields(body):
        if num != 1 or wt != 2:
            continue
        labels_text = ""
        entries: list[Entry] = []
        for snum, swt, sval in read_fields(val):
            if snum == 1 and swt == 2:
                labels_text = sval.decode()
            elif snum == 2 and swt == 2:
                entries.append(_entry(sval))
        streams.append(PushedStream(parse_labels(labels_text), entries))
    return streams


def _entry(raw: bytes) -> Entry:
    ts = 0
    line = ""
    md: dict[str, str] = {}
    for num, wt, val in read_fields(raw):
        if num == 1 and wt == 2:
            seconds = nanos = 0
            for tnum, _, tval in read_fields(val):
                if tnum == 1:
                    seconds = tval
                elif tnum == 2:
                    nanos = tval
            ts = seconds * 1_000_000_000 + nanos
        elif num == 2 and wt == 2:
            line = val.decode()
        elif num == 3 and wt == 2:
            name = value = ""
            for pnum, _, pval in read_fields(val):
                if pnum == 1:
                    name = pval.decode()
                elif pnum == 2:
                    value = pval.decode()
            md[name] = value
        elif num == 4:
            raise ValueError("EntryAdapter.parsed (field 4) must not be sent")
    return Entry(ts, line, md)


_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r"}


def parse_labels(text: str) -> dict[str, str]:
    """A ``{name="value", ...}`` label set (PromQL string escapes)."""
    text = text.strip()
    if not (text.startswith("{") and text.endswith("}")):
        raise ValueError(f"invalid label set {text!r}")
    out: dict[str, str] = {}
    i, end = 1, len(text) - 1
    while i < end:
        while i < end and text[i] in " ,":
            i += 1
        if i >= end:
            break
        j = text.index("=", i)
        name = text[i:j].strip()
        i = j + 1
        if text[i] != '"':
            raise ValueError("label value must be quoted")
        i += 1
        chars: list[str] = []
        while text[i] != '"':
            if text[i] == "\\":
                chars.append(_ESCAPES[text[i + 1]])
                i += 2
            else:
                chars.append(text[i])
                i += 1
        i += 1
        if name in out:
            raise ValueError(f"duplicate label name {name!r}")
        out[name] = "".join(chars)
    return out


def decode_push_json(raw: bytes, encoding: str) -> list[PushedStream]:
    # aiohttp's server already inflates gzip/deflate request bodies; decode what is still compressed.
    if encoding == "gzip" and raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    elif encoding == "deflate" and raw[:1] == b"\x78":
        raw = zlib.decompress(raw)
    doc = json.loads(raw)
    streams: list[PushedStream] = []
    for s in doc["streams"]:
        entries: list[Entry] = []
        for value in s["values"]:
            if not isinstance(value[0], str):
                raise ValueError("timestamp must be a string of unix nanoseconds")
            md = value[2] if len(value) > 2 else {}
            if not isinstance(md, dict) or not all(isinstance(v, str) for v in md.values()):
                raise ValueError("structured metadata must be a flat string map")
            entries.append(Entry(int(value[0]), value[1], md))
        streams.append(PushedStream(dict(s["stream"]), entries))
    return streams


# -- the server --------------------------------------------------------------------------------
@dataclass
class Push:
    """One accepted push request."""

    content_type: str
    content_encoding: str
    tenant: str
    headers: dict[str, str]
    streams: list[PushedStream]


class LokiDouble:
    """The double; ``await start()``, then point exporters at :attr:`push_url` / :attr:`otlp_url`."""

    def __init__(self, *, require_tenant: bool = False, ssl_context: ssl.SSLContext | None = None) -> None:
        self.require_tenant = require_tenant
        self._ssl = ssl_context
        #: Answers served before decoding, in order: (status, headers), or None to process that
        #: request normally.
        self.script: list[tuple[int, dict[str, str]] | None] = []
        #: A request holding a stream for which this returns True is refused with 400.
        self.reject_stream: Callable[[dict[str, str]], bool] | None = None
        self.pushes: list[Push] = []
        #: Every answer given: (status, body text), and when (event loop time).
        self.answers: list[tuple[int, str]] = []
        self.answer_times: list[float] = []
        self.otlp_requests: list[Any] = []
        self._streams: dict[tuple[tuple[str, str], ...], list[Entry]] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._event = asyncio.Event()

    @property
    def push_url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self.port}/loki/api/v1/push"

    @property
    def otlp_url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self.port}/otlp"

    @property
    def _scheme(self) -> str:
        return "https" if self._ssl is not None else "http"

    async def start(self) -> None:
        app = web.Application(client_max_size=100 << 20)
        app.router.add_post("/loki/api/v1/push", self._push)
        app.router.add_post("/otlp/v1/logs", self._otlp)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self._ssl)
        await site.start()
        self._runner = runner
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- what was stored -----------------------------------------------------------------
    def streams(self) -> dict[tuple[tuple[str, str], ...], list[Entry]]:
        """Stored entries per label set (sorted label pairs)."""
        return self._streams

    def entries(self) -> list[tuple[dict[str, str], Entry]]:
        return [(dict(k), e) for k, es in self._streams.items() for e in es]

    def lines(self) -> list[str]:
        return [e.line for es in self._streams.values() for e in es]

    async def wait_entries(self, n: int, timeout: float = 10.0) -> None:
        async def loop() -> None:
            while sum(len(es) for es in self._streams.values()) < n:
                self._event.clear()
                await self._event.wait()
        await asyncio.wait_for(loop(), timeout)

    # -- handlers -----------------------------------------------------------------------------
    def _answer(self, status: int, text: str = "", headers: dict[str, str] | None = None) -> web.Response:
        self.answers.append((status, text))
        self.answer_times.append(asyncio.get_running_loop().time())
        self._event.set()
        return web.Response(status=status, text=text or None, headers=headers)

    async def _push(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if self.script:
            scripted = self.script.pop(0)
            if scripted is not None:
                status, headers = scripted
                return self._answer(status, f"scripted {status}", headers)
        tenant = request.headers.get("X-Scope-OrgID", "")
        if self.require_tenant and not tenant:
            return self._answer(401, "no org id")
        ctype = request.headers.get("Content-Type", "")
        cenc = request.headers.get("Content-Encoding", "")
        try:
            if ctype.startswith("application/json"):
                streams = decode_push_json(raw, cenc)
            elif ctype in ("", "application/x-protobuf"):
                streams = decode_push_proto(raw)
            else:
                return self._answer(415, f"unsupported Content-Type {ctype!r}")
        except (ValueError, KeyError, TypeError, IndexError) as e:
            return self._answer(400, f"parse error: {e}")
        error = self._validate(streams)
        if error:
            return self._answer(400, error)
        if self.reject_stream is not None:
            for s in streams:
                if self.reject_stream(s.labels):
                    return self._answer(400, f"rejected stream {s.labels}")
        self._store(streams)
        self.pushes.append(Push(ctype, cenc, tenant, dict(request.headers), streams))
        return self._answer(204)

    def _validate(self, streams: list[PushedStream]) -> str:
        pending: dict[tuple[tuple[str, str], ...], int] = {}
        for s in streams:
            if not s.labels:
                return "error at least one label pair is required per stream"
            if len(s.labels) > MAX_LABEL_NAMES:
                return f"stream '{s.labels}' has {len(s.labels)} label names; limit {MAX_LABEL_NAMES}"
            for name in s.labels:
                if not _LABEL_NAME.match(name) or name.startswith("__"):
                    return f"invalid label name {name!r}"
            key = tuple(sorted(s.labels.items()))
            stored = self._streams.get(key)
            newest = pending.get(key, stored[-1].ts if stored else -1)
            last_line = stored[-1].line if stored else None
            for e in s.entries:
                if len(e.line.encode()) > MAX_LINE_SIZE:
                    return f"Max entry size '{MAX_LINE_SIZE}' bytes exceeded for stream '{key}'"
                if e.ts < newest:
                    return f"entry out of order for stream '{key}'"
                if e.ts == newest and e.line == last_line:
                    continue
                newest = e.ts
                last_line = e.line
            pending[key] = newest
        return ""

    def _store(self, streams: list[PushedStream]) -> None:
        for s in streams:
            key = tuple(sorted(s.labels.items()))
            stored = self._streams.setdefault(key, [])
            for e in s.entries:
                if stored and stored[-1].ts == e.ts and stored[-1].line == e.line:
                    continue  # duplicate
                stored.append(e)

    async def _otlp(self, request: web.Request) -> web.Response:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
            ExportLogsServiceRequest,
            ExportLogsServiceResponse,
        )

        raw = await request.read()
        if request.headers.get("Content-Encoding") == "gzip" and raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        ctype = request.headers.get("Content-Type", "")
        if ctype != "application/x-protobuf":
            return self._answer(415, "Content-Type must be application/x-protobuf")
        msg = ExportLogsServiceRequest()
        msg.ParseFromString(raw)
        self.otlp_requests.append(msg)
        self.answers.append((200, ""))
        self._event.set()
        return web.Response(status=200, body=ExportLogsServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")
