"""Traffic generator for the example auth API: a bounded mix of every endpoint.

Usage::

    python traffic.py --base-url http://127.0.0.1:8000 --requests 500 --concurrency 8
    python traffic.py --duration 60                       # as many requests as fit in 60 s

The run stops after ``--requests`` requests or ``--duration`` seconds, whichever comes first
(200 requests when neither is given). It starts with one request to each endpoint, in order, so
every run covers all of them, then picks endpoints at random by weight: registrations (valid and
invalid), successful and failed logins, ``/users/me`` with the token of a login, cached profile
reads (some of unknown ids), the N+1 endpoint, ``/slow`` and ``/healthz``.

Progress goes to stderr: one line rewritten in place on a terminal, plain lines every
``--progress-interval`` seconds otherwise (CI logs, pipes). A per-endpoint summary (count,
status classes, transport errors, p50/p95 latency) goes to stdout at the end. Exit status: 0,
or 1 when every request failed at the transport level (server unreachable).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import IO, Final

import httpx

#: Endpoint operations and their weights in the random mix.
WEIGHTS: Final[dict[str, int]] = {
    "register": 8,
    "register_invalid": 2,
    "login": 14,
    "login_failed": 8,
    "me": 20,
    "cached": 30,
    "n_plus_one": 6,
    "slow": 2,
    "healthz": 10,
}
DEFAULT_REQUESTS: Final = 200
DEMO_USER_IDS: Final = (1, 2, 3)


@dataclass
class EndpointStats:
    """Outcomes of one operation."""

    count: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    def percentile(self, fraction: float) -> float | None:
        """Return a latency percentile in seconds (nearest rank), ``None`` without samples."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


@dataclass
class Stats:
    """Outcomes of a run."""

    started: float = field(default_factory=time.monotonic)
    endpoints: dict[str, EndpointStats] = field(default_factory=dict)

    def record(self, operation: str, status: int | None, latency: float) -> None:
        """Record one request (``status`` ``None`` for a transport error)."""
        stats = self.endpoints.setdefault(operation, EndpointStats())
        stats.count += 1
        stats.latencies.append(latency)
        if status is None:
            stats.errors += 1
        else:
            stats.statuses[status] += 1

    @property
    def total(self) -> int:
        """Requests sent."""
        return sum(s.count for s in self.endpoints.values())

    @property
    def errors(self) -> int:
        """Requests that failed at the transport level."""
        return sum(s.errors for s in self.endpoints.values())

    def by_class(self) -> Counter[str]:
        """Responses by status class (``2xx``, ``4xx``...)."""
        classes: Counter[str] = Counter()
        for stats in self.endpoints.values():
            for status, count in stats.statuses.items():
                classes[f"{status // 100}xx"] += count
        return classes


class Progress:
    """Progress display: an updating line on a terminal, periodic plain lines otherwise.

    Args:
        stream: Where to write (stderr by default).
        total: The request budget, if any.
        duration: The time budget in seconds, if any.
        interval: Seconds between plain lines when ``stream`` is not a terminal.
        tty: Force terminal mode on or off; detected from ``stream`` when ``None``.
    """

    def __init__(
        self,
        stream: IO[str],
        total: int | None,
        duration: float | None,
        interval: float = 2.0,
        tty: bool | None = None,
    ) -> None:
        self.stream = stream
        self.total = total
        self.duration = duration
        self.interval = interval
        self.tty = stream.isatty() if tty is None else tty
        self._last = 0.0

    def line(self, stats: Stats) -> str:
        """Return the progress text for ``stats``."""
        elapsed = max(time.monotonic() - stats.started, 1e-9)
        classes = stats.by_class()
        budget = f"/{self.total}" if self.total is not None else ""
        time_budget = f"/{self.duration:.0f}s" if self.duration is not None else "s"
        return (
            f"requests {stats.total}{budget} | 2xx {classes['2xx']} 4xx {classes['4xx']} 5xx {classes['5xx']} "
            f"errors {stats.errors} | {stats.total / elapsed:.1f} req/s | {elapsed:.1f}{time_budget}"
        )

    def update(self, stats: Stats, *, force: bool = False) -> None:
        """Show progress if enough time passed since the last update (always with ``force``)."""
        now = time.monotonic()
        min_gap = 0.1 if self.tty else self.interval
        if not force and now - self._last < min_gap:
            return
        self._last = now
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.line(stats))
        else:
            self.stream.write(self.line(stats) + "\n")
        self.stream.flush()

    def finish(self, stats: Stats) -> None:
        """Show the final progress line."""
        self.update(stats, force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def summary(stats: Stats) -> str:
    """Return the end-of-run table."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.1f}"

    rows = [f"{'endpoint':<18}{'count':>7}{'2xx':>6}{'4xx':>6}{'5xx':>6}{'err':>6}{'p50 ms':>10}{'p95 ms':>10}"]
    for name in WEIGHTS:
        s = stats.endpoints.get(name)
        if s is None:
            continue
        classes = Counter(f"{code // 100}xx" for code in s.statuses.elements())
        rows.append(
            f"{name:<18}{s.count:>7}{classes['2xx']:>6}{classes['4xx']:>6}{classes['5xx']:>6}{s.errors:>6}"
            f"{ms(s.percentile(0.5)):>10}{ms(s.percentile(0.95)):>10}"
        )
    elapsed = time.monotonic() - stats.started
    rows.append(f"total {stats.total} requests in {elapsed:.1f}s ({stats.total / max(elapsed, 1e-9):.1f} req/s)")
    return "\n".join(rows)


class TrafficGenerator:
    """Drives a bounded, weighted mix of requests against the example API.

    Args:
        client: The HTTP client (its ``base_url`` is the API's).
        requests: Stop after this many requests (``None``: no request limit).
        duration: Stop after this many seconds (``None``: no time limit).
        concurrency: Requests in flight at most.
        seed: Seed of the random mix, for reproducible runs.
        progress: Where to report progress, if anywhere.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        requests: int | None = DEFAULT_REQUESTS,
        duration: float | None = None,
        concurrency: int = 4,
        seed: int | None = None,
        progress: Progress | None = None,
    ) -> None:
        if requests is None and duration is None:
            requests = DEFAULT_REQUESTS
        self.client = client
        self.requests = requests
        self.duration = duration
        self.concurrency = max(1, concurrency)
        self.random = random.Random(seed)
        self.progress = progress
        self.stats = Stats()
        self._issued = 0
        self._deadline: float | None = None
        self._credentials: list[tuple[str, str]] = []
        self._tokens: list[str] = []
        self._user_ids: list[int] = list(DEMO_USER_IDS)
        self._operations: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
            "register": self._register,
            "register_invalid": self._register_invalid,
            "login": self._login,
            "login_failed": self._login_failed,
            "me": self._me,
            "cached": self._cached,
            "n_plus_one": lambda: self.client.get("/users/posts-n-plus-one"),
            "slow": lambda: self.client.get("/slow"),
            "healthz": lambda: self.client.get("/healthz"),
        }

    def _take(self) -> bool:
        """Reserve one request of the budget; ``False`` when the run is over."""
        if self.requests is not None and self._issued >= self.requests:
            return False
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return False
        self._issued += 1
        return True

    async def run(self) -> Stats:
        """Run until a budget is exhausted; return the outcomes."""
        self.stats = Stats()
        if self.duration is not None:
            self._deadline = time.monotonic() + self.duration
        for name in self._operations:  # one of each first: every run covers every endpoint
            if not self._take():
                break
            await self._one(name)
        names = list(WEIGHTS)
        weights = [WEIGHTS[name] for name in names]

        async def worker() -> None:
            while self._take():
                await self._one(self.random.choices(names, weights)[0])

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        if self.progress is not None:
            self.progress.finish(self.stats)
        return self.stats

    def _resolve(self, name: str) -> str:
        """Replace an operation whose prerequisite is missing by the one that provides it."""
        if name == "me" and not self._tokens:
            name = "login"
        if name == "login" and not self._credentials:
            name = "register"
        return name

    async def _one(self, name: str) -> None:
        name = self._resolve(name)
        started = time.monotonic()
        try:
            response = await self._operations[name]()
            status: int | None = response.status_code
        except httpx.HTTPError:
            status = None
        self.stats.record(name, status, time.monotonic() - started)
        if self.progress is not None:
            self.progress.update(self.stats)

    def _new_email(self) -> str:
        return f"user-{secrets.token_hex(6)}@example.test"

    async def _register(self) -> httpx.Response:
        email, password = self._new_email(), secrets.token_urlsafe(12)
        response = await self.client.post(
            "/register", json={"email": email, "password": password, "full_name": "Traffic Generator"}
        )
        if response.status_code == 201:
            self._credentials.append((email, password))
            self._user_ids.append(int(response.json()["id"]))
        return response

    async def _register_invalid(self) -> httpx.Response:
        return await self.client.post("/register", json={"email": "not-an-email", "password": "short"})

    async def _login(self) -> httpx.Response:
        email, password = self.random.choice(self._credentials)
        response = await self.client.post("/login", json={"email": email, "password": password})
        if response.status_code == 200:
            self._tokens.append(response.json()["access_token"])
            del self._tokens[:-50]
        return response

    async def _login_failed(self) -> httpx.Response:
        email = self.random.choice(self._credentials)[0] if self._credentials else self._new_email()
        return await self.client.post("/login", json={"email": email, "password": "wrong-password"})

    async def _me(self) -> httpx.Response:
        token = self.random.choice(self._tokens)
        return await self.client.get("/users/me", headers={"Authorization": f"Bearer {token}"})

    async def _cached(self) -> httpx.Response:
        user_id = (
            self.random.randint(100_000, 999_999) if self.random.random() < 0.1 else self.random.choice(self._user_ids)
        )
        return await self.client.get(f"/users/{user_id}/cached")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description="Drive a bounded mix of requests against the example auth API.")
    parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="the API's base URL")
    parser.add_argument("-n", "--requests", type=int, default=None, help="stop after N requests")
    parser.add_argument("-t", "--duration", type=float, default=None, help="stop after T seconds")
    parser.add_argument("-c", "--concurrency", type=int, default=4, help="requests in flight at most (default 4)")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout in seconds (default 10)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random mix")
    parser.add_argument(
        "--progress-interval", type=float, default=2.0, help="seconds between progress lines when not a terminal"
    )
    args = parser.parse_args(argv)
    if args.requests is not None and args.requests < 1:
        parser.error("--requests must be at least 1")
    if args.duration is not None and args.duration <= 0:
        parser.error("--duration must be positive")
    if args.requests is None and args.duration is None:
        args.requests = DEFAULT_REQUESTS
    return args


async def run(
    args: argparse.Namespace,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    progress_stream: IO[str] | None = None,
    output: IO[str] | None = None,
) -> int:
    """Run the generator for parsed arguments; return the exit status.

    Args:
        args: From :func:`parse_args`.
        transport: An httpx transport (tests pass an ``ASGITransport``).
        progress_stream: Where progress goes; stderr when ``None``.
        output: Where the summary goes; stdout when ``None``.
    """
    progress = Progress(progress_stream or sys.stderr, args.requests, args.duration, interval=args.progress_interval)
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(
        base_url=args.base_url, timeout=args.timeout, limits=limits, transport=transport
    ) as client:
        generator = TrafficGenerator(
            client,
            requests=args.requests,
            duration=args.duration,
            concurrency=args.concurrency,
            seed=args.seed,
            progress=progress,
        )
        stats = await generator.run()
    print(summary(stats), file=output or sys.stdout, flush=True)
    return 1 if stats.total and stats.errors == stats.total else 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
