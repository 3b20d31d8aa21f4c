"""A real Prometheus (Debian package ``prometheus``) for tests: started on a loopback port, queried with PromQL.

:func:`start` writes a config (global ``scrape_interval`` 1 s), starts ``prometheus`` with its
TSDB in the given directory and waits for ``/-/ready``; :func:`stop` terminates it and waits.
Queries go to the HTTP API (``/api/v1/query``): :func:`query` and :func:`eventually` for
synchronous tests, :func:`aquery` and :func:`aeventually` for asyncio tests. Every wait is a poll
with a deadline. ``PROMETHEUS_BIN`` overrides the binary's path.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from tests.processes import terminate, wait_until_ok

PROMETHEUS = os.environ.get("PROMETHEUS_BIN", "/usr/bin/prometheus")

#: An instant-vector result: ``(labels, value)`` per series.
Result = list[tuple[dict[str, str], float]]


def available() -> bool:
    """Whether the Prometheus binary is installed."""
    return os.path.exists(PROMETHEUS) and os.access(PROMETHEUS, os.X_OK)


@dataclass
class PromServer:
    """A running Prometheus: its port, process and log file (stderr)."""

    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def static_scrape(job: str, target: str, labels: dict[str, str] | None = None,
                  honor_labels: bool = True) -> dict[str, Any]:
    """One ``scrape_configs`` entry for a single target (``honor_labels``: the target's job/instance win)."""
    return {"job_name": job, "honor_labels": honor_labels,
            "static_configs": [{"targets": [target], "labels": labels or {}}]}


def start(tmp: Path, name: str, port: int, scrape: list[dict[str, Any]], flags: Sequence[str] = (),
          timeout: float = 30.0, extra_config: dict[str, Any] | None = None) -> PromServer:
    """Start Prometheus ``name`` on ``127.0.0.1:port`` with ``scrape`` configs; return once it is ready.

    Args:
        tmp: Directory for the config (``<name>.yml``), the TSDB (``<name>-data``) and the log (``<name>.log``).
        name: A name unique within ``tmp``.
        port: The web port.
        scrape: ``scrape_configs`` entries (every one scraped each second).
        flags: Extra command-line flags (``--enable-feature=native-histograms``...).
        timeout: Seconds to wait for ``/-/ready``.
        extra_config: More top-level config entries (``rule_files``...).
    """
    cfg = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
           **(extra_config or {}), "scrape_configs": scrape}
    (tmp / f"{name}.yml").write_text(json.dumps(cfg))  # JSON is YAML
    log = tmp / f"{name}.log"
    with log.open("wb") as err:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={tmp / f'{name}.yml'}", f"--storage.tsdb.path={tmp / f'{name}-data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn", *flags],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    server = PromServer(port, proc, log)
    try:
        wait_until_ok(proc, f"{server.url}/-/ready", timeout, name=f"prometheus {name}", not_ready="not ready",
                      details=server.log_tail, sep=": ")
    except BaseException:
        stop(server)
        raise
    return server


def stop(server: PromServer, timeout: float = 15.0) -> None:
    """Terminate Prometheus and wait for it (SIGKILL after ``timeout`` seconds)."""
    terminate(server.proc, timeout)


def _parse(body: dict[str, Any]) -> Result:
    assert body["status"] == "success", body
    return [(item["metric"], float(item["value"][1])) for item in body["data"]["result"] if "value" in item]


def query(server: PromServer, promql: str) -> Result:
    """Evaluate an instant PromQL query now."""
    response = httpx.get(f"{server.url}/api/v1/query", params={"query": promql}, timeout=10.0)
    return _parse(response.json())


def eventually(server: PromServer, promql: str, check: Callable[[Result], bool], timeout: float = 30.0) -> Result:
    """Poll ``promql`` until its (non-empty) result satisfies ``check``; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    result: Result = []
    while time.monotonic() < deadline:
        result = query(server, promql)
        if result and check(result):
            return result
        time.sleep(0.25)
    raise AssertionError(f"{promql!r} never satisfied the check; last result: {result}")


async def aquery(server: PromServer, promql: str) -> Result:
    """:func:`query` for asyncio tests."""
    async with aiohttp.ClientSession() as session, session.get(f"{server.url}/api/v1/query",
                                                               params={"query": promql}) as r:
        body = await r.json()
    return _parse(body)


async def aeventually(server: PromServer, promql: str, check: Callable[[Result], bool],
                      timeout: float = 30.0) -> Result:
    """:func:`eventually` for asyncio tests."""
    deadline = time.monotonic() + timeout
    result: Result = []
    while time.monotonic() < deadline:
        result = await aquery(server, promql)
        if result and check(result):
            return result
        await asyncio.sleep(0.25)
    raise AssertionError(f"{promql!r} never satisfied the check; last result: {result}")


def values(result: Result, key: str) -> dict[str, float]:
    """``{labels[key]: value}`` of a result (``""`` when the label is absent)."""
    return {labels.get(key, ""): v for labels, v in result}


def only(result: Result) -> float:
    """The value of a single-series result (AssertionError otherwise)."""
    assert len(result) == 1, result
    return result[0][1]
