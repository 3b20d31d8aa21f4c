"""Expansion, merging and --set overrides, as the collector's confmap does them."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config.decode import parse_bytes, parse_duration
from agent.config.loader import deep_merge, expand, load, parse_set
from agent.errors import ConfigError

ENV = {"PORT": "4317", "HOST": "10.0.0.1", "EMPTY": "", "FLAG": "true", "LIST": "[a, b]"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${env:PORT}", 4317),  # a whole-value reference keeps its YAML type
        ("${PORT}", 4317),
        ("${env:FLAG}", True),
        ("${env:HOST}:${env:PORT}", "10.0.0.1:4317"),  # embedded: substituted as text
        ("${env:MISSING:-127.0.0.1:4318}", "127.0.0.1:4318"),
        ("${env:EMPTY:-fallback}", "fallback"),
        ("${env:MISSING}", None),
        ("x-${env:MISSING}-y", "x--y"),
        ("$$HOME", "$HOME"),  # $$ is a literal $
        ("$HOME", "$HOME"),  # bare $VAR is not expanded
        ("pa$$word${env:PORT}", "pa$word4317"),
        ("${env:LIST}", "[a, b]"),  # env values never become structures
        ("${yaml:[1, 2]}", [1, 2]),
    ],
)
def test_expand(text: str, expected: object) -> None:
    assert expand({"k": text}, ENV) == {"k": expected}


def test_expand_recurses_into_lists_and_keys() -> None:
    out = expand({"a": [{"b": "${env:PORT}"}], "${env:HOST}": 1}, ENV)
    assert out == {"a": [{"b": 4317}], "10.0.0.1": 1}


def test_bad_reference_names_path() -> None:
    with pytest.raises(ConfigError) as e:
        expand({"exporters": {"x": {"endpoint": "${nope:thing}"}}}, ENV)
    assert e.value.path == "exporters.x.endpoint"
    assert "unknown reference scheme" in str(e.value)


def test_file_reference(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    assert expand({"k": f"Bearer ${{file:{secret}}}"}, {}) == {"k": "Bearer s3cret"}


def test_deep_merge_maps_merge_lists_replace() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    over = {"a": {"c": [3], "e": 2}}
    assert deep_merge(base, over) == {"a": {"b": 1, "c": [3], "e": 2}, "d": 1}


def test_set_syntax() -> None:
    assert parse_set("processors.batch.timeout=1s") == {"processors": {"batch": {"timeout": "1s"}}}
    assert parse_set("exporters::file/x::path=/tmp/a.json") == {"exporters": {"file/x": {"path": "/tmp/a.json"}}}
    assert parse_set("a.b=5") == {"a": {"b": 5}}
    with pytest.raises(ConfigError):
        parse_set("novalue")


def test_load_merges_files_in_order_then_sets(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: ${env:X:-1.2.3.4:1}\n")
    b.write_text("receivers:\n  otlp:\n    protocols:\n      http: {}\n")
    raw = load([str(a), str(b)], ["receivers.otlp.protocols.grpc.endpoint=5.6.7.8:2"], env={})
    assert raw == {"receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "5.6.7.8:2"}, "http": {}}}}}


def test_load_reports_yaml_errors_with_location(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("receivers:\n  otlp: [\n")
    with pytest.raises(ConfigError) as e:
        load([str(bad)])
    assert str(bad) in str(e.value) and "line" in str(e.value)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load(["/nonexistent/otel.yaml"])


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("200ms", 0.2), ("1m30s", 90.0), ("1.5h", 5400.0), ("0", 0.0), ("10us", 1e-5), ("2h45m", 9900.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["5", "five", "5 s", "1d", 5, True, "ms"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_sizes() -> None:
    assert parse_bytes(1024) == 1024
    assert parse_bytes("20MiB") == 20 * 1024 * 1024
    assert parse_bytes("64KB") == 64000
    with pytest.raises(ValueError):
        parse_bytes("lots")
