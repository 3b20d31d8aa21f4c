"""Run the example backend (``deploy/example-backend``) as a subprocess under ``opentelemetry-instrument``.

The same runner serves the instrumentation integration test (pointed at an in-test collector
double) and end-to-end tests (pointed at a real otel-sidecar): only ``otlp_endpoint`` differs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from tests.ports import free_port as _free_port

ROOT = Path(__file__).resolve().parents[1]
BACKEND_DIR = ROOT / "deploy" / "example-backend"
BIN_DIR = Path(sys.executable).parent




def clean_environment() -> dict[str, str]:
    """The current environment without ``OTEL_*`` variables, with this venv's ``bin`` first on ``PATH``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PATH"] = f"{BIN_DIR}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    return env


class ExampleBackend:
    """``opentelemetry-instrument uvicorn auth_api.main:app`` with the sidecar distro and configurator.

    Output goes to ``stdout.log``/``stderr.log`` in ``workdir`` (files, not pipes, so a chatty
    server can never block on a full pipe). Use as a context manager: entering starts the
    server and waits until ``/healthz`` answers; leaving sends SIGTERM (a graceful uvicorn
    shutdown, after which the SDK flushes) and waits for the exit.

    Args:
        workdir: A directory for the SQLite database and the output files.
        otlp_endpoint: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (gRPC), e.g. ``http://127.0.0.1:4317``.
        extra_env: More environment variables (they win over the defaults below).
        start_timeout: Seconds to wait for ``/healthz``.
    """

    def __init__(
        self,
        workdir: Path,
        otlp_endpoint: str,
        extra_env: dict[str, str] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.workdir = workdir
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.stdout_path = workdir / "stdout.log"
        self.stderr_path = workdir / "stderr.log"
        self.start_timeout = start_timeout
        self.env = clean_environment()
        self.env.update(
            {
                "OTEL_PYTHON_DISTRO": "sidecar",
                "OTEL_PYTHON_CONFIGURATOR": "sidecar",
                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
                "OTEL_SERVICE_NAME": "auth-api",
                "OTEL_BSP_SCHEDULE_DELAY": "200",
                "OTEL_BLRP_SCHEDULE_DELAY": "200",
                "OTEL_METRIC_EXPORT_INTERVAL": "500",
                "DATABASE_URL": f"sqlite:///{workdir / 'auth_api.db'}",
                "AUTH_TOKEN_SECRET": "integration-test-secret",
                "PASSWORD_HASH_LOG2_N": "10",
                "SLOW_SECONDS": "0.05",
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.env.update(extra_env or {})
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        """The command line that starts the backend."""
        return [
            str(BIN_DIR / "opentelemetry-instrument"),
            "uvicorn",
            "auth_api.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]

    def __enter__(self) -> ExampleBackend:
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(self.command, cwd=BACKEND_DIR, env=self.env, stdout=out, stderr=err)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"backend exited with {self.process.returncode}:\n{self.stderr()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"backend did not answer /healthz within {self.start_timeout}s:\n{self.stderr()}")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM the server and wait (SIGKILL after ``timeout``); return its exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode

    def stdout(self) -> str:
        """Everything the server wrote to stdout so far."""
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        """Everything the server wrote to stderr so far."""
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
