"""Start, readiness and drain: health goes 503 -> 200 -> 503, SIGTERM under
load drains every acknowledged item and exits 0, bad configs fail to start."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx
import pytest

from agent.config.loader import load
from agent.config.model import build
from agent.service import Service
from agent.testing import make_traces

pytestmark = pytest.mark.integration

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _yaml(tmp: Path, ports: dict[str, int], extra_exporter: str = "") -> str:
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{ports['grpc']}"}}
      http: {{endpoint: "127.0.0.1:{ports['http']}"}}
processors:
  batch: {{timeout: 100ms, send_batch_size: 2000}}
exporters:
  file: {{path: "{tmp}/traces.jsonl", flush_interval: 100ms}}
extensions:
  health_check: {{endpoint: "127.0.0.1:{ports['health']}"}}
service:
  extensions: [health_check]
  shutdown_grace: 5s
  telemetry: {{metrics: {{address: "127.0.0.1:{ports['metrics']}"}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [batch], exporters: [file]}}
"""


async def _health(port: int) -> int:
    async with httpx.AsyncClient() as c:
        return (await c.get(f"http://127.0.0.1:{port}/")).status_code


async def test_health_503_while_starting_200_running_503_draining(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    ports = {k: free_port() for k in ("grpc", "http", "health", "metrics")}
    svc = Service(build(load(["yaml:" + _yaml(tmp_path, ports)], env={})))
    gate_start, gate_stop = asyncio.Event(), asyncio.Event()
    real_start, real_shutdown = svc.graph.start, svc.graph.shutdown

    async def slow_start(host: object) -> None:
        await gate_start.wait()
        await real_start(host)  # type: ignore[arg-type]

    async def slow_shutdown() -> None:
        await gate_stop.wait()
        await real_shutdown()

    svc.graph.start = slow_start  # type: ignore[method-assign]
    svc.graph.shutdown = slow_shutdown  # type: ignore[method-assign]
    starting = asyncio.create_task(svc.start())
    for _ in range(100):
        try:
            code = await _health(ports["health"])
            break
        except httpx.ConnectError:
            await asyncio.sleep(0.02)
    assert code == 503  # extensions are up, pipelines are not
    gate_start.set()
    await starting
    assert await _health(ports["health"]) == 200
    stopping = asyncio.create_task(svc.shutdown())
    await asyncio.sleep(0.1)
    assert await _health(ports["health"]) == 503  # draining
    gate_stop.set()
    await stopping


def _spawn(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "--config", str(config), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _wait_health(port: int, proc: subprocess.Popen[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"sidecar exited early: {proc.communicate()[1]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError("sidecar did not become healthy")


def test_sigterm_under_load_drains_and_exits_zero(tmp_path: Path, free_port: Callable[[], int]) -> None:
    ports = {k: free_port() for k in ("grpc", "http", "health", "metrics")}
    cfg = tmp_path / "sidecar.yaml"
    cfg.write_text(_yaml(tmp_path, ports))
    proc = _spawn(cfg)
    try:
        _wait_health(ports["health"], proc)
        acked: list[int] = []
        refused: list[grpc.StatusCode] = []
        stop = threading.Event()

        def load_loop() -> None:
            channel = grpc.insecure_channel(f"127.0.0.1:{ports['grpc']}")
            call = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
            batch = 0
            while not stop.is_set() and batch < 5000:
                body = make_traces(100, batch_index=batch).to_bytes()
                try:
                    call(body, timeout=5)
                    acked.append(batch)
                except grpc.RpcError as e:
                    refused.append(e.code())
                    if e.code() == grpc.StatusCode.UNAVAILABLE and proc.poll() is not None:
                        break
                batch += 1
            channel.close()

        t = threading.Thread(target=load_loop)
        t.start()
        while len(acked) < 30:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
        stop.set()
        t.join(10)
        assert proc.returncode == 0, stderr
        assert "Shutdown complete." in stderr
        # After SIGTERM, new requests were refused with a retryable code, never lost silently.
        assert all(c == grpc.StatusCode.UNAVAILABLE for c in refused), refused
        written: set[tuple[int, int]] = set()
        for line in (tmp_path / "traces.jsonl").read_text().splitlines():
            for rs in json.loads(line)["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    for sp in ss["spans"]:
                        attrs = {a["key"]: int(a["value"]["intValue"]) for a in sp["attributes"]
                                 if a["key"] in ("batch_index", "item_index")}
                        written.add((attrs["batch_index"], attrs["item_index"]))
        expected = {(b, i) for b in acked for i in range(100)}
        assert expected <= written, f"{len(expected - written)} acknowledged spans lost"
        assert len(written) == len(expected)  # nothing unacknowledged was half-written either
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=20)


def test_invalid_config_fails_fast_with_paths(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "receivers: {otlp: {protocols: {grpc: {endpoint: '127.0.0.1:0', bogus: 1}}}}\n"
        "exporters: {file: {}}\n"
        "service: {pipelines: {traces: {receivers: [otlp], exporters: [file, jaeger]}}}\n"
    )
    out = subprocess.run([sys.executable, "-m", "agent", "validate", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "receivers.otlp.protocols.grpc.bogus: unknown key" in out.stderr
    assert "exporters.file.path: required" in out.stderr
    assert "service.pipelines.traces.exporters[1]: references exporter 'jaeger' which is not configured" in out.stderr
    run = subprocess.run([sys.executable, "-m", "agent", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "exporters.file.path: required" in run.stderr


def test_port_in_use_is_a_clear_start_error(tmp_path: Path, free_port: Callable[[], int]) -> None:
    import socket

    ports = {k: free_port() for k in ("grpc", "http", "health", "metrics")}
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", ports["http"]))
    blocker.listen()
    try:
        cfg = tmp_path / "sidecar.yaml"
        cfg.write_text(_yaml(tmp_path, ports))
        out = subprocess.run([sys.executable, "-m", "agent", "--config", str(cfg)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 1
        assert f"127.0.0.1:{ports['http']}" in out.stderr and "in use" in out.stderr
    finally:
        blocker.close()
