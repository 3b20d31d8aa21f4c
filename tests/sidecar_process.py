"""Run otel-sidecar as a subprocess (``python -m agent --config <file>``), as in production.

:class:`SidecarProcess` writes the config, starts the agent from the repository root (so the
working tree's ``agent`` runs), waits until its ``health_check`` endpoint answers 200 and, on
exit, sends SIGTERM (receivers stop, queues drain) and waits for the exit status. Output goes
to files (``sidecar.stdout``/``sidecar.stderr`` in the work directory), never to pipes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from tests.example_backend import ROOT, clean_environment


class SidecarProcess:
    """``python -m agent --config <workdir>/sidecar.yaml``; use as a context manager.

    Args:
        workdir: Where the config and the output files go.
        config: The YAML config; it must enable ``health_check`` on ``health_url``'s port.
        health_url: The health endpoint polled at start (``http://127.0.0.1:<port>/``).
        start_timeout: Seconds to wait for the health endpoint.
    """

    def __init__(self, workdir: Path, config: str, health_url: str, start_timeout: float = 30.0) -> None:
        self.workdir = workdir
        self.config_path = workdir / "sidecar.yaml"
        self.config = config
        self.health_url = health_url
        self.start_timeout = start_timeout
        self.stdout_path = workdir / "sidecar.stdout"
        self.stderr_path = workdir / "sidecar.stderr"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "agent", "--config", str(self.config_path)]

    def __enter__(self) -> SidecarProcess:
        self.config_path.write_text(self.config)
        env = clean_environment()
        env["PYTHONUNBUFFERED"] = "1"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(self.command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                            stdout=out, stderr=err)
        deadline = time.monotonic() + self.start_timeout
        try:
            with httpx.Client(timeout=1.0) as client:
                while True:
                    if self.process.poll() is not None:
                        raise RuntimeError(f"otel-sidecar exited with {self.process.returncode}:\n{self.stderr()}")
                    try:
                        if client.get(self.health_url).status_code == 200:
                            return self
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"otel-sidecar not healthy within {self.start_timeout}s:\n{self.stderr()}")
                    time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM the agent and wait (SIGKILL after ``timeout``); return its exit status."""
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

    def stderr(self) -> str:
        """Everything the agent wrote to stderr so far (its JSON log lines)."""
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def stdout(self) -> str:
        """Everything the agent wrote to stdout so far."""
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""
