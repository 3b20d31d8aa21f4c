"""Names, unit suffixes, label sanitising, collisions and escaping (protocols.md 2.1-2.2)."""

from __future__ import annotations

import pytest

from agent.exporters.prometheus.translate import (
    Namer,
    escape_help_om,
    escape_help_text,
    escape_label_value,
    format_labels,
    job_instance,
    label_name,
    merge_labels,
    unit_word,
)


@pytest.mark.parametrize(("unit", "word"), [
    ("s", "seconds"), ("ms", "milliseconds"), ("us", "microseconds"), ("ns", "nanoseconds"),
    ("min", "minutes"), ("h", "hours"), ("d", "days"),
    ("By", "bytes"), ("KiBy", "kibibytes"), ("MiBy", "mebibytes"), ("GiBy", "gibibytes"), ("TiBy", "tebibytes"),
    ("kBy", "kilobytes"), ("MBy", "megabytes"), ("GBy", "gigabytes"), ("TBy", "terabytes"),
    ("m", "meters"), ("V", "volts"), ("A", "amperes"), ("J", "joules"), ("W", "watts"), ("g", "grams"),
    ("Cel", "celsius"), ("Hz", "hertz"), ("%", "percent"),
    ("By/s", "bytes_per_second"), ("m/s", "meters_per_second"), ("{packet}/s", "per_second"),
    ("1/h", "per_hour"), ("{request}", ""), ("", ""), ("1", ""), ("foo.bar", "foo_bar"), ("km/mo", "km_per_month"),
])
def test_unit_words(unit: str, word: str) -> None:
    assert unit_word(unit) == word


def test_unit_1_is_ratio_only_on_request() -> None:
    assert unit_word("1") == ""
    assert unit_word("1", ratio=True) == "ratio"


@pytest.mark.parametrize(("name", "unit", "counter", "gauge", "expected"), [
    # The spec's examples.
    ("http.server.request.duration", "s", False, False, "http_server_request_duration_seconds"),
    ("http.server.requests", "{request}", True, False, "http_server_requests_total"),
    # The unit is not repeated; _total is moved, not doubled.
    ("request.duration.seconds", "s", False, False, "request_duration_seconds"),
    ("requests.total", "", True, False, "requests_total"),
    ("total.requests", "", True, False, "requests_total"),
    ("io.bytes.total", "By", True, False, "io_bytes_total"),
    ("throughput", "By/s", False, True, "throughput_bytes_per_second"),
    # Sanitising: runs of invalid characters collapse, ends are trimmed, a leading digit gets "_".
    ("my--metric__name!", "", False, True, "my_metric_name"),
    ("2xx.responses", "", True, False, "_2xx_responses_total"),
    ("a:b.c", "", False, True, "a:b_c"),
    ("cpu.utilization", "1", False, True, "cpu_utilization"),
    ("...", "", False, True, ""),
])
def test_metric_names(name: str, unit: str, counter: bool, gauge: bool, expected: str) -> None:
    assert Namer().metric_name(name, unit, counter=counter, gauge=gauge) == expected


def test_ratio_flag_applies_to_gauges_only() -> None:
    namer = Namer(unit_1_as_ratio=True)
    assert namer.metric_name("cpu.utilization", "1", counter=False, gauge=True) == "cpu_utilization_ratio"
    assert namer.metric_name("errors", "1", counter=True, gauge=False) == "errors_total"
    assert namer.metric_name("cpu.ratio", "1", counter=False, gauge=True) == "cpu_ratio"


def test_namespace_and_without_suffixes() -> None:
    assert Namer("my.app").metric_name("reqs", "s", counter=True, gauge=False) == "my_app_reqs_seconds_total"
    plain = Namer("ns", with_suffixes=False)
    assert plain.metric_name("http.requests", "s", counter=True, gauge=False) == "ns_http_requests"
    assert Namer(with_suffixes=False).metric_name("a__b.c", "", counter=False, gauge=True) == "a__b_c"
    assert Namer(with_suffixes=False).metric_name("9lives", "", counter=False, gauge=True) == "_9lives"


@pytest.mark.parametrize(("key", "name"), [
    ("http.method", "http_method"), ("a..b", "a_b"), ("9key", "key_9key"), ("__reserved", "__reserved"),
    ("__a.b", "__a_b"), ("_private", "_private"), ("ünïcode", "_n_code"), ("", ""), ("a-b c", "a_b_c"),
])
def test_label_names(key: str, name: str) -> None:
    assert label_name(key) == name


def test_colliding_keys_join_values_in_key_order() -> None:
    # "a.b" < "a_b" < "a-b" lexicographically? '-' (0x2d) < '.' (0x2e) < '_' (0x5f)
    labels = merge_labels([("a_b", "2"), ("a.b", "1"), ("a-b", "0"), ("z", "z")])
    assert labels == (("a_b", "0;1;2"), ("z", "z"))


def test_collision_with_exporter_labels_and_empty_values() -> None:
    labels = merge_labels([("job", "from-attr"), ("service", ""), ("job", "svc")])
    assert labels == (("job", "from-attr;svc"),)


def test_escaping() -> None:
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert escape_label_value("plain ünïcødé ✓") == "plain ünïcødé ✓"
    assert escape_help_text('a "q" \\ \n') == 'a "q" \\\\ \\n'
    assert escape_help_om('a "q" \\ \n') == 'a \\"q\\" \\\\ \\n'
    assert format_labels([("a", 'x"y'), ("b", "1")]) == '{a="x\\"y",b="1"}'
    assert format_labels([]) == ""


@pytest.mark.parametrize(("attrs", "expected"), [
    ({"service.name": "api"}, ("api", "")),
    ({"service.name": "api", "service.namespace": "shop", "service.instance.id": "i-1"}, ("shop/api", "i-1")),
    ({"service.namespace": "shop"}, ("", "")),
])
def test_job_and_instance(attrs: dict[str, str], expected: tuple[str, str]) -> None:
    assert job_instance(attrs.items()) == expected
