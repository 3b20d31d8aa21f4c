"""Run the example backend (``deploy/example-backend``) as a subprocess under ``opentelemetry-instrument``.

The same runner serves the instrumentation integration test (pointed at an in-test collector
double) and end-to-end tests (pointed at a real otel-sidecar): only ``otlp_endpoint`` differs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.ports import free_port as _free_port
from tests.processes import ManagedProcess

ROOT = Path(__file__).resolve().parents[1]
BACKEND_DIR = ROOT / "deploy" / "example-backend"
BIN_DIR = Path(sys.executable).parent


def clean_environment() -> dict[str, str]:
    """The current environment without ``OTEL_*`` variables, with this venv's ``bin`` first on ``PATH``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PATH"] = f"{BIN_DIR}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    return env


class ExampleBackend(ManagedProcess):
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

    name = "backend"
    not_ready = "did not answer /healthz"
    stop_timeout = 20.0

    def __init__(
        self,
        workdir: Path,
        otlp_endpoint: str,
        extra_env: dict[str, str] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        super().__init__(workdir / "stdout.log", workdir / "stderr.log", start_timeout)
        self.workdir = workdir
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
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
        self._spawn(self.command, BACKEND_DIR, self.env, f"{self.base_url}/healthz")
        return self
