"""loki exporter config: defaults, label safety, endpoint and tenant checks."""

from __future__ import annotations

from typing import Any

import pytest

from agent.config.decode import decode
from agent.errors import ConfigErrors
from agent.exporters.loki.config import Config, is_high_cardinality, sanitize_label_name


def problems(**kw: Any) -> str:
    with pytest.raises(ConfigErrors) as info:
        decode(Config, {"endpoint": "http://loki:3100/loki/api/v1/push", **kw}, "exporters.loki")
    return str(info.value)


def test_defaults() -> None:
    c = decode(Config, {"endpoint": "http://loki:3100/loki/api/v1/push"})
    assert (c.encoding, c.line_format, c.max_line_size, c.line_too_long) == ("protobuf", "json", 256_000, "truncate")
    assert c.labels.max_label_names == 15 and c.labels.level == "level" and c.labels.default_resource
    assert c.structured_metadata.enabled and c.structured_metadata.max_entries == 128
    assert c.sending_queue.enabled and c.retry_on_failure.enabled and c.timeout == 5.0
    assert decode(Config, {"endpoint": "http://x/p", "max_line_size": "256KB"}).max_line_size == 256_000


def test_endpoint_is_required() -> None:
    with pytest.raises(ConfigErrors, match=r"exporters\.loki\.endpoint: required"):
        decode(Config, {}, "exporters.loki")


@pytest.mark.parametrize(("endpoint", "message"), [
    ("loki:3100", "must be a full http(s) URL"),
    ("http://loki:3100/otlp", "native OTLP endpoint"),
    ("http://loki:3100/otlp/v1/logs", "native OTLP endpoint"),
])
def test_bad_endpoints(endpoint: str, message: str) -> None:
    with pytest.raises(ConfigErrors, match=r"exporters\.loki\.endpoint") as info:
        decode(Config, {"endpoint": endpoint}, "exporters.loki")
    assert message in str(info.value)


@pytest.mark.parametrize(("section", "attr", "label"), [
    ("attributes", "trace_id", "trace_id"),
    ("attributes", "span.id", "span"),
    ("attributes", "user.id", "user"),
    ("attributes", "enduser.id", "who"),
    ("attributes", "http.request.id", "rid"),
    ("attributes", "route", "request_id"),
    ("resource", "session.id", "session"),
])
def test_high_cardinality_fields_are_refused_as_labels(section: str, attr: str, label: str) -> None:
    text = problems(labels={section: {attr: label}})
    assert f"exporters.loki.labels.{section}.{attr}" in text
    assert "high-cardinality" in text and "structured metadata" in text


def test_label_names_are_checked() -> None:
    assert "invalid Loki label name 'http.route'" in problems(labels={"attributes": {"http.route": "http.route"}})
    assert "invalid Loki label name '__x'" in problems(labels={"attributes": {"a": "__x"}})
    assert "also produced by" in problems(labels={"attributes": {"a": "x", "b": "x"}})
    assert "max_label_names" in problems(labels={"max_label_names": 0})


def test_tenant_headers_and_sizes() -> None:
    assert "tenant_id" in problems(tenant_id="a:b")
    assert "tenant_id" in problems(tenant_id="t" * 151)
    assert "set by the exporter" in problems(headers={"Content-Type": "text/plain"})
    assert "unknown key" in problems(labels={"bogus": 1})


def test_helpers() -> None:
    assert sanitize_label_name("k8s.pod.name") == "k8s_pod_name"
    assert sanitize_label_name("1a-b") == "_1a_b"
    assert is_high_cardinality("Trace-ID") and is_high_cardinality("x_request_id")
    assert not is_high_cardinality("service.name")
