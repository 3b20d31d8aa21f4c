"""``otlp`` receiver configuration: collector shape, defaults, strict validation."""

from __future__ import annotations

from typing import Any

import pytest

from agent.component import Kind
from agent.components import lookup
from agent.config.decode import decode
from agent.errors import ConfigErrors
from agent.receivers.otlp.config import Config, parse_endpoint, supported_compressions
from agent.receivers.otlp.factory import FACTORY


def load(data: Any) -> Config:
    return decode(Config, data, "receivers.otlp")


def errors(data: Any) -> list[str]:
    with pytest.raises(ConfigErrors) as err:
        load(data)
    return [str(e) for e in err.value.errors]


def test_factory_is_registered() -> None:
    assert lookup(Kind.RECEIVER, "otlp") is FACTORY
    assert FACTORY.config_class is Config and FACTORY.stability == "stable"


def test_null_protocol_keys_enable_defaults() -> None:
    cfg = load({"protocols": {"grpc": None, "http": None}})
    assert cfg.protocols.grpc is not None and cfg.protocols.http is not None
    assert cfg.protocols.grpc.endpoint == "127.0.0.1:4317" and cfg.protocols.grpc.max_recv_bytes == 4 * 1024 * 1024
    http = cfg.protocols.http
    assert http.endpoint == "127.0.0.1:4318" and http.body_limit == 20 * 1024 * 1024
    assert http.url_paths() == ("/v1/traces", "/v1/metrics", "/v1/logs")
    assert http.encodings == frozenset(supported_compressions())
    only_http = load({"protocols": {"http": {}}})
    assert only_http.protocols.grpc is None


@pytest.mark.parametrize("data", [None, {}, {"protocols": None}, {"protocols": {}}])
def test_at_least_one_protocol(data: Any) -> None:
    assert any("receivers.otlp.protocols: must specify at least one protocol" in e for e in errors(data))


def test_collector_keys_are_accepted() -> None:
    cfg = load({"protocols": {
        "grpc": {
            "endpoint": "localhost:4317", "max_recv_msg_size_mib": 16, "max_concurrent_streams": 100,
            "read_buffer_size": "512KiB", "write_buffer_size": 0, "include_metadata": True,
            "keepalive": {"server_parameters": {"max_connection_idle": "11s", "max_connection_age": "12s",
                                                "max_connection_age_grace": "13s", "time": "30s", "timeout": "5s"},
                          "enforcement_policy": {"min_time": "10s", "permit_without_stream": True}},
        },
        "http": {
            "endpoint": "[::1]:4318", "max_request_body_size": "10MiB", "traces_url_path": "traces",
            "include_metadata": True, "compression_algorithms": ["gzip", "zlib", "deflate", ""],
            "read_header_timeout": "5s", "write_timeout": "10s", "idle_timeout": "1m", "read_timeout": "0s",
            "cors": {"allowed_origins": ["https://*.example.com", "http://localhost:3000"],
                     "allowed_headers": ["X-Custom"], "max_age": 7200},
            "response_headers": {"X-Served-By": "otel-sidecar"}, "keep_alives_enabled": False,
        },
    }})
    grpc, http = cfg.protocols.grpc, cfg.protocols.http
    assert grpc is not None and http is not None
    assert grpc.keepalive is not None and grpc.keepalive.server_parameters is not None
    assert grpc.keepalive.server_parameters.max_connection_idle == 11.0
    assert grpc.max_recv_bytes == 16 * 1024 * 1024
    assert http.body_limit == 10 * 1024 * 1024 and http.url_paths()[0] == "/traces"
    assert http.encodings == frozenset({"", "gzip", "zlib", "deflate"})


@pytest.mark.parametrize(("data", "message"), [
    ({"grpc": {"auth": {"authenticator": "bearertokenauth"}}}, "grpc.auth: not implemented by otel-sidecar"),
    ({"http": {"auth": {"authenticator": "oidc"}}}, "http.auth: not implemented by otel-sidecar"),
    ({"http": {"cors": {"allowed_origins": ["*"]}}}, 'cors.allowed_origins[0]: a bare "*" is refused'),
    ({"http": {"cors": {"allowed_origins": ["https://*.*.com"]}}}, "at most one '*'"),
    ({"grpc": {"endpoint": "4317"}}, "grpc.endpoint: expected host:port"),
    ({"grpc": {"endpoint": "::1:4317"}}, "must be bracketed"),
    ({"http": {"endpoint": "localhost:70000"}}, "port 70000 out of range"),
    ({"http": {"compression_algorithms": ["br"]}}, "compression_algorithms[0]: unknown compression 'br'"),
    ({"http": {"compression_algorithms": ["lz4"]}}, "'lz4' is not implemented by otel-sidecar"),
    ({"http": {"metrics_url_path": "/v1/traces"}}, "URL paths must differ"),
    ({"http": {"tls": None}}, "http.tls.cert_file: a TLS server needs cert_file and key_file"),
    ({"http": {"tls": {"cert_file": "c.pem"}}}, "cert_file and key_file must be set together"),
    ({"http": {"tls": {"cert_file": "c", "key_file": "k", "min_version": "1.1"}}}, "TLS 1.1 is not supported"),
    ({"http": {"tls": {"cert_file": "c", "key_file": "k", "min_version": "1.3", "max_version": "1.2"}}},
     "max_version is below min_version"),
    ({"grpc": {"tls": {"cert_file": "c", "key_file": "k", "min_version": "1.3"}}}, "grpc.tls.min_version"),
    ({"http": {"tls": {"cert_file": "c", "key_file": "k", "cipher_suites": ["TLS_AES_128_GCM_SHA256"]}}},
     "cipher_suites: not implemented by otel-sidecar"),
    ({"http": {"tls": {"insecure": True, "cert_file": "c", "key_file": "k"}}}, "cannot be combined"),
    ({"grpc": {"endpoint_typo": "x"}}, "grpc.endpoint_typo: unknown key"),
    ({"grpc": {"keepalive": {"server_parameters": {"time": 5}}}}, "expected a duration with a unit"),
])
def test_invalid_configs_are_refused_with_their_path(data: dict[str, Any], message: str) -> None:
    found = errors({"protocols": data})
    assert any(message in e for e in found), found


def test_insecure_tls_block_means_plaintext() -> None:
    cfg = load({"protocols": {"http": {"tls": {"insecure": True}}}})
    assert cfg.protocols.http is not None and cfg.protocols.http.tls is not None
    assert not cfg.protocols.http.tls.enabled


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:4317", ("127.0.0.1", 4317)), ("[::1]:0", ("::1", 0)), (":4318", ("", 4318)),
    ("localhost:1", ("localhost", 1)),
])
def test_parse_endpoint(text: str, expected: tuple[str, int]) -> None:
    assert parse_endpoint(text) == expected
