"""The loki exporter against the Loki double: encodings, headers, Loki's status codes, fallbacks, counts."""

from __future__ import annotations

import email.utils
import gzip
import json
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agent.component import Settings, Signal
from agent.errors import ConsumerError, PermanentError
from agent.exporters.loki.convert import Stream
from agent.exporters.loki.exporter import LokiExporter, parse_retry_after, split_streams
from agent.pdata import Logs
from agent.telemetry.metrics import SelfMetrics
from agent.testing import FakeClock
from tests.helpers import running
from tests.loki_double import LokiDouble
from tests.unit.exporters.conftest import NoHost
from tests.unit.exporters.loki.helpers import config, logs

EXP = "loki"
RES = {"service.name": "cart", "k8s.namespace.name": "prod"}
INLINE = {"enabled": False}
FAST_RETRY = {"initial_interval": "10ms", "randomization_factor": 0, "max_interval": "50ms",
              "max_elapsed_time": "60s"}


@pytest.fixture
async def loki() -> AsyncIterator[LokiDouble]:
    async with running(LokiDouble()) as double:
        yield double


@pytest.fixture
async def make_exporter(make_settings: Callable[..., Settings], clock: FakeClock) -> AsyncIterator[Any]:
    made: list[LokiExporter] = []

    async def make(endpoint: str, **cfg: Any) -> LokiExporter:
        cfg.setdefault("sending_queue", INLINE)
        cfg.setdefault("retry_on_failure", FAST_RETRY)
        exp = LokiExporter(make_settings(EXP), config(endpoint=endpoint, **cfg), {Signal.LOGS},
                           clock=clock, sleep=clock.sleep)
        await exp.start(NoHost())
        made.append(exp)
        return exp

    yield make
    for exp in made:
        await exp.shutdown()


def m(t: SelfMetrics, name: str, **labels: str) -> float:
    return t.value(name, {"exporter": EXP, **labels})


def records(n: int, start: int = 1_000, **spec: Any) -> list[dict[str, Any]]:
    return [{"ts": start + i, "body": f"line {i}", **spec} for i in range(n)]


def two_levels(n: int = 3, start: int = 1_000) -> Logs:
    return logs([(RES, records(n, start, sev=9) + records(n, start, sev=17, text="ERROR"))])


async def test_protobuf_push_with_headers_labels_and_counts(make_exporter: Any, loki: LokiDouble,
                                                            telemetry: SelfMetrics) -> None:
    exp = await make_exporter(loki.push_url, tenant_id="team-a", headers={"X-Extra": "1"})
    await exp.consume_logs(logs([(RES, records(5, trace="ab" * 16, span="cd" * 8))]))
    push = loki.pushes[0]
    assert push.content_type == "application/x-protobuf" and push.content_encoding == ""
    assert push.tenant == "team-a" and push.headers["X-Extra"] == "1"
    assert push.headers["User-Agent"].startswith("otel-sidecar/")
    (labels, entries), = loki.streams().items()
    assert dict(labels) == {"service_name": "cart", "k8s_namespace_name": "prod", "level": "info"}
    assert [json.loads(e.line)["body"] for e in entries] == [f"line {i}" for i in range(5)]
    assert entries[0].metadata["trace_id"] == "ab" * 16 and entries[0].metadata["span_id"] == "cd" * 8
    assert m(telemetry, "otelcol_exporter_sent_log_records_total") == 5
    assert m(telemetry, "otelcol_exporter_loki_responses_total", status_code="204") == 1


async def test_json_gzip_push(make_exporter: Any, loki: LokiDouble) -> None:
    exp = await make_exporter(loki.push_url, encoding="json", line_format="raw")
    await exp.consume_logs(two_levels())
    push = loki.pushes[0]
    assert (push.content_type, push.content_encoding) == ("application/json", "gzip")
    assert sorted(loki.lines()) == sorted([f"line {i}" for i in range(3)] * 2)
    levels = {dict(k)["level"] for k in loki.streams()}
    assert levels == {"info", "error"}


async def test_json_without_compression(make_exporter: Any, loki: LokiDouble) -> None:
    exp = await make_exporter(loki.push_url, encoding="json", compression="none")
    await exp.consume_logs(two_levels(1))
    assert loki.pushes[0].content_encoding == "" and len(loki.lines()) == 2


async def test_429_is_retried_after_retry_after(make_exporter: Any, loki: LokiDouble, clock: FakeClock,
                                                telemetry: SelfMetrics) -> None:
    loki.script = [(429, {"Retry-After": "7"}), (503, {}), (500, {})]
    exp = await make_exporter(loki.push_url)
    await exp.consume_logs(two_levels())
    assert len(loki.lines()) == 6
    assert clock.sleeps[0] >= 7  # the server's hint bounds the wait from below
    assert len(clock.sleeps) == 3
    assert m(telemetry, "otelcol_exporter_loki_responses_total", status_code="429") == 1
    assert m(telemetry, "otelcol_exporter_sent_log_records_total") == 6
    assert m(telemetry, "otelcol_exporter_send_failed_log_records_total") == 0


async def test_bad_stream_is_dropped_and_counted_while_others_flow(make_exporter: Any, loki: LokiDouble,
                                                                   telemetry: SelfMetrics) -> None:
    loki.reject_stream = lambda labels: labels.get("level") == "error"
    exp = await make_exporter(loki.push_url)
    await exp.consume_logs(two_levels(3))
    assert sorted({dict(k)["level"] for k in loki.streams()}) == ["info"]
    assert len(loki.lines()) == 3
    assert m(telemetry, "otelcol_exporter_loki_dropped_log_records_total", reason="bad_request") == 3
    assert m(telemetry, "otelcol_exporter_send_failed_log_records_total") == 3
    assert m(telemetry, "otelcol_exporter_sent_log_records_total") == 3  # sent + failed == records
    statuses = [s for s, _ in loki.answers]
    assert statuses == [400, 204, 400]  # whole request, then one request per stream, never retried
    await exp.consume_logs(two_levels(2, start=5_000))  # later data still flows
    assert len(loki.lines()) == 5


async def test_out_of_order_entries_are_dropped_not_retried(make_exporter: Any, loki: LokiDouble,
                                                            telemetry: SelfMetrics) -> None:
    exp = await make_exporter(loki.push_url)
    await exp.consume_logs(logs([(RES, records(2, start=10_000))]))
    with pytest.raises(PermanentError, match="out of order"):
        await exp.consume_logs(logs([(RES, records(2, start=1))]))
    assert m(telemetry, "otelcol_exporter_loki_dropped_log_records_total", reason="bad_request") == 2
    assert m(telemetry, "otelcol_exporter_send_failed_log_records_total") == 2
    assert [s for s, _ in loki.answers] == [204, 400]
    await exp.consume_logs(logs([(RES, records(1, start=20_000))]))
    assert len(loki.lines()) == 3


async def test_partial_acceptance_then_throttle_retries_without_duplicates(
        make_exporter: Any, loki: LokiDouble, clock: FakeClock) -> None:
    # whole request refused; info stream alone accepted; error stream alone throttled; the retry re-sends both
    loki.script = [(400, {}), None, (429, {"Retry-After": "2"})]
    exp = await make_exporter(loki.push_url)
    await exp.consume_logs(two_levels(3))
    assert sorted(loki.lines()) == sorted([f'{{"body":"line {i}"}}' for i in range(3)] * 2)
    assert clock.sleeps and clock.sleeps[0] >= 2


async def test_413_splits_the_request(make_exporter: Any, loki: LokiDouble, telemetry: SelfMetrics) -> None:
    loki.script = [(413, {})]
    exp = await make_exporter(loki.push_url)
    await exp.consume_logs(logs([(RES, records(6))]))
    assert len(loki.lines()) == 6
    assert [s for s, _ in loki.answers] == [413, 204, 204]
    loki.script = [(413, {})]
    with pytest.raises(PermanentError):
        await exp.consume_logs(logs([(RES, records(1, start=9_000))]))
    assert m(telemetry, "otelcol_exporter_loki_dropped_log_records_total", reason="too_large") == 1


async def test_401_is_permanent(make_exporter: Any, telemetry: SelfMetrics) -> None:
    async with running(LokiDouble(require_tenant=True)) as double:
        exp = await make_exporter(double.push_url)
        with pytest.raises(PermanentError, match="no org id"):
            await exp.consume_logs(two_levels(1))
        assert [s for s, _ in double.answers] == [401]  # not retried, not split
        assert m(telemetry, "otelcol_exporter_loki_dropped_log_records_total", reason="rejected") == 2


async def test_unreachable_loki_is_retried_then_reported(make_exporter: Any, free_port: Callable[[], int],
                                                         telemetry: SelfMetrics) -> None:
    url = f"http://127.0.0.1:{free_port()}/loki/api/v1/push"
    exp = await make_exporter(url, retry_on_failure={**FAST_RETRY, "max_elapsed_time": "100ms"})
    with pytest.raises(ConsumerError, match="cannot reach Loki"):
        await exp.consume_logs(two_levels(1))
    assert m(telemetry, "otelcol_exporter_send_failed_log_records_total") == 2


async def test_line_limits_are_counted(make_exporter: Any, loki: LokiDouble, telemetry: SelfMetrics) -> None:
    exp = await make_exporter(loki.push_url, line_format="raw", max_line_size=300_000)
    big = "x" * 270_000  # over Loki's default 256,000 bytes
    with pytest.raises(PermanentError, match="Max entry size"):
        await exp.consume_logs(logs([(RES, [{"ts": 1, "body": big}])]))
    exp2 = await make_exporter(loki.push_url, line_format="raw")
    await exp2.consume_logs(logs([(RES, [{"ts": 2, "body": big}, {"ts": 3, "body": "ok"}])]))
    assert [len(x) for x in loki.lines()] == [256_000, 2]
    assert m(telemetry, "otelcol_exporter_loki_truncated_lines_total") == 1
    exp3 = await make_exporter(loki.push_url, line_format="raw", line_too_long="drop")
    await exp3.consume_logs(logs([(RES, [{"ts": 4, "body": big}, {"ts": 5, "body": "ok"}])]))
    assert m(telemetry, "otelcol_exporter_loki_dropped_log_records_total", reason="line_too_long") == 1
    with pytest.raises(PermanentError, match="max_line_size"):
        await exp3.consume_logs(logs([(RES, [{"ts": 6, "body": big}])]))


async def test_label_limit_is_counted(make_exporter: Any, loki: LokiDouble, telemetry: SelfMetrics) -> None:
    exp = await make_exporter(loki.push_url, labels={"max_label_names": 2})
    await exp.consume_logs(logs([(RES, records(1))]))
    assert m(telemetry, "otelcol_exporter_loki_dropped_label_names_total") == 1
    assert [dict(k) for k in loki.streams()] == [{"service_name": "cart", "level": "info"}]


async def test_queued_delivery(make_exporter: Any, loki: LokiDouble, telemetry: SelfMetrics) -> None:
    exp = await make_exporter(loki.push_url, sending_queue={"num_consumers": 1})
    for i in range(5):
        await exp.consume_logs(logs([(RES, records(10, start=1_000 * (i + 1)))]))
    await loki.wait_entries(50)
    await exp.shutdown()
    assert m(telemetry, "otelcol_exporter_sent_log_records_total") == 50


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0 and parse_retry_after("1.5") == 1.5
    assert parse_retry_after(None) == 0.0 and parse_retry_after("soon") == 0.0 and parse_retry_after("-4") == 0.0
    date = email.utils.formatdate(1_000_010, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(10.0)


def test_split_streams() -> None:
    a, b = Stream((("a", "1"),)), Stream((("a", "2"),))
    a.entries = [(i, "x", None) for i in range(3)]
    b.entries = [(i, "y", None) for i in range(3)]
    first, second = split_streams([a, b])
    assert first == [a] and second == [b]
    one, two = split_streams([a])
    assert [len(s.entries) for s in one + two] == [1, 2] and one[0].labels == a.labels


def test_gzip_helper_is_stdlib() -> None:
    assert gzip.decompress(gzip.compress(b"x")) == b"x"


async def test_260_block_ingestion_is_dropped_and_counted(make_exporter: Any, loki: LokiDouble,
                                                          telemetry: SelfMetrics) -> None:
    loki.script = [(260, {})]
    exp = await make_exporter(loki.push_url)
    with pytest.raises(PermanentError, match="260"):
        await exp.consume_logs(two_levels(1))
    assert m(telemetry, "otelcol_exporter_loki_dropped_log_records_total", reason="blocked") == 2
    assert [s for s, _ in loki.answers] == [260]


async def test_header_secrets_are_never_logged(make_exporter: Any, loki: LokiDouble,
                                               caplog: pytest.LogCaptureFixture) -> None:
    secret = "S3NT1N3L-header-token"
    caplog.set_level("DEBUG")
    loki.script = [(503, {}), (400, {})]
    exp = await make_exporter(loki.push_url, headers={"Authorization": f"Bearer {secret}"})
    with pytest.raises(PermanentError):
        await exp.consume_logs(logs([(RES, records(1))]))
    assert loki.pushes == [] and len(loki.answers) == 2
    assert secret not in caplog.text and secret not in repr(exp.config)


@pytest.fixture
def server_cert(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for the name ``loki.test`` (needs the openssl command)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl command not available")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=loki.test", "-addext", "subjectAltName=DNS:loki.test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=30)
    return cert, key


async def test_https_with_ca_file_and_server_name_override(make_exporter: Any, server_cert: tuple[Path, Path],
                                                           telemetry: SelfMetrics) -> None:
    cert, key = server_cert
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    async with running(LokiDouble(ssl_context=ctx)) as double:
        assert double.push_url.startswith("https://127.0.0.1:")
        exp = await make_exporter(double.push_url, tls={"ca_file": str(cert), "server_name_override": "loki.test"})
        await exp.consume_logs(logs([(RES, records(2))]))
        assert len(double.lines()) == 2
        # without the override the certificate does not match 127.0.0.1
        bad = await make_exporter(double.push_url, tls={"ca_file": str(cert)}, retry_on_failure={"enabled": False})
        with pytest.raises(ConsumerError, match="cannot reach Loki"):
            await bad.consume_logs(logs([(RES, records(1, start=5_000))]))
