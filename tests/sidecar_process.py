"""Run otel-sidecar as a subprocess (``python -m agent --config <file>``), as in production.

:class:`SidecarProcess` writes the config, starts the agent from the repository root (so the
working tree's ``agent`` runs), waits until its ``health_check`` endpoint answers 200 and, on
exit, sends SIGTERM (receivers stop, queues drain) and waits for the exit status. Output goes
to files (``sidecar.stdout``/``sidecar.stderr`` in the work directory), never to pipes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.example_backend import ROOT, clean_environment
from tests.processes import ManagedProcess


class SidecarProcess(ManagedProcess):
    """``python -m agent --config <workdir>/sidecar.yaml``; use as a context manager.

    Args:
        workdir: Where the config and the output files go.
        config: The YAML config; it must enable ``health_check`` on ``health_url``'s port.
        health_url: The health endpoint polled at start (``http://127.0.0.1:<port>/``).
        start_timeout: Seconds to wait for the health endpoint.
    """

    name = "otel-sidecar"
    not_ready = "not healthy"
    stop_timeout = 30.0

    def __init__(self, workdir: Path, config: str, health_url: str, start_timeout: float = 30.0) -> None:
        super().__init__(workdir / "sidecar.stdout", workdir / "sidecar.stderr", start_timeout)
        self.workdir = workdir
        self.config_path = workdir / "sidecar.yaml"
        self.config = config
        self.health_url = health_url

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "agent", "--config", str(self.config_path)]

    def __enter__(self) -> SidecarProcess:
        self.config_path.write_text(self.config)
        env = clean_environment()
        env["PYTHONUNBUFFERED"] = "1"
        self._spawn(self.command, ROOT, env, self.health_url)
        return self
