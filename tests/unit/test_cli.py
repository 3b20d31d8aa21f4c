"""The command line as a user meets it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agent import __version__


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, timeout=60)


def test_version() -> None:
    out = _run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"otel-sidecar {__version__}"


def test_components_lists_kinds() -> None:
    out = _run("components")
    assert out.returncode == 0
    for line in ("receivers:", "  otlp", "processors:", "  batch", "  memory_limiter", "exporters:", "  file",
                 "  debug", "connectors:", "  forward", "extensions:", "  health_check"):
        assert line in out.stdout


def test_validate_default_and_overrides(tmp_path: Path) -> None:
    assert _run("validate").returncode == 0
    out = _run("validate", "--set", "processors.batch.timeout=soon")
    assert out.returncode == 1
    assert "processors.batch.timeout: invalid duration 'soon'" in out.stderr


def test_validate_merges_files(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("receivers: {otlp: {protocols: {grpc: null}}}\nexporters: {debug: {}}\n")
    pipes = tmp_path / "pipes.yaml"
    pipes.write_text("service: {pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}\n")
    assert _run("validate", "--config", str(base)).returncode == 1
    out = _run("validate", "--config", str(base), "--config", str(pipes))
    assert out.returncode == 0, out.stderr
    assert _run("--config", str(base), "--config", str(pipes), "validate").returncode == 0
