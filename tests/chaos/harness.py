"""One fault-injection run: own PostgreSQL and Kafka, `provisioner run`, IdP load, faults, invariants.

The pipeline runs as it is deployed locally: `provisioner run` supervises ingest, the relay and
the three workers and restarts whichever dies. Faults are `kill -9` of one of those children
(found under the supervisor), a Kafka broker restart (single broker) or a broker loss and its
return (three brokers), and a PostgreSQL restart or crash. After each, the time until every
process answers /readyz again is measured (reported, never asserted).
"""

import ctypes
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import text

from core.db import make_engine
from core.migrate import upgrade
from core.settings import Settings, free_port, isolated, to_env
from domain import orgs as org_service
from domain import service_tokens
from events.kafka import ensure_topics
from tests.chaos import idp, invariants
from tests.chaos.stack import ROOT, Stack

PROCESS_ROLES = ("ingest", "relay", "membership", "billing", "conflicts")
_ROLE_ARGS = {"ingest": ["serve"], "relay": ["relay"], "membership": ["worker", "membership"],
              "billing": ["worker", "billing"], "conflicts": ["worker", "conflicts"]}


@dataclass
class Scenario:
    name: str
    kafka: str  # "single" or "cluster"
    faults: list[str]  # roles, "broker" (restart or loss + return), "postgres-restart", "postgres-crash"
    gap: tuple[float, float] = (3.0, 6.0)  # seconds between faults, drawn at random
    broker_down: tuple[float, float] = (6.0, 12.0)  # how long a lost cluster broker stays down
    orgs: int = 2
    scim_threads_per_org: int = 2
    login_threads: int = 2
    groups_per_org: int = 3
    think: float = 0.02
    warmup: float = 4.0
    tail: float = 4.0
    seed: int = 20261129


@dataclass
class Fault:
    what: str
    at: float  # seconds since the load started
    injected_in: float = 0.0  # how long the injection command took (a restart includes the start)
    recovered_in: float | None = None  # injection start -> what it hit is ready again (/readyz)
    detail: str = ""


@dataclass
class Result:
    scenario: Scenario
    faults: list[Fault] = field(default_factory=list)
    traffic: idp.Traffic = field(default_factory=idp.Traffic)
    checks: list[invariants.Check] = field(default_factory=list)
    load_seconds: float = 0.0
    settle_seconds: float = 0.0
    total_seconds: float = 0.0
    restarts_logged: Counter[str] = field(default_factory=Counter)
    outbox_max_rows: int = 0
    outbox_max_age: float = 0.0
    log_path: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks) and not self.traffic.anomalies \
            and all(f.recovered_in is not None for f in self.faults)


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.setpgrp()  # the supervisor and its children: one group, stopped together


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class Pipeline:
    """`provisioner run` as a child process; its children are the roles."""

    def __init__(self, settings: Settings, log_path: Path):
        self.settings = settings
        self.log_path = log_path
        self.env = {**os.environ, **to_env(settings)}
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_urls = {
            "ingest": f"{settings.public_url}/readyz",
            "relay": f"http://127.0.0.1:{settings.metrics_port_relay}/readyz",
            "membership": f"http://127.0.0.1:{settings.metrics_port_membership}/readyz",
            "billing": f"http://127.0.0.1:{settings.metrics_port_billing}/readyz",
            "conflicts": f"http://127.0.0.1:{settings.metrics_port_conflicts}/readyz",
        }

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "cli", "run"], env=self.env, cwd=ROOT,
                                     stdout=log, stderr=log, preexec_fn=_die_with_parent)
        log.close()

    def pid_of(self, role: str) -> int | None:
        """The live child of the supervisor that runs this role."""
        assert self.proc is not None
        want = ["cli", *_ROLE_ARGS[role]]
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return None
        for pid in children:
            try:
                args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            except OSError:
                continue
            if args[-len(want) - 1:-1] == want:
                return int(pid)
        return None

    def all_ready(self) -> bool:
        return all(_ready(url) for url in self.ready_urls.values())

    def wait_ready(self, timeout: float) -> float | None:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.all_ready():
                return time.monotonic() - start
            time.sleep(0.1)
        return None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class _Sampler(threading.Thread):
    """Outbox depth and age every half second (how far Kafka or the relay fell behind)."""

    def __init__(self, engine, result: Result, stop: threading.Event):
        super().__init__(daemon=True)
        self.engine, self.result, self.stop = engine, result, stop

    def run(self) -> None:
        while not self.stop.wait(0.5):
            try:
                with self.engine.connect() as conn:
                    rows, age = conn.execute(text(
                        "SELECT count(*), coalesce(EXTRACT(EPOCH FROM now() - min(created_at)), 0) FROM outbox")).one()
                self.result.outbox_max_rows = max(self.result.outbox_max_rows, int(rows))
                self.result.outbox_max_age = max(self.result.outbox_max_age, float(age))
            except Exception:  # PostgreSQL is being restarted
                continue


def _inject(record: Fault, stack: Stack, pipeline: Pipeline, rng: random.Random, scenario: Scenario,
            recovery_timeout: float) -> None:
    """Inject one fault, then wait until what it hit is ready again (runs in its own thread)."""
    fault = record.what
    start = time.monotonic()
    urls = list(pipeline.ready_urls.values())
    if fault in PROCESS_ROLES:
        pid = pipeline.pid_of(fault)
        if pid is None:
            record.detail = "no live process to kill"
            return
        os.kill(pid, signal.SIGKILL)
        record.detail = f"kill -9 pid {pid}"
        urls = [pipeline.ready_urls[fault]]
        # ready means: a new process of this role answers /readyz
        while pipeline.pid_of(fault) in (pid, None) and time.monotonic() - start < recovery_timeout:
            time.sleep(0.05)
    elif fault == "broker" and stack.kafka == "single":
        record.detail = "broker restarted (SIGTERM, start)"
        stack.restart_kafka()
    elif fault == "broker":
        n = rng.randint(1, 3)
        down = rng.uniform(*scenario.broker_down)
        stack.kill_broker(n)
        time.sleep(down)
        stack.start_broker(n)
        record.detail = f"broker {n} kill -9, down {down:.1f} s, then started"
    elif fault == "postgres-restart":
        record.detail = "PostgreSQL restarted (fast shutdown, start)"
        stack.restart_postgres()
    elif fault == "postgres-crash":
        record.detail = "PostgreSQL postmaster kill -9, then started (crash recovery)"
        stack.crash_postgres()
    else:
        raise ValueError(fault)
    record.injected_in = time.monotonic() - start
    time.sleep(0.2)  # let the processes notice before asking them
    while time.monotonic() - start < recovery_timeout:
        if all(_ready(url) for url in urls):
            record.recovered_in = time.monotonic() - start
            return
        time.sleep(0.1)


def run(scenario: Scenario, log_dir: Path | None = None, recovery_timeout: float = 120.0) -> Result:
    """Run the scenario end to end; everything it started is stopped and removed."""
    began = time.monotonic()
    result = Result(scenario)
    rng = random.Random(scenario.seed)
    log_dir = log_dir or ROOT / ".local" / "chaos-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    run_id = f"{scenario.name}-{uuid.uuid4().hex[:6]}"
    log_path = log_dir / f"{run_id}.log"  # kept after the run (the stack's state is removed)
    result.log_path = str(log_path)
    stack = Stack(scenario.kafka, run_id)
    pipeline: Pipeline | None = None
    engine = None
    try:
        stack.up()
        settings = _settings(scenario, stack)
        upgrade(settings)
        engine = make_engine(settings, pool_size=4)
        invariants.install_audit(engine)
        ensure_topics(settings)
        pipeline = Pipeline(settings, log_path)
        pipeline.start()
        if pipeline.wait_ready(90) is None:
            raise RuntimeError(f"pipeline not ready; see {log_path}")

        traffic = result.traffic
        ledgers = _orgs(scenario, settings, engine, traffic)
        service_token = service_tokens.create(engine, "chaos")

        stop_load = threading.Event()
        actors = _actors(scenario, settings, ledgers, service_token, traffic, stop_load, rng)
        stop_sampler = threading.Event()
        sampler = _Sampler(engine, result, stop_sampler)
        sampler.start()
        load_start = time.monotonic()
        for a in actors:
            a.start()
        time.sleep(scenario.warmup)
        _inject_faults(scenario, result, stack, pipeline, rng, load_start, recovery_timeout)
        time.sleep(scenario.tail)
        stop_load.set()
        for a in actors:
            a.join(timeout=idp.GIVE_UP_SECONDS + 30)
        result.load_seconds = time.monotonic() - load_start

        settle_start = time.monotonic()
        _settle(settings, engine, pipeline)
        result.settle_seconds = time.monotonic() - settle_start
        stop_sampler.set()
        result.checks = invariants.check_all(settings, engine, ledgers)
    finally:
        if pipeline is not None:
            pipeline.stop()
        if engine is not None:
            engine.dispose()
        stack.purge()
        result.total_seconds = time.monotonic() - began
    result.restarts_logged = _restarts(log_path)
    return result


def _settings(scenario: Scenario, stack: Stack) -> Settings:
    """The run's settings: its own database, topics and ports on the scenario's PostgreSQL and Kafka."""
    base = Settings(database_url=stack.database_url, kafka_bootstrap_servers=stack.bootstrap,
                    topic_replication=stack.replication, topic_min_insync_replicas=0)
    settings = isolated(base, f"chaos-{scenario.name}", stack.database_url, auth_cache_seconds=0.5,
                        billing_verify_interval_seconds=0, http_port=free_port())
    return settings.model_copy(update={"public_url": f"http://127.0.0.1:{settings.http_port}"})


def _orgs(scenario: Scenario, settings: Settings, engine, traffic: idp.Traffic) -> list[idp.OrgLedger]:
    """The scenario's orgs, each with its groups created through SCIM."""
    ledgers = []
    for i in range(scenario.orgs):
        org, token = org_service.create(engine, f"chaos-{i}-{uuid.uuid4().hex[:6]}")
        ledger = idp.OrgLedger(org.id, org.slug, token)
        idp.create_groups(ledger, settings.public_url, traffic, scenario.groups_per_org)
        ledgers.append(ledger)
    return ledgers


def _actors(
    scenario: Scenario, settings: Settings, ledgers: list[idp.OrgLedger], service_token: str,
    traffic: idp.Traffic, stop_load: threading.Event, rng: random.Random,
) -> list[threading.Thread]:
    """The load's threads (not started): SCIM writers per org, then sign-ins spread over the orgs."""
    actors: list[threading.Thread] = []
    for i, ledger in enumerate(ledgers):
        for t in range(scenario.scim_threads_per_org):
            actor = idp.ScimActor(ledger, settings.public_url, traffic, stop_load, f"o{i}s{t}", rng.randrange(10**9))
            actors.append(threading.Thread(target=actor.run, args=(scenario.think,), daemon=True))
    for t in range(scenario.login_threads):
        ledger = ledgers[t % len(ledgers)]
        login = idp.LoginActor(ledger, settings.public_url, service_token, traffic, stop_load, f"l{t}", rng.randrange(10**9))
        actors.append(threading.Thread(target=login.run, args=(scenario.think,), daemon=True))
    return actors


def _inject_faults(
    scenario: Scenario, result: Result, stack: Stack, pipeline: Pipeline, rng: random.Random,
    load_start: float, recovery_timeout: float,
) -> None:
    """Inject the scenario's faults at random moments and wait for each to be recovered from."""
    # each in its own thread, so they may overlap as real ones do
    injectors = []
    for fault in scenario.faults:
        time.sleep(rng.uniform(*scenario.gap))
        record = Fault(fault, time.monotonic() - load_start)
        result.faults.append(record)
        injector = threading.Thread(target=_inject, args=(record, stack, pipeline, random.Random(rng.random()),
                                                          scenario, recovery_timeout), daemon=True)
        injector.start()
        injectors.append(injector)
    for injector in injectors:
        injector.join(timeout=recovery_timeout + 120)


def _settle(settings: Settings, engine, pipeline: Pipeline, timeout: float = 180.0) -> None:
    """Wait until the outbox is empty and the workers stopped changing anything for a few seconds."""
    deadline = time.monotonic() + timeout
    last, quiet_since = None, time.monotonic()
    while time.monotonic() < deadline:
        try:
            with engine.connect() as conn:
                state = conn.execute(text(
                    "SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM processed_events),"
                    " (SELECT count(*) FROM pending_logins)")).one()
        except Exception:
            state = None
        if state != last:
            last, quiet_since = state, time.monotonic()
        elif state is not None and state[0] == 0 and time.monotonic() - quiet_since > 5 and pipeline.all_ready():
            return
        time.sleep(0.5)


def _restarts(log_path: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    try:
        for line in log_path.read_text(errors="replace").splitlines():
            if '"provisioner.supervisor"' in line and " restarted" in line:
                for role in PROCESS_ROLES:
                    if f'"{role} restarted' in line:
                        counts[role] += 1
    except OSError:
        pass
    return counts
