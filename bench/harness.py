"""The system under test for benchmarks: a fresh database, its own topics, real processes."""

import base64
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
from sqlalchemy import Engine, create_engine, text

from core.db import drop_database, make_engine
from core.migrate import upgrade
from core.settings import Settings, free_port, isolated, to_env

ROOT = Path(__file__).resolve().parent.parent


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


def bench_settings(http_workers: int) -> Settings:
    base = Settings()
    url = urlunsplit(urlsplit(base.database_url)._replace(path="/provisioner_bench"))
    return isolated(
        base, f"bench-{uuid.uuid4().hex[:6]}", url, http_workers=http_workers, log_level="WARNING",
        billing_verify_interval_seconds=0, scim_rate_limit_per_second=0,  # capacity, not the per-org limit
        # the billing worker's reconcile of every org runs 5 s after each start, and the bench starts
        # the pipeline on purpose behind a backlog: it read every org's users during the drain
        reconcile_interval_seconds=0,
        caep_push_url=f"http://127.0.0.1:{free_port()}/caep/events",  # bench/signals.py's receiver
    )


def fresh_database(settings: Settings) -> Engine:
    parts = urlsplit(settings.database_url)
    name = parts.path.lstrip("/")
    admin = create_engine(
        urlunsplit(parts._replace(path="/postgres")).replace("postgresql://", "postgresql+psycopg2://", 1),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        drop_database(conn, name)
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    upgrade(settings)
    return make_engine(settings, pool_size=4)


def fresh_system(http_workers: int = 2) -> tuple[Settings, Engine, "System"]:
    """A run's own settings, its fresh database and topics, and its processes (none started yet)."""
    settings = bench_settings(http_workers=http_workers)
    engine = fresh_database(settings)
    from events.kafka import ensure_topics

    ensure_topics(settings)
    return settings, engine, System(settings)


@dataclass
class System:
    settings: Settings
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start_ingest(self) -> None:
        self.start("ingest", "serve")
        wait_http(self.settings.public_url + "/readyz")

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **to_env(self.settings)}

    def start(self, name: str, *args: str) -> None:
        self.children[name] = subprocess.Popen(
            [sys.executable, "-m", "cli", *args], env=self.env, stdout=subprocess.DEVNULL
        )

    def start_pipeline(self) -> None:
        self.start("relay", "relay")
        for worker in ("membership", "billing", "conflicts", "signals"):
            self.start(worker, "worker", worker)
        for port in (self.settings.metrics_port_relay, self.settings.metrics_port_membership, self.settings.metrics_port_billing):
            wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)

    def stop(self, *names: str) -> None:
        for name in names or list(self.children):
            proc = self.children.pop(name, None)
            if proc and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()


def start_reference(port: int, users: int = 0) -> subprocess.Popen[bytes]:
    """The reference in-memory scim2-server, served by the same uvicorn as ours (one process),
    holding `users` seeded users (bench/reference.py)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.reference:app", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "BENCH_REFERENCE_USERS": str(users)},
    )
    wait_http(f"http://127.0.0.1:{port}/ServiceProviderConfig", timeout=30 + users / 1000)
    return proc


@dataclass
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * _UNITS[unit]


def _wrk_args(url: str, script: str, connections: int, seconds: int, threads: int) -> list[str]:
    return ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency",
            "-s", str(ROOT / "bench" / "wrk" / script), url]


def wrk(
    url: str, script: str, *, connections: int, seconds: int, threads: int = 2, env: dict[str, str] | None = None
) -> WrkResult:
    """Run wrk (C, event-driven: it leaves the CPU to the system under test) and parse its report."""
    threads = min(threads, connections)
    out = subprocess.run(
        _wrk_args(url, script, connections, seconds, threads),
        env={**os.environ, **(env or {}), "BENCH_THREADS": str(threads)},
        capture_output=True, text=True, check=True,
    ).stdout
    return _parse_wrk(out)


def wrk_until(
    url: str, script: str, *, connections: int, stored: Callable[[], int], target: int,
    env: dict[str, str] | None = None, timeout: float = 3600, stall_seconds: float = 120,
) -> WrkResult:
    """Run a wrk script that works through a fixed amount of work (one connection per thread, so
    each thread's responses answer its requests in order) until stored() reaches target; a run
    that stores nothing more for `stall_seconds` is a failed run, not an hour's wait."""
    proc = subprocess.Popen(
        [*_wrk_args(url, script, connections, int(timeout), connections), "--timeout", "60s"],
        env={**os.environ, **(env or {}), "BENCH_THREADS": str(connections)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + timeout
    count, moved = stored(), time.monotonic()
    while count < target and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
        now_count = stored()
        if now_count > count:
            count, moved = now_count, time.monotonic()
        elif time.monotonic() - moved > stall_seconds:
            proc.kill()
            proc.communicate(timeout=60)
            raise RuntimeError(f"wrk {script}: {count} of {target} stored, none more for {stall_seconds:.0f} s")
    proc.send_signal(signal.SIGINT)  # wrk stops and prints its report
    out, err = proc.communicate(timeout=60)
    if "Requests/sec" not in out:
        raise RuntimeError(f"wrk {script} failed: {err or out}")
    return _parse_wrk(out)


def _parse_wrk(out: str) -> WrkResult:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(int(g) for g in socket_errors.groups()) if socket_errors else 0)
    return WrkResult(rps, p50, p99, total, errors)


@dataclass
class PacedResult:
    """What a constant-rate run sent and how fast, by vegeta's own count."""

    sent: int
    achieved_rps: float
    success_ratio: float
    p99_ms: float


def vegeta_binary() -> str:
    """vegeta (Go, open-loop: it sends at the rate asked, whatever the answers' latency), as
    `make bench` installs it beside the virtualenv's tools."""
    local = ROOT / ".venv" / "bin" / "vegeta"
    return str(local) if local.exists() else "vegeta"


def vegeta(targets: list[dict[str, Any]], rate: float, seconds: float) -> PacedResult:
    """Send `targets` (vegeta's JSON targets: method, url, header, body) in order at `rate` per
    second for `seconds`, each at most once; vegeta's report of what it sent."""
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as f:
        for target in targets:
            f.write(orjson.dumps({**target, "body": base64.b64encode(target.get("body", b"")).decode()}) + b"\n")
    attack = subprocess.run(
        [vegeta_binary(), "attack", "-format=json", f"-targets={f.name}", f"-rate={max(1, round(rate * 60))}/1m",
         f"-duration={seconds}s", "-max-workers=256", "-timeout=30s", "-keepalive=true"],
        capture_output=True, check=True,
    )  # fmt: skip
    report = subprocess.run([vegeta_binary(), "report", "-type=json"], input=attack.stdout, capture_output=True, check=True)
    os.unlink(f.name)
    r = orjson.loads(report.stdout)
    return PacedResult(sent=int(r["requests"]), achieved_rps=round(float(r["rate"]), 1),
                       success_ratio=float(r["success"]), p99_ms=round(r["latencies"]["99th"] / 1e6, 2))
