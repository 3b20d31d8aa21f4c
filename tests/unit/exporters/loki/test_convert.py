"""OTLP logs -> Loki streams: labels, level, limits, structured metadata, line formats, order."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.exporters.loki.config import DEFAULT_RESOURCE_LABELS
from agent.exporters.loki.convert import Batch, Converter, Stream, escape_label_value, level_of, logfmt_value
from tests.unit.exporters.loki.helpers import config, request

TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"
RES = {"service.name": "cart", "service.namespace": "shop", "k8s.namespace.name": "prod",
       "k8s.pod.name": "cart-7d9f", "deployment.environment.name": "production", "host.name": "node-3",
       "service.version": "1.2.3"}


def convert(resources: list[tuple[dict[str, Any], list[dict[str, Any]]]], *, protobuf: bool = False,
            now: int = 42, **cfg: Any) -> Batch:
    return Converter(config(**cfg), protobuf=protobuf, clock_ns=lambda: now).convert(request(resources))


def only(batch: Batch) -> Stream:
    assert len(batch.streams) == 1, batch.streams
    return batch.streams[0]


def test_default_labels_follow_loki_otlp_convention() -> None:
    s = only(convert([(RES, [{"ts": 1, "body": "hello"}])]))
    assert dict(s.pairs) == {
        "service_name": "cart", "service_namespace": "shop", "k8s_namespace_name": "prod",
        "k8s_pod_name": "cart-7d9f", "deployment_environment_name": "production", "level": "info",
    }
    assert s.labels == ('{deployment_environment_name="production", k8s_namespace_name="prod", '
                        'k8s_pod_name="cart-7d9f", level="info", service_name="cart", service_namespace="shop"}')


def test_service_name_is_always_set() -> None:
    assert dict(only(convert([({"host.name": "x"}, [{"ts": 1}])])).pairs)["service_name"] == "unknown_service"
    # even when the default resource labels are off
    s = only(convert([({"service.name": "api"}, [{"ts": 1}])], labels={"default_resource": False}))
    assert dict(s.pairs) == {"service_name": "api", "level": "info"}


@pytest.mark.parametrize(("number", "text", "level"), [
    (1, "", "trace"), (5, "", "debug"), (9, "INFO", "info"), (12, "", "info"), (13, "", "warn"),
    (17, "", "error"), (21, "", "fatal"), (24, "", "fatal"), (0, "WARNING", "warn"), (0, "Critical", "fatal"),
    (0, "err", "error"), (0, "", "unknown"), (0, "verbose-ish", "unknown"),
])
def test_level(number: int, text: str, level: str) -> None:
    assert level_of(number, text) == level


def test_one_stream_per_level_and_entries_sorted_by_time() -> None:
    batch = convert([(RES, [{"ts": 30, "sev": 9, "body": "c"}, {"ts": 10, "sev": 9, "body": "a"},
                            {"ts": 20, "sev": 17, "text": "ERROR", "body": "e"}, {"ts": 20, "sev": 9, "body": "b"}])],
                    line_format="raw")
    by_level = {dict(s.pairs)["level"]: s for s in batch.streams}
    assert [e[0] for e in by_level["info"].entries] == [10, 20, 30]
    assert [e[1] for e in by_level["info"].entries] == ["a", "b", "c"]
    assert [e[1] for e in by_level["error"].entries] == ["e"]
    assert batch.records == 4


def test_same_labels_from_two_resources_share_a_stream() -> None:
    batch = convert([({"service.name": "a", "host.name": "h1"}, [{"ts": 2}]),
                     ({"service.name": "a", "host.name": "h2"}, [{"ts": 1}])])
    assert [e[0] for e in only(batch).entries] == [1, 2]


def test_label_limit_drops_extras_deterministically_and_counts() -> None:
    res = {k: f"v-{i}" for i, k in enumerate(DEFAULT_RESOURCE_LABELS)}  # 18 labels + level = 19
    batch = convert([(res, [{"ts": 1}]), ({**res, "service.name": "other"}, [{"ts": 1}])])
    assert batch.dropped_label_names == 8  # 4 per stream
    for s in batch.streams:
        names = [k for k, _ in s.pairs]
        assert len(names) == 15
        assert "service_name" in names and "level" in names
        # the end of Loki's list goes first
        assert not {"k8s_job_name", "k8s_cronjob_name", "k8s_daemonset_name", "k8s_statefulset_name"} & set(names)
    again = convert([(res, [{"ts": 1}])])
    assert again.streams[0].pairs == batch.streams[0].pairs


def test_configured_limit_keeps_explicit_resource_labels_over_defaults() -> None:
    s = only(convert([(RES, [{"ts": 1}])], labels={"max_label_names": 3, "resource": {"host.name": "host"}}))
    assert dict(s.pairs) == {"service_name": "cart", "level": "info", "host": "node-3"}


def test_attribute_labels_split_streams_and_leave_line_and_metadata() -> None:
    batch = convert([(RES, [{"ts": 1, "body": "x", "attrs": {"http.route": "/a", "user": "u1"}},
                            {"ts": 2, "body": "y", "attrs": {"http.route": "/b", "user": "u2"}}])],
                    labels={"attributes": {"http.route": "route"}})
    routes = {dict(s.pairs)["route"]: s for s in batch.streams}
    assert set(routes) == {"/a", "/b"}
    _, line, sm = routes["/a"].entries[0]
    assert json.loads(line) == {"body": "x", "attributes": {"user": "u1"}}
    assert isinstance(sm, dict) and "http.route" not in sm


def test_structured_metadata_defaults_trace_context_and_severity() -> None:
    s = only(convert([(RES, [{"ts": 1, "body": "b", "trace": TRACE, "span": SPAN, "sev": 13, "text": "WARN",
                             "attrs": {"user_id": "42"}}])]))
    _, line, sm = s.entries[0]
    assert sm == {"trace_id": TRACE, "span_id": SPAN, "severity_text": "WARN", "severity_number": "13"}
    assert json.loads(line) == {"body": "b", "attributes": {"user_id": "42"}}  # attributes are in the line once


def test_raw_lines_put_attributes_in_structured_metadata() -> None:
    s = only(convert([(RES, [{"ts": 1, "body": "plain", "attrs": {"user_id": "42", "code.lineno": 7}}])],
                     line_format="raw"))
    _, line, sm = s.entries[0]
    assert line == "plain"
    assert (sm or {}) == {"severity_text": "INFO", "severity_number": "9", "user_id": "42", "code.lineno": "7"}


def test_include_all_attributes_moves_them_out_of_the_json_line() -> None:
    s = only(convert([(RES, [{"ts": 1, "body": "b", "attrs": {"a": "1", "secret_note": "x"}}])],
                     structured_metadata={"attributes": {"include": ["*"], "exclude": ["secret_*"]}}))
    _, line, sm = s.entries[0]
    assert isinstance(sm, dict) and sm["a"] == "1" and "secret_note" not in sm
    assert json.loads(line) == {"body": "b", "attributes": {"secret_note": "x"}}


def test_raw_lines_with_an_exclude_list_drop_excluded_attributes() -> None:
    s = only(convert([(RES, [{"ts": 1, "body": "b", "attrs": {"a": "1", "b": "2"}}])], line_format="raw",
                     structured_metadata={"attributes": {"exclude": ["b"]}}))
    assert s.entries[0][2] == {"severity_text": "INFO", "severity_number": "9", "a": "1"}


def test_resource_attributes_as_metadata_when_selected() -> None:
    s = only(convert([(RES, [{"ts": 1}, {"ts": 2}])],
                     structured_metadata={"resource_attributes": {"include": ["host.name", "service.version"]}}))
    for _, _, sm in s.entries:
        assert isinstance(sm, dict) and sm["host.name"] == "node-3" and sm["service.version"] == "1.2.3"


def test_structured_metadata_disabled_and_capped() -> None:
    assert only(convert([(RES, [{"ts": 1, "trace": TRACE}])], structured_metadata={"enabled": False})).entries[0][2] \
        is None
    batch = convert([(RES, [{"ts": 1, "attrs": {f"k{i}": "v" for i in range(10)}}])], line_format="raw",
                    structured_metadata={"max_entries": 5})
    assert len(only(batch).entries[0][2] or {}) == 5
    assert batch.dropped_metadata == 7


def test_json_line_keeps_structured_bodies_and_typed_attributes() -> None:
    s = only(convert([(RES, [{"ts": 1, "body": {"msg": "hi", "n": 3, "tags": ["a", "b"]},
                             "attrs": {"i": 5, "f": 1.5, "b": True, "raw": b"\x00\x01", "m": {"x": 1}}}])],
                     protobuf=True))
    line = s.entries[0][1]
    assert isinstance(line, str)
    assert json.loads(line) == {"body": {"msg": "hi", "n": 3, "tags": ["a", "b"]},
                                "attributes": {"i": 5, "f": 1.5, "b": True, "raw": "AAE=", "m": {"x": 1}}}


def test_logfmt_line() -> None:
    s = only(convert([(RES, [{"ts": 1, "body": 'user said "hi" = ok', "attrs": {"http.route": "/a b", "n": 3}},
                            {"ts": 2, "body": {"event": "login", "ok": True}}])], line_format="logfmt"))
    assert s.entries[0][1] == 'msg="user said \\"hi\\" = ok" http.route="/a b" n=3'
    assert s.entries[1][1] == "event=login ok=true"
    assert logfmt_value("") == '""' and logfmt_value("plain") == "plain"


def test_timestamp_falls_back_to_observed_then_now() -> None:
    s = only(convert([(RES, [{"observed": 7, "body": "o"}, {"body": "n"}])], now=99, line_format="raw"))
    assert [(e[0], e[1]) for e in s.entries] == [(7, "o"), (99, "n")]


def test_long_lines_are_truncated_at_a_utf8_boundary_and_counted() -> None:
    body = "é" * 10  # 20 bytes
    batch = convert([(RES, [{"ts": 1, "body": body}, {"ts": 2, "body": "short"}])], line_format="raw",
                    max_line_size=15)
    lines = [e[1] for e in only(batch).entries]
    assert lines == ["é" * 7, "short"]
    assert batch.truncated_lines == 1
    pb = convert([(RES, [{"ts": 1, "body": body}])], line_format="raw", max_line_size=15, protobuf=True)
    assert only(pb).entries[0][1] == "é" * 7


def test_long_lines_can_be_dropped() -> None:
    batch = convert([(RES, [{"ts": 1, "body": "x" * 100}, {"ts": 2, "body": "ok"}])], line_format="raw",
                    max_line_size="50", line_too_long="drop")
    assert [e[1] for e in only(batch).entries] == ["ok"]
    assert batch.dropped_lines == 1 and batch.records == 1


def test_label_values_are_escaped_and_cut() -> None:
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    s = only(convert([({"service.name": 'we"ird\n' + "x" * 3000}, [{"ts": 1}])]))
    value = dict(s.pairs)["service_name"]
    assert len(value.encode()) == 2048
    assert s.labels.startswith('{level="info", service_name="we\\"ird\\n')


def test_stepwise_conversion_equals_one_go() -> None:
    resources: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [
        (RES, [{"ts": 1000 - i, "sev": 9 + 8 * (i % 2), "body": f"b{i}", "attrs": {"i": i}} for i in range(50)]),
        ({"service.name": "other"}, [{"ts": 5}])]
    conv = Converter(config(), protobuf=True)
    whole = conv.convert(request(resources))
    batch = Batch()
    steps = sum(1 for _ in conv.steps(request(resources), batch, chunk=7))
    assert steps == 51 // 7
    assert [(s.labels, s.entries) for s in batch.streams] == [(s.labels, s.entries) for s in whole.streams]
    assert batch.records == whole.records == 51


def test_protobuf_mode_encodes_metadata_fields_directly() -> None:
    from tests.loki_double import _entry  # the double's own EntryAdapter reader

    batch = convert([(RES, [{"ts": 1, "trace": TRACE, "span": SPAN, "sev": 13, "text": "WARN", "attrs": {"u": "1"}},
                            {"ts": 2, "span": SPAN, "sev": 0, "text": ""}])],
                    protobuf=True, line_format="raw", structured_metadata={"max_entries": 4},
                    labels={"level": ""})
    first, second = only(batch).entries
    assert isinstance(first[2], bytes) and isinstance(second[2], bytes)
    # wrap the fields in an EntryAdapter-shaped message: line = 2, structuredMetadata = 3
    assert _entry(b"\x12\x00" + first[2]).metadata == {"trace_id": TRACE, "span_id": SPAN, "severity_text": "WARN",
                                                       "severity_number": "13"}
    assert _entry(b"\x12\x00" + second[2]).metadata == {"span_id": SPAN}
    assert batch.dropped_metadata == 1  # the attribute "u" was the fifth pair
