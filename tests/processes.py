"""Child processes for tests: start with output to files, wait until an HTTP endpoint answers 200, stop.

:class:`ManagedProcess` is the context manager behind :class:`~tests.sidecar_process.SidecarProcess`
and :class:`~tests.example_backend.ExampleBackend`; :func:`wait_until_ok` and :func:`terminate`
also serve :mod:`tests.prom`. Output goes to files, never to pipes, so a chatty child can never
block on a full pipe.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import httpx


def wait_until_ok(proc: subprocess.Popen[bytes], url: str, timeout: float, *, name: str, not_ready: str,
                  details: Callable[[], str], sep: str = ":\n") -> None:
    """Poll ``url`` every 0.1 s until it answers 200.

    Raises:
        RuntimeError: ``proc`` exited (``"<name> exited with <status><sep><details>"``) or ``timeout``
            seconds passed (``"<name> <not_ready> within <timeout>s<sep><details>"``).
    """
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as client:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}{sep}{details()}")
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} {not_ready} within {timeout}s{sep}{details()}")
            time.sleep(0.1)


def terminate(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """SIGTERM ``proc`` if it still runs and wait (SIGKILL after ``timeout``); return its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def read_log(path: Path) -> str:
    """What a child wrote to ``path`` so far (``""`` before the file exists)."""
    return path.read_text(errors="replace") if path.exists() else ""


class ManagedProcess:
    """A child process used as a context manager: entering starts it and waits for its health URL.

    Subclasses set :attr:`name`, :attr:`not_ready`, :attr:`stop_timeout` and implement
    :meth:`_start`, which calls :meth:`_spawn`; leaving sends SIGTERM and waits for the exit.

    Args:
        stdout_path: The file for the child's stdout.
        stderr_path: The file for the child's stderr.
        start_timeout: Seconds to wait for the health URL.
    """

    #: The child's name in error messages.
    name = "process"
    #: What the start timeout error says it did not do (``"not healthy"``...).
    not_ready = "not healthy"
    #: Default seconds :meth:`stop` waits before SIGKILL.
    stop_timeout = 30.0

    def __init__(self, stdout_path: Path, stderr_path: Path, start_timeout: float) -> None:
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None

    def _spawn(self, command: Sequence[str], cwd: Path, env: dict[str, str], health_url: str) -> None:
        """Start ``command`` with its output to the files and wait for ``health_url`` (stop on failure)."""
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                            stdout=out, stderr=err)
        try:
            wait_until_ok(self.process, health_url, self.start_timeout, name=self.name,
                          not_ready=self.not_ready, details=self.stderr)
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

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM the child and wait (SIGKILL after ``timeout``, default :attr:`stop_timeout`); its exit status."""
        if self.process is None:
            return None
        return terminate(self.process, self.stop_timeout if timeout is None else timeout)

    def stdout(self) -> str:
        """Everything the child wrote to stdout so far."""
        return read_log(self.stdout_path)

    def stderr(self) -> str:
        """Everything the child wrote to stderr so far."""
        return read_log(self.stderr_path)
