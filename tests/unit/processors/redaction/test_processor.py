"""The redaction processor on all three signals: collector semantics, extended coverage, presets, counts."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from agent.component import Settings, Signal
from agent.config.decode import decode
from agent.errors import ConfigErrors
from agent.pdata import Logs, Metrics, PData, ReadOnlyError, Traces, proto
from agent.pdata.attributes import set_any_value, value_to_python
from agent.processors.redaction.config import Config
from agent.processors.redaction.processor import RedactionProcessor
from agent.telemetry.metrics import SelfMetrics
from agent.testing import SinkConsumer

SECRET = "S3NT1N3L-7f3a9c"
VISA = "4111111111111111"
OPEN = {"allow_all_keys": True}


def kvs(target: Any, attrs: dict[str, Any]) -> None:
    for k, v in attrs.items():
        kv = target.add()
        kv.key = k
        set_any_value(kv.value, v)


def attrs(lst: Any) -> dict[str, Any]:
    return {kv.key: value_to_python(kv.value) for kv in lst}


def make_traces(span_attrs: dict[str, Any], *, resource: dict[str, Any] | None = None,
                event: dict[str, Any] | None = None, link: dict[str, Any] | None = None,
                name: str = "GET /", status: str = "") -> Traces:
    req = proto.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kvs(rs.resource.attributes, resource or {"service.name": "svc"})
    ss = rs.scope_spans.add()
    kvs(ss.scope.attributes, {"scope.secret_token": SECRET})
    span = ss.spans.add()
    span.name = name
    span.trace_id = b"\x01" * 16
    span.span_id = b"\x02" * 8
    span.status.message = status
    kvs(span.attributes, span_attrs)
    if event is not None:
        ev = span.events.add()
        ev.name = "exception"
        kvs(ev.attributes, event)
    if link is not None:
        ln = span.links.add()
        ln.trace_id = b"\x03" * 16
        ln.span_id = b"\x04" * 8
        kvs(ln.attributes, link)
    return Traces(req)


def make_logs(body: Any, record: dict[str, Any] | None = None) -> Logs:
    req = proto.ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    kvs(rl.resource.attributes, {"service.name": "svc"})
    r = rl.scope_logs.add().log_records.add()
    set_any_value(r.body, body)
    kvs(r.attributes, record or {})
    return Logs(req)


def make_metrics(point_attrs: dict[str, Any]) -> Metrics:
    req = proto.ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    kvs(rm.resource.attributes, {"service.name": "svc"})
    sm = rm.scope_metrics.add()
    g = sm.metrics.add()
    g.name = "g"
    p = g.gauge.data_points.add()
    p.as_double = 1.0
    kvs(p.attributes, point_attrs)
    ex = p.exemplars.add()
    kvs(ex.filtered_attributes, {"user.email": "bob@example.com"})
    h = sm.metrics.add()
    h.name = "h"
    hp = h.histogram.data_points.add()
    kvs(hp.attributes, point_attrs)
    s = sm.metrics.add()
    s.name = "s"
    sp = s.summary.data_points.add()
    kvs(sp.attributes, point_attrs)
    e = sm.metrics.add()
    e.name = "e"
    ep = e.exponential_histogram.data_points.add()
    kvs(ep.attributes, point_attrs)
    return Metrics(req)


@pytest.fixture
def run(proc_settings: Callable[..., Settings]) -> Callable[..., Any]:
    async def go(data: PData, **cfg: Any) -> PData:
        sink = SinkConsumer()
        p = RedactionProcessor(proc_settings("redaction", pipeline=data.signal.value), decode(Config, cfg),
                               data.signal, sink)
        await getattr(p, "consume_" + data.signal.value)(data)
        (out,) = sink.received[data.signal]
        # what an exporter would send: the re-serialized request
        again = type(out).parse(out.to_bytes())
        return again
    return go


def span_of(t: PData) -> Any:
    return t.proto.resource_spans[0].scope_spans[0].spans[0]


def record_of(lg: PData) -> Any:
    return lg.proto.resource_logs[0].scope_logs[0].log_records[0]


def counted(t: SelfMetrics, reason: str, pipeline: str = "traces") -> float:
    return t.value("otelcol_processor_redaction_redacted_total",
                   {"processor": "redaction", "pipeline": pipeline, "reason": reason})


# -- the collector's semantics ------------------------------------------------------------------
async def test_allowlist_fails_closed_everywhere(run: Any, telemetry: SelfMetrics) -> None:
    out = await run(make_traces({"a": "1", "b": 2}, event={"e": "x"}, link={"l": "y"}))
    span = span_of(out)
    assert attrs(span.attributes) == {} and attrs(span.events[0].attributes) == {}
    assert attrs(span.links[0].attributes) == {}
    assert attrs(out.proto.resource_spans[0].resource.attributes) == {}
    assert counted(telemetry, "not_allowed") == 6  # resource, scope, span x2, event, link
    out = await run(make_traces({"a": "1", "b": 2}), allowed_keys=["a", "service.name"])
    assert attrs(span_of(out).attributes) == {"a": "1"}
    assert attrs(out.proto.resource_spans[0].resource.attributes) == {"service.name": "svc"}


async def test_ignored_keys_are_untouched(run: Any) -> None:
    out = await run(make_traces({"password": SECRET, "note": f"card {VISA}"}), allow_all_keys=True,
                    ignored_keys=["password"], ignored_key_patterns=["^no"])
    assert attrs(span_of(out).attributes) == {"password": SECRET, "note": f"card {VISA}"}


async def test_blocked_keys_blocked_and_allowed_values(run: Any, telemetry: SelfMetrics) -> None:
    out = await run(make_traces({"x.token_like": "abc", "pin_code": 1234, "notes": "id ABC-123 and ABC-999",
                                 "ok": "ABC-777 is fine"}),
                    allow_all_keys=True, blocked_key_patterns=[".*token_like", "pin_code"],
                    blocked_values=["ABC-[0-9]+"], allowed_values=["is fine$"], presets={"enabled": False})
    assert attrs(span_of(out).attributes) == {"x.token_like": "****", "pin_code": "****",
                                              "notes": "id **** and ****", "ok": "ABC-777 is fine"}
    assert counted(telemetry, "blocked_key") == 2 and counted(telemetry, "blocked_value") == 2


@pytest.mark.parametrize(("fn", "digest"), [
    ("md5", hashlib.md5), ("sha1", hashlib.sha1), ("sha3", hashlib.sha3_256),
])
async def test_hash_functions(run: Any, fn: str, digest: Any) -> None:
    out = await run(make_traces({"password": SECRET, "note": "mail bob@example.com"}), allow_all_keys=True,
                    hash_function=fn)
    a = attrs(span_of(out).attributes)
    assert a["password"] == digest(SECRET.encode()).hexdigest()
    assert a["note"] == "mail " + digest(b"bob@example.com").hexdigest()


async def test_hmac(run: Any) -> None:
    key = "k" * 32
    out = await run(make_traces({"password": SECRET}), allow_all_keys=True, hash_function="hmac-sha256",
                    hmac_key=key)
    import hmac
    assert attrs(span_of(out).attributes)["password"] == hmac.new(key.encode(), SECRET.encode(), "sha256").hexdigest()


async def test_summary_levels_never_carry_values(run: Any) -> None:
    data = {"password": SECRET, "gone": "x", "kept": "y", "note": f"card {VISA}"}
    debug = attrs(span_of(await run(make_traces(data), allowed_keys=["password", "kept", "note"],
                                    summary="debug")).attributes)
    assert debug["redaction.redacted.keys"] == "gone" and debug["redaction.redacted.count"] == 1
    assert debug["redaction.masked.keys"] == "note,password" and debug["redaction.masked.count"] == 2
    info = attrs(span_of(await run(make_traces(data), allowed_keys=["password", "kept", "note"],
                                   summary="info")).attributes)
    assert "redaction.masked.keys" not in info and info["redaction.masked.count"] == 2
    silent = attrs(span_of(await run(make_traces(data), allow_all_keys=True)).attributes)
    assert not any(k.startswith("redaction.") for k in silent)
    assert all(SECRET not in str(v) and VISA not in str(v) for v in debug.values())


# -- coverage beyond the collector ------------------------------------------------------------------
async def test_every_trace_location(run: Any, telemetry: SelfMetrics) -> None:
    t = make_traces({"db.statement": f"UPDATE users SET password = '{SECRET}' WHERE id = 4",
                     "url.full": f"https://u:{SECRET}@h/p?token={SECRET}&page=2",
                     "http.request.header.authorization": f"Bearer {SECRET}",
                     "nested": {"password": SECRET, "list": [f"mail {SECRET}@example.com"]}},
                    resource={"service.name": "svc", "deploy.password": SECRET},
                    event={"exception.message": f"login failed password={SECRET}"},
                    link={"peer.secret": SECRET},
                    name=f"GET /reset?token={SECRET}", status=f"bad password: {SECRET}")
    out = await run(t, **OPEN)
    assert SECRET not in str(out.proto)
    span = span_of(out)
    a = attrs(span.attributes)
    assert a["db.statement"] == "UPDATE users SET password = ? WHERE id = ?"
    assert a["url.full"] == "https://u:****@h/p?token=****&page=2"
    assert a["http.request.header.authorization"] == "****"
    assert a["nested"] == {"password": "****", "list": ["mail ****"]}
    assert span.name == "GET /reset?token=****"
    assert counted(telemetry, "sql_literal") == 1 and counted(telemetry, "password") >= 4


async def test_log_bodies_string_and_map(run: Any, telemetry: SelfMetrics) -> None:
    out = await run(make_logs(f"user bob@example.com paid with {VISA}, password={SECRET}"), **OPEN)
    assert record_of(out).body.string_value == "user **** paid with ****, password=****"
    body = {"user": "bob", "password": SECRET, "card": {"number": VISA, "note": f"Bearer {SECRET}"},
            "items": [{"api_key": SECRET}]}
    out = await run(make_logs(body), **OPEN)
    assert value_to_python(record_of(out).body) == {
        "user": "bob", "password": "****", "card": {"number": "****", "note": "Bearer ****"},
        "items": [{"api_key": "****"}]}
    assert counted(telemetry, "credit_card", "logs") == 2


async def test_log_body_map_follows_the_allowlist_and_summary(run: Any) -> None:
    out = await run(make_logs({"user": "bob", "ssn_like": "x", "msg": f"password={SECRET}"}),
                    allowed_keys=["user", "msg"], summary="debug")
    r = record_of(out)
    assert value_to_python(r.body) == {"user": "bob", "msg": "password=****"}
    a = attrs(r.attributes)
    assert a["redaction.body.redacted.keys"] == "ssn_like" and a["redaction.body.masked.keys"] == "msg"


async def test_metric_points_and_exemplars(run: Any, telemetry: SelfMetrics) -> None:
    out = await run(make_metrics({"user.email": "bob@example.com", "card": int(VISA), "route": "/a"}), **OPEN)
    text = str(out.proto)
    assert "bob@example.com" not in text and VISA not in text and "/a" in text
    assert counted(telemetry, "email", "metrics") == 5  # 4 point kinds + 1 exemplar


async def test_presets_off_and_redact_all_types(run: Any) -> None:
    t = make_traces({"password": SECRET, "n": 4111111111111111, "b": True})
    out = await run(t, allow_all_keys=True, presets={"enabled": False})
    assert attrs(span_of(out).attributes)["password"] == SECRET
    out = await run(make_traces({"n": 1234567}), allow_all_keys=True, redact_all_types=True,
                    blocked_values=["^123"], presets={"enabled": False})
    assert attrs(span_of(out).attributes) == {"n": "****4567"}
    out = await run(make_traces({"password": SECRET, "mail": "a@b.io"}), allow_all_keys=True,
                    presets={"passwords": False})
    assert attrs(span_of(out).attributes) == {"password": SECRET, "mail": "****"}


async def test_db_sanitizer_sql_attributes(run: Any) -> None:
    out = await run(make_traces({"my.sql": "SELECT 1 FROM t WHERE a = 'x'"}), allow_all_keys=True,
                    presets={"sql_literals": False}, db_sanitizer={"sql": {"enabled": True, "attributes": ["my.sql"]}})
    assert attrs(span_of(out).attributes)["my.sql"] == "SELECT ? FROM t WHERE a = ?"


async def test_clean_data_keeps_its_wire_bytes(proc_settings: Callable[..., Settings]) -> None:
    sink = SinkConsumer()
    p = RedactionProcessor(proc_settings("redaction"), decode(Config, OPEN), Signal.TRACES, sink)
    clean = make_traces({"http.route": "/a", "n": 3})
    del clean.mutable().resource_spans[0].scope_spans[0].scope.attributes[:]
    data = Traces.parse(clean.to_bytes())
    await p.consume_traces(data)
    assert sink.received[Signal.TRACES][0].has_original_bytes
    dirty = Traces.parse(make_traces({"password": "x"}).to_bytes())
    await p.consume_traces(dirty)
    assert not sink.received[Signal.TRACES][1].has_original_bytes


async def test_shared_read_only_data_is_refused(proc_settings: Callable[..., Settings]) -> None:
    p = RedactionProcessor(proc_settings("redaction"), decode(Config, OPEN), Signal.TRACES, SinkConsumer())
    data = make_traces({"a": "b"})
    data.read_only = True
    with pytest.raises(ReadOnlyError):
        await p.consume_traces(data)


def test_fail_closed_warning(proc_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture) -> None:
    RedactionProcessor(proc_settings("redaction"), decode(Config, {}), Signal.LOGS, SinkConsumer())
    assert "every attribute is removed" in caplog.text


@pytest.mark.parametrize(("cfg", "message"), [
    ({"blocked_values": ["("]}, "processors.redaction.blocked_values[0]: invalid regular expression"),
    ({"hash_function": "hmac-sha256", "hmac_key": "short"}, "at least 32 bytes"),
    ({"hash_function": "sha256"}, "invalid value 'sha256'"),
    ({"url_sanitizer": {"enabled": True}}, "url_sanitizer is not implemented"),
    ({"db_sanitizer": {"redis": {"enabled": True}}}, "redis sanitizer is not implemented"),
    ({"summary": "loud"}, "summary"),
])
def test_config_errors(cfg: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigErrors) as info:
        decode(Config, cfg, "processors.redaction")
    assert message in str(info.value)
    assert "short" not in str(info.value).replace("at least", "")
