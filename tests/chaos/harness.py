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
from tests.chaos import hostile, idp, invariants
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
    settings: dict[str, object] = field(default_factory=dict)  # Settings overrides for the whole pipeline
    # At most this many faults at once and one per target (a role, the brokers, PostgreSQL); a fault
    # waits for its turn. 0: no limit, each fault at its drawn moment (the short and full runs).
    max_in_flight: int = 0
    hostile: bool = False  # a hostile org's bounded mix of expensive requests during the load (hostile.py)
    recovery_timeout: float = 120.0


@dataclass
class Fault:
    what: str
    at: float  # seconds since the load started
    injected_in: float = 0.0  # how long the injection command took (a restart includes the start)
    recovered_in: float | None = None  # injection start -> what it hit is ready again (/readyz)
    detail: str = ""
    waited: float = 0.0  # for its turn (max_in_flight), before `at`
    back_in: float | None = None  # a cluster broker: injection start -> it was started again and answers
    answered_in: float | None = None  # a killed role: kill -> its new process's /readyz answers at all (started)
    delay_max: float | None = None  # the longest end-to-end delay sampled from the fault to 5 s after recovery
    flowing_in: float | None = None  # injection start -> the first end-to-end delay under FLOWING s once it is over


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
    # (seconds since the load started, oldest event staged but not yet applied by every worker, in s)
    delays: list[tuple[float, float]] = field(default_factory=list)
    hostile_answers: hostile.Tally | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks) and not self.traffic.anomalies \
            and all(f.recovered_in is not None for f in self.faults)


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.setpgrp()  # the supervisor and its children: one group, stopped together


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=1).status_code
    except httpx.HTTPError:
        return None


def _ready(url: str) -> bool:
    return _status(url) == 200


class Pipeline:
    """`provisioner run` as a child process; its children are the roles."""

    def __init__(self, settings: Settings, log_path: Path):
        self.settings = settings
        self.log_path = log_path
        self.env = {**os.environ, **to_env(settings)}
        self.proc: subprocess.Popen[bytes] | None = None
        self.killing: Counter[str] = Counter()  # roles a kill fault in progress took down
        self.lock = threading.Lock()
        self.ready_urls = {
            "ingest": f"{settings.public_url}/readyz",
            "relay": f"http://127.0.0.1:{settings.metrics_port_relay}/readyz",
            "membership": f"http://127.0.0.1:{settings.metrics_port_membership}/readyz",
            "billing": f"http://127.0.0.1:{settings.metrics_port_billing}/readyz",
            "conflicts": f"http://127.0.0.1:{settings.metrics_port_conflicts}/readyz",
            "signals": f"http://127.0.0.1:{settings.metrics_port_signals}/readyz",
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


# The oldest event staged in the last five minutes that some worker has not applied yet: how far
# behind the whole pipeline (relay, Kafka, consumer groups) is, as the IdP's users would see it.
_DELAY = """
SELECT coalesce(EXTRACT(EPOCH FROM clock_timestamp() - min(a.created_at)), 0) FROM chaos_outbox_audit a
JOIN (VALUES {pairs}) AS w(consumer, topic, types) ON w.topic = a.topic AND (w.types IS NULL OR a.type = ANY(w.types))
WHERE a.created_at > clock_timestamp() - interval '300 seconds' AND NOT EXISTS (
    SELECT 1 FROM processed_events p WHERE p.consumer = w.consumer AND p.event_id = a.event_id)
"""


_UNAPPLIED = """
SELECT count(*) FROM chaos_outbox_audit a
JOIN (VALUES {pairs}) AS w(consumer, topic, types) ON w.topic = a.topic AND (w.types IS NULL OR a.type = ANY(w.types))
WHERE NOT EXISTS (SELECT 1 FROM processed_events p WHERE p.consumer = w.consumer AND p.event_id = a.event_id)
"""


def _delay_query(settings: Settings, template: str = _DELAY) -> str:
    from workers.main import WORKERS

    topics = settings.topics()

    def types(worker: object) -> str:  # the event types the worker's handler records (NULL: all)
        wanted = getattr(worker.handler(settings), "TYPES", None)  # type: ignore[attr-defined]
        return "CAST(NULL AS text[])" if wanted is None else "ARRAY[" + ", ".join(f"'{t}'" for t in sorted(wanted)) + "]::text[]"

    pairs = [(w.consumer, topics[role], types(w)) for w in WORKERS.values() for role in w.roles]
    return template.format(pairs=", ".join(f"('{c}', '{t}', {k})" for c, t, k in pairs))


class _Sampler(threading.Thread):
    """Outbox depth and age every half second (how far Kafka or the relay fell behind), and the
    end-to-end delay every second."""

    def __init__(self, engine, result: Result, stop: threading.Event, settings: Settings, load_start: float):
        super().__init__(daemon=True)
        self.engine, self.result, self.stop = engine, result, stop
        self.delay_sql = text(_delay_query(settings))
        self.load_start = load_start

    def run(self) -> None:
        tick = 0
        while not self.stop.wait(0.5):
            tick += 1
            try:
                with self.engine.connect() as conn:
                    rows, age = conn.execute(text(
                        "SELECT count(*), coalesce(EXTRACT(EPOCH FROM now() - min(created_at)), 0) FROM outbox")).one()
                    self.result.outbox_max_rows = max(self.result.outbox_max_rows, int(rows))
                    self.result.outbox_max_age = max(self.result.outbox_max_age, float(age))
                    if tick % 2 == 0:
                        at = time.monotonic() - self.load_start
                        self.result.delays.append((at, float(conn.execute(self.delay_sql).scalar() or 0.0)))
            except Exception:  # PostgreSQL is being restarted
                continue


def _kill(record: Fault, pipeline: Pipeline, recovery_timeout: float) -> None:
    """kill -9 of the role's live process, then wait until a new one answers /readyz."""
    fault = record.what
    start = time.monotonic()
    pid = pipeline.pid_of(fault)
    while pid is None and time.monotonic() - start < recovery_timeout:  # the supervisor is restarting it
        time.sleep(0.1)
        pid = pipeline.pid_of(fault)
    if pid is None:
        record.detail = "no live process to kill"
        return
    alive_in = time.monotonic() - start
    if alive_in > 0.2:  # measured from the kill, as for any other
        record.at += alive_in
        start = time.monotonic()
    with pipeline.lock:
        pipeline.killing[fault] += 1
    try:
        os.kill(pid, signal.SIGKILL)
        record.detail = f"kill -9 pid {pid}" + (f" (alive again after {alive_in:.1f} s)" if alive_in > 0.2 else "")
        # ready means: a new process of this role answers /readyz
        while pipeline.pid_of(fault) in (pid, None) and time.monotonic() - start < recovery_timeout:
            time.sleep(0.05)
        record.injected_in = time.monotonic() - start
        url = pipeline.ready_urls[fault]
        while time.monotonic() - start < recovery_timeout:
            status = _status(url)
            if status is not None and record.answered_in is None:
                record.answered_in = time.monotonic() - start
            if status == 200:
                record.recovered_in = time.monotonic() - start
                return
            time.sleep(0.1)
    finally:
        with pipeline.lock:
            pipeline.killing[fault] -= 1


def _inject(record: Fault, stack: Stack, pipeline: Pipeline, rng: random.Random, scenario: Scenario,
            recovery_timeout: float) -> None:
    """Inject one fault, then wait until what it hit is ready again (runs in its own thread)."""
    fault = record.what
    start = time.monotonic()
    if fault in PROCESS_ROLES:
        _kill(record, pipeline, recovery_timeout)
        return
    if fault == "broker" and stack.kafka == "single":
        record.detail = "broker restarted (SIGTERM, start)"
        stack.restart_kafka()
    elif fault == "broker":
        n = rng.randint(1, 3)
        down = rng.uniform(*scenario.broker_down)
        stack.kill_broker(n)
        time.sleep(down)
        stack.start_broker(n)
        record.back_in = time.monotonic() - start
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
        # every process, but one a kill of its own (in progress) took down: that one is the kill's recovery
        with pipeline.lock:
            urls = [url for role, url in pipeline.ready_urls.items() if not pipeline.killing[role]]
        if all(_ready(url) for url in urls):
            record.recovered_in = time.monotonic() - start
            return
        time.sleep(0.1)


def run(scenario: Scenario, log_dir: Path | None = None, recovery_timeout: float | None = None) -> Result:
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
        attacker = None
        if scenario.hostile:  # its org is not in the ledgers: the invariants ignore what it was refused
            attacker = hostile.Attacker(hostile.setup(settings, engine), stop_load, random.Random(rng.random()))
            result.hostile_answers = attacker.tally
            actors.append(threading.Thread(target=attacker.run, daemon=True))
        stop_sampler = threading.Event()
        load_start = time.monotonic()
        sampler = _Sampler(engine, result, stop_sampler, settings, load_start)
        sampler.start()
        for a in actors:
            a.start()
        time.sleep(scenario.warmup)
        _inject_faults(scenario, result, stack, pipeline, rng, load_start, recovery_timeout or scenario.recovery_timeout)
        time.sleep(scenario.tail)
        stop_load.set()
        for a in actors:
            a.join(timeout=idp.GIVE_UP_SECONDS + 30)
        result.load_seconds = time.monotonic() - load_start

        settle_start = time.monotonic()
        _settle(settings, engine, pipeline)
        result.settle_seconds = time.monotonic() - settle_start
        stop_sampler.set()
        _attribute_delays(result)
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
                        billing_verify_interval_seconds=0, http_port=free_port(), **scenario.settings)
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
    by_target: dict[str, threading.Thread] = {}
    for fault in scenario.faults:
        time.sleep(rng.uniform(*scenario.gap))
        waited = _wait_for_turn(scenario, fault, injectors, by_target, recovery_timeout)
        record = Fault(fault, time.monotonic() - load_start, waited=waited)
        result.faults.append(record)
        injector = threading.Thread(target=_inject, args=(record, stack, pipeline, random.Random(rng.random()),
                                                          scenario, recovery_timeout), daemon=True)
        injector.start()
        injectors.append(injector)
        by_target[_target(fault)] = injector
    for injector in injectors:
        injector.join(timeout=recovery_timeout + 120)


def _target(fault: str) -> str:
    return "postgres" if fault.startswith("postgres") else fault


def _wait_for_turn(scenario: Scenario, fault: str, injectors: list[threading.Thread],
                   by_target: dict[str, threading.Thread], timeout: float) -> float:
    """With max_in_flight: wait until fewer faults are in progress and none on this fault's target."""
    if not scenario.max_in_flight:
        return 0.0
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        busy = by_target.get(_target(fault))
        if sum(i.is_alive() for i in injectors) < scenario.max_in_flight and not (busy and busy.is_alive()):
            break
        time.sleep(0.1)
    return time.monotonic() - start


FLOWING = 3.0


def _attribute_delays(result: Result) -> None:
    """Each fault's worst end-to-end delay, sampled from its injection to 5 s after its recovery, and
    when events flowed again: the first sample under FLOWING seconds after the injection was over."""
    for f in result.faults:
        end = f.at + (f.recovered_in if f.recovered_in is not None else 0.0) + 5.0
        seen = [d for t, d in result.delays if f.at <= t <= end]
        f.delay_max = max(seen) if seen else None
        over = f.at + f.injected_in
        f.flowing_in = next((t - f.at for t, d in result.delays if t >= over and d < FLOWING), None)


def _settle(settings: Settings, engine, pipeline: Pipeline, timeout: float = 180.0) -> None:
    """Wait until the outbox is empty, every staged event has been applied by each worker that
    consumes its topic, and the workers stopped changing anything for a few seconds (a consumer
    still in its reconnect back-off changes nothing for a while: quiet alone is not done). An
    event that never arrives makes this wait the whole timeout; the invariants then say which."""
    deadline = time.monotonic() + timeout
    last, quiet_since = None, time.monotonic()
    unapplied = _delay_query(settings, _UNAPPLIED)
    while time.monotonic() < deadline:
        try:
            with engine.connect() as conn:
                state = conn.execute(text(
                    "SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM processed_events),"
                    f" (SELECT count(*) FROM pending_logins), ({unapplied})")).one()
        except Exception:
            state = None
        if state != last:
            last, quiet_since = state, time.monotonic()
        elif (state is not None and state[0] == 0 and state[3] == 0 and time.monotonic() - quiet_since > 5
              and pipeline.all_ready()):
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
