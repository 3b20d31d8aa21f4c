"""The real SDK exporters send all three signals through a running service
(otlp receiver -> memory_limiter -> batch -> file exporter); the item counts
match at the file exporter and in the self-metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.config.loader import load
from agent.config.model import build
from agent.service import Service
from tests import sdk
from tests.helpers import eventually

pytestmark = pytest.mark.integration


def _config(tmp: Path, ports: dict[str, int]) -> list[str]:
    return [
        f"""yaml:
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{ports['grpc']}"}}
      http: {{endpoint: "127.0.0.1:{ports['http']}"}}
processors:
  memory_limiter: {{check_interval: 1s, limit_mib: 4000, spike_limit_mib: 500}}
  batch: {{timeout: 50ms}}
exporters:
  file/traces: {{path: "{tmp}/traces.jsonl", flush_interval: 50ms}}
  file/metrics: {{path: "{tmp}/metrics.jsonl", flush_interval: 50ms}}
  file/logs: {{path: "{tmp}/logs.jsonl", flush_interval: 50ms}}
extensions:
  health_check: {{endpoint: "127.0.0.1:{ports['health']}"}}
service:
  extensions: [health_check]
  telemetry: {{metrics: {{address: "127.0.0.1:{ports['metrics']}"}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [memory_limiter, batch], exporters: [file/traces]}}
    metrics: {{receivers: [otlp], processors: [memory_limiter, batch], exporters: [file/metrics]}}
    logs: {{receivers: [otlp], processors: [memory_limiter, batch], exporters: [file/logs]}}
"""
    ]


@pytest.fixture
async def running(tmp_path: Path, free_port: Callable[[], int]) -> AsyncIterator[tuple[Service, dict[str, int]]]:
    ports = {k: free_port() for k in ("grpc", "http", "health", "metrics")}
    svc = Service(build(load(_config(tmp_path, ports), env={})), data_dir=str(tmp_path))
    await svc.start()
    try:
        yield svc, ports
    finally:
        await svc.shutdown()


def _file_items(path: Path, key: str) -> list[dict[str, Any]]:
    """Every item (span, data point, log record) in an OTLP/JSON lines file."""
    items: list[dict[str, Any]] = []
    if not path.exists():
        return items
    for line in path.read_text().splitlines():
        req = json.loads(line)
        for res in req[{"spans": "resourceSpans", "points": "resourceMetrics", "logs": "resourceLogs"}[key]]:
            for scope in res.get({"spans": "scopeSpans", "points": "scopeMetrics", "logs": "scopeLogs"}[key], []):
                if key == "spans":
                    items.extend(scope.get("spans", []))
                elif key == "logs":
                    items.extend(scope.get("logRecords", []))
                else:
                    for m in scope.get("metrics", []):
                        for kind in ("sum", "gauge", "histogram"):
                            items.extend(m.get(kind, {}).get("dataPoints", []))
    return items


@pytest.mark.parametrize("protocol", ["grpc", "http"])
async def test_sdk_signals_reach_file_exporter(
    running: tuple[Service, dict[str, int]], tmp_path: Path, protocol: sdk.Protocol
) -> None:
    svc, ports = running
    endpoint = f"127.0.0.1:{ports['grpc']}" if protocol == "grpc" else f"http://127.0.0.1:{ports['http']}"
    await asyncio.to_thread(sdk.send_spans, protocol, endpoint, 300)
    await asyncio.to_thread(sdk.send_metrics, protocol, endpoint, 7)
    await asyncio.to_thread(sdk.send_logs, protocol, endpoint, 120)

    await eventually(lambda: len(_file_items(tmp_path / "traces.jsonl", "spans")) == 300, 10.0)
    await eventually(lambda: len(_file_items(tmp_path / "metrics.jsonl", "points")) == 7, 10.0)
    await eventually(lambda: len(_file_items(tmp_path / "logs.jsonl", "logs")) == 120, 10.0)

    spans = _file_items(tmp_path / "traces.jsonl", "spans")
    assert sorted(s["name"] for s in spans) == sorted(f"op-{i}" for i in range(300))
    assert all(len(s["traceId"]) == 32 and len(s["spanId"]) == 16 for s in spans)  # hex, as OTLP/JSON says
    logs = _file_items(tmp_path / "logs.jsonl", "logs")
    assert sorted(r["body"]["stringValue"] for r in logs) == sorted(f"record {i}" for i in range(120))

    t = svc.telemetry
    labels = {"receiver": "otlp", "transport": protocol}
    assert t.value("otelcol_receiver_accepted_spans_total", labels) == 300
    assert t.value("otelcol_receiver_accepted_metric_points_total", labels) == 7
    assert t.value("otelcol_receiver_accepted_log_records_total", labels) == 120
    await eventually(lambda: t.value("otelcol_exporter_sent_spans_total", {"exporter": "file/traces"}) == 300, 10.0)
    assert t.value("otelcol_exporter_sent_log_records_total", {"exporter": "file/logs"}) == 120

    # The same counts on the self-metrics endpoint a Prometheus would scrape.
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{ports['metrics']}/metrics")).text
    assert f'otelcol_receiver_accepted_spans_total{{receiver="otlp",transport="{protocol}"}} 300.0' in text
    assert "otelcol_process_memory_rss " in text
    assert 'otelcol_exporter_sent_spans_total{exporter="file/traces"} 300.0' in text


async def test_health_is_ready_while_running(running: tuple[Service, dict[str, int]]) -> None:
    _, ports = running
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{ports['health']}/")
    assert r.status_code == 200
    assert r.json()["status"] == "Server available"
