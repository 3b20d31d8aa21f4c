"""The README's quick start: `otel-sidecar` with no arguments runs the embedded
default config, which is useful with nothing else running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests import sdk

pytestmark = pytest.mark.integration


def test_default_config_runs_and_is_useful(tmp_path: Path, free_port: Callable[[], int]) -> None:
    ports = {k: free_port() for k in ("grpc", "http", "prom", "health", "metrics")}
    env = {
        **os.environ,
        "OTEL_SIDECAR_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports['grpc']}",
        "OTEL_SIDECAR_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{ports['http']}",
        "OTEL_SIDECAR_PROMETHEUS_ENDPOINT": f"127.0.0.1:{ports['prom']}",
        "OTEL_SIDECAR_HEALTH_ENDPOINT": f"127.0.0.1:{ports['health']}",
        "OTEL_SIDECAR_METRICS_ENDPOINT": f"127.0.0.1:{ports['metrics']}",
    }
    env.pop("OTEL_SIDECAR_DATA_DIR", None)
    proc = subprocess.Popen([sys.executable, "-m", "agent"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if httpx.get(f"http://127.0.0.1:{ports['health']}/").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "not healthy in time"
            time.sleep(0.05)
        sdk.send_spans("grpc", f"127.0.0.1:{ports['grpc']}", 10, attrs={"db.statement": "password='hunter2'"})
        sdk.send_metrics("http", f"http://127.0.0.1:{ports['http']}", 3)
        sdk.send_logs("grpc", f"127.0.0.1:{ports['grpc']}", 5)
        # metrics: served for scraping
        deadline = time.monotonic() + 10
        while True:
            text = httpx.get(f"http://127.0.0.1:{ports['prom']}/metrics").text
            if "test_requests_total" in text:
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.1)
        assert 'test_requests_total{' in text and 'item_index="2"' in text
        assert 'job="sdk-test"' in text and 'instance="test-1"' in text
        # self-metrics
        own = httpx.get(f"http://127.0.0.1:{ports['metrics']}/metrics").text
        assert 'otelcol_receiver_accepted_spans_total{receiver="otlp",transport="grpc"} 10.0' in own
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    # traces and logs: OTLP/JSON lines under ./data, flushed on shutdown; secrets masked
    traces = (tmp_path / "data" / "traces.jsonl").read_text()
    assert traces.count('"spanId"') == 10
    assert "hunter2" not in traces
    assert (tmp_path / "data" / "logs.jsonl").read_text().count('"logRecords"') >= 1
