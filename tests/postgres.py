"""A throwaway PostgreSQL cluster for tests (Debian package ``postgresql``).

:class:`PostgresCluster` runs ``initdb`` in a fresh temporary directory, starts the server with
``pg_ctl`` on a free ``127.0.0.1`` port (its unix socket in the same directory, trust
authentication, durability off for speed), creates one database, and on exit stops the server
and removes the directory.

``initdb`` refuses to run as root, so as root (CI) every server command runs as the ``postgres``
OS user (created by the Debian package) through ``runuser`` (or ``su``), and the directory is
owned by that user. The binaries are found in ``PG_BINDIR`` or the newest
``/usr/lib/postgresql/<version>/bin``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from tests.ports import free_port

SERVER_BINARIES = ("initdb", "pg_ctl", "postgres", "createdb")


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl``, ``postgres`` and ``createdb``, or ``None``."""
    candidates = [os.environ["PG_BINDIR"]] if os.environ.get("PG_BINDIR") else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for candidate in candidates:
        path = Path(candidate)
        if all(os.access(path / name, os.X_OK) for name in SERVER_BINARIES):
            return path
    return None


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


class PostgresCluster:
    """A PostgreSQL server in a temporary directory; use as a context manager.

    Args:
        bin_dir: The server binaries' directory (see :func:`find_bin_dir`).
        database: The database created at start.
        user: The superuser (no password: trust authentication on loopback).
        timeout: Seconds allowed for each server command.
    """

    def __init__(self, bin_dir: Path, database: str = "auth_api", user: str = "postgres",
                 timeout: float = 60.0) -> None:
        self.bin_dir = bin_dir
        self.database = database
        self.user = user
        self.timeout = timeout
        self.port = 0
        self.dir: Path | None = None
        self._prefix: list[str] = []
        self._started = False

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the database (psycopg 3)."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{self.database}"

    @property
    def data_dir(self) -> Path:
        assert self.dir is not None
        return self.dir / "data"

    @property
    def log_path(self) -> Path:
        assert self.dir is not None
        return self.dir / "server.log"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [*self._prefix, *args] if not self._prefix or self._prefix[0] != "su" else [
            *self._prefix, shlex.join(args)]
        result = subprocess.run(command, cwd=self.dir, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=self.timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{shlex.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
                               f"{self.log_tail()}")
        return result

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the server log ("" before it exists)."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except (OSError, AssertionError):
            return ""

    def __enter__(self) -> PostgresCluster:
        self.dir = Path(tempfile.mkdtemp(prefix="otel-sidecar-pg-"))  # short: the socket path must fit 107 bytes
        try:
            if os.geteuid() == 0:
                try:
                    owner = pwd.getpwnam("postgres")
                except KeyError:
                    raise RuntimeError("running as root, PostgreSQL needs the 'postgres' OS user "
                                       "(created by the Debian package 'postgresql')") from None
                os.chown(self.dir, owner.pw_uid, owner.pw_gid)
                runuser = shutil.which("runuser")
                self._prefix = [runuser, "-u", "postgres", "--"] if runuser else ["su", "postgres", "-s", "/bin/sh",
                                                                                   "-c"]
            bin_dir = self.bin_dir
            self._run(str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", self.user, "-A", "trust",
                      "-E", "UTF8", "--no-sync", "--no-instructions")
            self.port = free_port()
            options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off")
            self._started = True
            self._run(str(bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_path), "-w",
                      "-t", str(int(self.timeout)), "-o", options, "start")
            self._run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
                      self.database)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server (fast shutdown, SIGKILL as a last resort) and remove the directory."""
        if self.dir is None:
            return
        try:
            if self._started:
                self._started = False
                try:
                    self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w",
                              "-t", "30", "stop")
                except (RuntimeError, subprocess.TimeoutExpired):
                    self._kill_postmaster()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def _kill_postmaster(self) -> None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
