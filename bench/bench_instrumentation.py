"""Instrumentation overhead: the example backend with and without the otel-sidecar distro, same run, same traffic.

Two modes, each a fresh backend (``deploy/example-backend``, SQLite in a temp dir) on a free
loopback port:

* ``plain``: ``uvicorn auth_api.main:app``, no OpenTelemetry variables;
* ``instrumented``: ``opentelemetry-instrument uvicorn auth_api.main:app`` with
  ``OTEL_PYTHON_DISTRO=sidecar OTEL_PYTHON_CONFIGURATOR=sidecar``, exporting OTLP/gRPC to an
  otel-sidecar running its embedded default config (memory_limiter, redaction, batch; traces and
  logs to files, metrics served for Prometheus). Distro and SDK defaults (export intervals
  included) are left as they are in production.

Each mode: register and log in a pool of users, a warm-up of the mix, a pause so the warm-up's
telemetry is exported, then the measured run: ``--requests`` requests at ``--concurrency`` in
flight, the same seeded sequence in both modes, drawn from every endpoint except ``/slow``
(registrations, logins good and bad, ``/users/me``, cached profiles, the N+1 listing,
``/healthz``). Latency is measured by the client (p50/p99 over all requests). CPU is the
backend process's user+system time from the start of the measured run to its exit after SIGTERM,
so the exporters' work for the measured requests (including the final flush) is counted; it is
reported per 1000 requests. The sidecar's CPU over the instrumented run is reported too.

The backend is pinned to CPU 0; this process (the load) and the sidecar to CPU 1, when the machine
has 2+ cores. Everything is bounded (request counts, timeouts) and stays on 127.0.0.1.

Usage: .venv/bin/python bench/bench_instrumentation.py [--requests 2000] [--concurrency 4] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import bench_core

from tests.example_backend import BACKEND_DIR, BIN_DIR, ROOT, clean_environment
from tests.ports import free_port

#: The measured mix (every endpoint but /slow) and its weights.
MIX = {"register": 4, "login": 12, "login_failed": 8, "me": 26, "cached": 34, "n_plus_one": 8, "healthz": 8}
POOL_USERS = 20
PASSWORD = "bench-password-1"


@dataclass
class ModeResult:
    mode: str
    requests: int
    seconds: float
    cpu: float
    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    sidecar_cpu: float | None = None
    #: Items the sidecar received over the whole mode (setup, warm-up, measured run) and requests sent in it.
    exported: dict[str, float] = field(default_factory=dict)
    sent: int = 0

    def all_latencies(self) -> list[float]:
        return sorted(x for values in self.latencies.values() for x in values)

    def percentile(self, fraction: float, values: list[float] | None = None) -> float:
        ordered = sorted(values) if values is not None else self.all_latencies()
        return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]

    @property
    def cpu_per_1000(self) -> float:
        return self.cpu / self.requests * 1000


class Backend:
    """The example backend as a subprocess pinned to CPU 0; CPU time measured up to its exit."""

    def __init__(self, workdir: Path, instrumented: bool, otlp_endpoint: str, scrypt_log2n: int) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = clean_environment()
        env.update({
            "DATABASE_URL": f"sqlite:///{workdir / 'auth_api.db'}",
            "AUTH_TOKEN_SECRET": "bench-secret",
            "PASSWORD_HASH_LOG2_N": str(scrypt_log2n),
            "CACHE_TTL_SECONDS": "2",
            "PYTHONUNBUFFERED": "1",
        })
        command = ["uvicorn", "auth_api.main:app", "--host", "127.0.0.1", "--port", str(self.port)]
        if instrumented:
            env.update({
                "OTEL_PYTHON_DISTRO": "sidecar",
                "OTEL_PYTHON_CONFIGURATOR": "sidecar",
                "OTEL_SERVICE_NAME": "auth-api",
                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
            })
            command = [str(BIN_DIR / "opentelemetry-instrument"), *command]
        else:
            command[0] = str(BIN_DIR / "uvicorn")
        self.stdout = (workdir / "stdout.log").open("wb")
        self.stderr = (workdir / "stderr.log").open("wb")
        self.proc = subprocess.Popen(command, cwd=BACKEND_DIR, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.stdout, stderr=self.stderr)
        bench_core.pin(self.proc.pid, 0)
        self.psutil = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"backend exited with {self.proc.returncode}: {(workdir / 'stderr.log').read_text()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit("backend did not start")
            time.sleep(0.1)

    def cpu(self) -> float:
        t = self.psutil.cpu_times()
        return float(t.user + t.system)

    def stop(self) -> float:
        """SIGTERM, wait; return the process's total CPU seconds (from the kernel's rusage)."""
        cpu = 0.0
        try:
            if self.proc.returncode is None:
                self.proc.send_signal(signal.SIGTERM)
                deadline = time.monotonic() + 30
                while True:
                    pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
                    if pid:
                        self.proc.returncode = os.waitstatus_to_exitcode(status)
                        cpu = usage.ru_utime + usage.ru_stime
                        break
                    if time.monotonic() > deadline:
                        self.proc.kill()
                        _, status, usage = os.wait4(self.proc.pid, 0)
                        self.proc.returncode = os.waitstatus_to_exitcode(status)
                        cpu = usage.ru_utime + usage.ru_stime
                        break
                    time.sleep(0.02)
        finally:
            self.stdout.close()
            self.stderr.close()
        return cpu


def plan(seed: int, n: int) -> list[str]:
    """The operation sequence (identical for both modes)."""
    rng = random.Random(seed)
    names = list(MIX)
    return rng.choices(names, [MIX[name] for name in names], k=n)


class Load:
    """Sends a planned sequence of operations with a fixed number in flight."""

    def __init__(self, client: httpx.AsyncClient, seed: int) -> None:
        self.client = client
        self.rng = random.Random(seed)
        self.users: list[tuple[str, int]] = []  # (email, id)
        self.tokens: list[str] = []
        self.registered = 0

    async def setup(self, tag: str) -> None:
        for i in range(POOL_USERS):
            email = f"pool-{tag}-{i}@example.test"
            r = await self.client.post("/register", json={"email": email, "password": PASSWORD, "full_name": "P"})
            r.raise_for_status()
            self.users.append((email, r.json()["id"]))
            r = await self.client.post("/login", json={"email": email, "password": PASSWORD})
            r.raise_for_status()
            self.tokens.append(r.json()["access_token"])

    async def one(self, op: str) -> int:
        c = self.client
        if op == "register":
            self.registered += 1
            email = f"new-{self.registered}-{self.rng.random():.12f}@example.test"
            r = await c.post("/register", json={"email": email, "password": PASSWORD, "full_name": "New User"})
        elif op == "login":
            r = await c.post("/login", json={"email": self.rng.choice(self.users)[0], "password": PASSWORD})
        elif op == "login_failed":
            r = await c.post("/login", json={"email": self.rng.choice(self.users)[0], "password": "wrong-password"})
        elif op == "me":
            r = await c.get("/users/me", headers={"Authorization": f"Bearer {self.rng.choice(self.tokens)}"})
        elif op == "cached":
            r = await c.get(f"/users/{self.rng.choice(self.users)[1]}/cached")
        elif op == "n_plus_one":
            r = await c.get("/users/posts-n-plus-one")
        else:
            r = await c.get("/healthz")
        return r.status_code

    async def run(self, ops: list[str], concurrency: int,
                  latencies: dict[str, list[float]] | None = None, statuses: Counter[int] | None = None) -> None:
        it = iter(ops)

        async def worker() -> None:
            for op in it:
                t0 = time.perf_counter()
                status = await self.one(op)
                elapsed = time.perf_counter() - t0
                if latencies is not None:
                    latencies[op].append(elapsed)
                if statuses is not None:
                    statuses[status] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def self_metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def run_mode(mode: str, tmp: Path, args: argparse.Namespace, sidecar: dict[str, int],
             sidecar_proc: psutil.Process) -> ModeResult:
    workdir = tmp / f"{mode}-{time.monotonic_ns()}"
    workdir.mkdir()
    backend = Backend(workdir, mode == "instrumented", f"http://127.0.0.1:{sidecar['grpc']}", args.scrypt_log2n)
    ops = plan(args.seed, args.requests)
    warmup = plan(args.seed + 1, args.warmup)
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: Counter[int] = Counter()
    before = {k: self_metric(sidecar["metrics"], f"otelcol_receiver_accepted_{k}_total")
              for k in ("spans", "log_records", "metric_points")}

    async def drive() -> tuple[float, float, float]:
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
        async with httpx.AsyncClient(base_url=backend.base_url, timeout=30, limits=limits) as client:
            load = Load(client, args.seed)
            await load.setup(mode)
            await load.run(warmup, args.concurrency)
            await asyncio.sleep(args.settle)  # let the warm-up's telemetry go out (BSP default delay: 5 s)
            load.rng.seed(args.seed + 2)
            cpu0, sidecar0, t0 = backend.cpu(), sidecar_proc.cpu_times(), time.monotonic()
            await load.run(ops, args.concurrency, latencies, statuses)
            s = sidecar0
            return cpu0, s.user + s.system, time.monotonic() - t0

    try:
        cpu0, sidecar_cpu0, seconds = asyncio.run(drive())
    finally:
        total_cpu = backend.stop()
    result = ModeResult(mode, args.requests, seconds, total_cpu - cpu0, latencies, statuses,
                        sent=2 * POOL_USERS + args.warmup + args.requests)
    if mode == "instrumented":
        time.sleep(1.0)  # the sidecar's batch timeout and file flush
        s = sidecar_proc.cpu_times()
        result.sidecar_cpu = s.user + s.system - sidecar_cpu0
        result.exported = {k: self_metric(sidecar["metrics"], f"otelcol_receiver_accepted_{k}_total") - v
                           for k, v in before.items()}
    unexpected = {s: n for s, n in statuses.items() if s not in (200, 201, 401)}
    if unexpected:
        raise SystemExit(f"{mode}: unexpected statuses {unexpected}")
    return result


def start_sidecar(tmp: Path) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    ports = {k: free_port() for k in ("grpc", "http", "prometheus", "health", "metrics")}
    env = clean_environment()
    env.update({
        "OTEL_SIDECAR_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports['grpc']}",
        "OTEL_SIDECAR_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{ports['http']}",
        "OTEL_SIDECAR_PROMETHEUS_ENDPOINT": f"127.0.0.1:{ports['prometheus']}",
        "OTEL_SIDECAR_HEALTH_ENDPOINT": f"127.0.0.1:{ports['health']}",
        "OTEL_SIDECAR_METRICS_ENDPOINT": f"127.0.0.1:{ports['metrics']}",
        "OTEL_SIDECAR_DATA_DIR": str(tmp / "sidecar-data"),
        "OTEL_SIDECAR_LOG_LEVEL": "warn",
    })
    proc = subprocess.Popen([sys.executable, "-m", "agent"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bench_core.pin(proc.pid, 1)
    bench_core.wait_port(ports["grpc"], proc)
    bench_core.wait_port(ports["metrics"], proc)
    return proc, ports


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000, help="measured requests per mode (default 2000)")
    ap.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    ap.add_argument("--warmup", type=int, default=300, help="warm-up requests per mode (default 300)")
    ap.add_argument("--settle", type=float, default=6.0, help="seconds between warm-up and measurement (default 6)")
    ap.add_argument("--rounds", type=int, default=1, help="plain/instrumented pairs, alternating (default 1)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--scrypt-log2n", type=int, default=10,
                    help="PASSWORD_HASH_LOG2_N of the backend (default 10; the service default 14 makes "
                         "registrations and logins cost ~50 ms of CPU each and hides everything else)")
    args = ap.parse_args()
    if args.requests < 1 or args.concurrency < 1 or args.rounds < 1:
        ap.error("--requests, --concurrency and --rounds must be at least 1")
    bench_core.pin(0, 1)
    results: list[ModeResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-instr-") as tmp_name:
        tmp = Path(tmp_name)
        sidecar, ports = start_sidecar(tmp)
        try:
            sidecar_ps = psutil.Process(sidecar.pid)
            for round_no in range(args.rounds):
                order = ("plain", "instrumented") if round_no % 2 == 0 else ("instrumented", "plain")
                for mode in order:
                    print(f"round {round_no + 1}: {mode}...", file=sys.stderr, flush=True)
                    results.append(run_mode(mode, tmp, args, ports, sidecar_ps))
        finally:
            sidecar.terminate()
            sidecar.wait(30)
    report(results, args)


def report(results: list[ModeResult], args: argparse.Namespace) -> None:
    by_mode: dict[str, list[ModeResult]] = defaultdict(list)
    for r in results:
        by_mode[r.mode].append(r)
    mix = ", ".join(f"{k} {v}%" for k, v in MIX.items())
    print(f"example backend (SQLite, scrypt log2 N={args.scrypt_log2n}): {args.requests} requests per mode and round, "
          f"{args.concurrency} in flight, {args.rounds} round(s); mix: {mix}")
    print("backend pinned to CPU 0; load generator and sidecar to CPU 1; CPU = backend user+system, "
          "measured run start to exit (final flush included)")
    print(f"{'mode':14} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU s/1000 req':>15}")
    summary: dict[str, tuple[float, float, float, float]] = {}
    for mode in ("plain", "instrumented"):
        rs = by_mode[mode]
        lat = sorted(x for r in rs for x in r.all_latencies())
        p50 = rs[0].percentile(0.5, lat) * 1000
        p99 = rs[0].percentile(0.99, lat) * 1000
        rate = sum(r.requests for r in rs) / sum(r.seconds for r in rs)
        cpu = sum(r.cpu for r in rs) / sum(r.requests for r in rs) * 1000
        summary[mode] = (rate, p50, p99, cpu)
        print(f"{mode:14} {rate:8.1f} {p50:8.2f} {p99:8.2f} {cpu:15.3f}")
    if args.rounds > 1:
        for i, r in enumerate(results):
            print(f"  {r.mode} #{i // 2 + 1}: {r.requests / r.seconds:.1f} req/s, p50 {r.percentile(0.5) * 1000:.2f} ms, "
                  f"p99 {r.percentile(0.99) * 1000:.2f} ms, {r.cpu_per_1000:.3f} CPU s/1000 req")
    (r0, p50_0, p99_0, c0), (r1, p50_1, p99_1, c1) = summary["plain"], summary["instrumented"]
    print(f"{'ratio':14} {r1 / r0:7.2f}x {p50_1 / p50_0:7.2f}x {p99_1 / p99_0:7.2f}x {c1 / c0:14.2f}x   "
          "(instrumented / plain)")
    print("p50 ms per endpoint (plain -> instrumented):")
    for op in MIX:
        plain = [x for r in by_mode["plain"] for x in r.latencies.get(op, [])]
        instr = [x for r in by_mode["instrumented"] for x in r.latencies.get(op, [])]
        if plain and instr:
            a = by_mode["plain"][0].percentile(0.5, plain) * 1000
            b = by_mode["instrumented"][0].percentile(0.5, instr) * 1000
            print(f"  {op:14} {a:7.2f} -> {b:7.2f}  ({b / a:.2f}x, n={len(instr)})")
    instr = by_mode["instrumented"]
    requests = sum(r.requests for r in instr)
    sidecar_cpu = sum(r.sidecar_cpu or 0.0 for r in instr)
    sent = sum(r.sent for r in instr)
    exported = Counter[str]()
    for r in instr:
        exported.update(r.exported)
    print(f"sidecar: {sidecar_cpu / requests * 1000:.3f} CPU s/1000 measured requests; received per request "
          "(setup and warm-up included): " + ", ".join(f"{v / sent:.1f} {k.replace('_', ' ')}"
                                                       for k, v in exported.items()))


if __name__ == "__main__":
    main()
