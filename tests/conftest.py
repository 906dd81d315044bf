"""Fixtures on the real PostgreSQL and Kafka that `make test` starts, and the test tiers.

Every test module carries one tier marker (`pytestmark`); a test without one fails collection.
Each test session gets its own databases (`<db>_test_<run>`), topic names and consumer groups,
so it never touches a running `make run` stack; each test gets its own org. Tests that run the
relay (the `pipeline` fixture) get a stack of their own (see `pytest_generate_tests`), so no
test order is needed: the relay never drains an outbox another test reads.
"""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from core.db import drop_database, make_engine
from core.migrate import upgrade
from core.settings import Settings, free_port, isolated, to_env
from domain import orgs

# The tiers, as declared in pyproject.toml's markers: `pytest -m unit` runs without any service.
TIERS = ("unit", "contract", "integration", "e2e", "sso", "console", "security", "ops", "chaos")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every collected test has a tier marker; checked before `-m` deselects anything."""
    unmarked = [item.nodeid for item in items if not any(item.get_closest_marker(tier) for tier in TIERS)]
    if unmarked:
        listed = "\n  ".join(unmarked)
        raise pytest.UsageError(f"tests without a tier marker ({', '.join(TIERS)}):\n  {listed}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that runs the relay and workers gets its own settings, database and processes.

    The relay publishes and deletes every outbox row of its database, and the integration,
    console, security and SSO tests read the rows their requests staged: the `pipeline` tests
    therefore run on a stack of their own (`settings` parametrized per stack, session scope; pytest
    groups each stack's tests and tears a stack down before the next one starts). The chaos tier
    gets yet another one: it SIGKILLs the relay and workers and the ones it restarts die with it,
    and runs three times: on the default runtime and consumer (librdkafka's), on kafka-python's
    consumer (`chaos-kafka-python`), and on faust-streaming's agents (`chaos-faust`).
    """
    if "pipeline" in metafunc.fixturenames:
        chaos = ["chaos", "chaos-kafka-python", "chaos-faust"]
        stacks = chaos if metafunc.definition.get_closest_marker("chaos") else ["pipeline"]
        metafunc.parametrize("settings", stacks, indirect=True, scope="session")


def _free_port() -> int:
    return free_port()


def _test_database_url(url: str, run: str) -> str:
    parts = urlsplit(url)  # the session's pid in the name: only a dead session's databases are dropped
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}_test_{run}_p{os.getpid()}"))


def _session_alive(database: str) -> bool:
    """Whether the test session that made this database still runs (its pid is in the name)."""
    pid = database.rsplit("_p", 1)[-1]
    if not pid.isdigit():
        return False  # made before sessions named their databases: long dead
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _admin_engine(url: str) -> Engine:
    parts = urlsplit(url)
    return create_engine(
        urlunsplit(parts._replace(path="/postgres")).replace("postgresql://", "postgresql+psycopg2://", 1),
        isolation_level="AUTOCOMMIT",
    )


def _create_database(url: str) -> None:
    """A fresh database for this session; databases of earlier, dead sessions are dropped."""
    name = urlsplit(url).path.lstrip("/")
    prefix = name.rsplit("_test_", 1)[0] + "_test_"
    admin = _admin_engine(url)
    with admin.connect() as conn:
        stale = conn.execute(
            text("SELECT datname FROM pg_database WHERE starts_with(datname, :p) AND datname <> :n"), {"p": prefix, "n": name}
        ).scalars()
        for old in stale:
            in_use = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d"), {"d": old}).scalar()
            if not in_use and not _session_alive(old):  # a concurrent session may hold no connection now
                conn.execute(text(f'DROP DATABASE IF EXISTS "{old}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def _drop_database(url: str) -> None:
    admin = _admin_engine(url)
    with admin.connect() as conn:
        drop_database(conn, urlsplit(url).path.lstrip("/"))
    admin.dispose()


@pytest.fixture(scope="session")
def settings(request: pytest.FixtureRequest) -> Settings:
    """The settings of one stack: "shared", or the stack `pytest_generate_tests` gave the test."""
    stack = getattr(request, "param", "shared")
    base = Settings()
    run = uuid.uuid4().hex[:8]
    given = os.environ.get("PROVISIONER_TEST_DATABASE_URL") if stack == "shared" else None
    url = given or _test_database_url(base.database_url, run)
    # auth cache off: revocations and toggles must show at once in these tests
    # the rate limit is off for the suite's bursts; tests/integration/test_rate_limit.py runs its own ingest
    # the suite's IdPs run on loopback, which only an operator's setting allows
    # and so are the per-org fair shares (tests/integration/test_fairness.py runs its own ingest):
    # consecutive tests' orgs would contend, and the race tests send more at once than one org may
    runtime: dict[str, Any] = {"worker_runtime": "faust"} if stack.endswith("-faust") else {}
    if stack.endswith("-kafka-python"):
        runtime["worker_kafka_client"] = "kafka-python"
    if stack == "pipeline":  # the signals worker pushes to tests/e2e/test_signals.py's receiver, retrying quickly
        runtime |= {"caep_push_url": f"http://127.0.0.1:{free_port()}/caep/events", "caep_push_retry_base_seconds": 0.2,
                    "caep_push_retry_max_seconds": 1.0, "caep_push_max_attempts": 4}
    return isolated(base, f"test-{run}", url, auth_cache_seconds=0, scim_rate_limit_per_second=0,
                    scim_org_cpu_per_second=0, scim_max_in_flight_per_org=1000, scim_refusal_delay_seconds=0,
                    idp_allow_private_addresses=True, idp_health_refresh_seconds=1.0, **runtime)


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    owned = settings.database_url != os.environ.get("PROVISIONER_TEST_DATABASE_URL")  # else the caller's database
    if owned:
        _create_database(settings.database_url)
    upgrade(settings)
    engine = make_engine(settings)
    yield engine
    engine.dispose()
    if owned:
        _drop_database(settings.database_url)


def _die_with_parent() -> None:
    """Children get SIGTERM when the test run dies, so none outlives it (Linux prctl)."""
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Processes:
    """Child processes started with the test settings; all stopped at session end."""

    def __init__(self, settings: Settings):
        self.env = {**os.environ, **to_env(settings)}
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-m", "cli", *args], env=self.env, preexec_fn=_die_with_parent)
        self.children[name] = proc
        return proc

    def kill(self, name: str) -> None:
        self.children[name].kill()
        self.children[name].wait()

    def stop_all(self) -> None:
        for proc in self.children.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.children.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def topic_payloads(settings: Settings, topic: str) -> list[dict]:
    """Every record on a topic, from the beginning, decoded from JSON (reads to the end offsets)."""
    import orjson

    from events.kafka import read_to_end

    return [orjson.loads(value) for value in read_to_end(settings, [topic])]


def events_of_org(settings: Settings, topics: list[str], org_id: str) -> list[dict[str, Any]]:
    """The org's events on these topics, from the beginning; a record that is not JSON (the ops
    tier's poison record, on the same stack) is skipped."""
    import orjson

    from events.kafka import read_to_end

    found = []
    for raw in read_to_end(settings, topics):
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if event.get("orgid") == org_id:
            found.append(event)
    return found


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, message: str = "condition"):
    """Poll until predicate() is truthy; returns its value or fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def processes(settings: Settings, engine: Engine) -> Iterator[Processes]:
    """Depends on engine, so every child stops before the session's database is dropped."""
    procs = Processes(settings)
    yield procs
    procs.stop_all()


@pytest.fixture(scope="session")
def server(settings: Settings, engine: Engine, processes: Processes) -> str:
    """The ingest HTTP server, a real uvicorn process; returns its URL."""
    processes.start("ingest", "serve")
    wait_for(lambda: _http_ok(f"{settings.public_url}/readyz"), timeout=30, message="ingest /readyz")
    return settings.public_url


@pytest.fixture(scope="session")
def pipeline(settings: Settings, server: str, processes: Processes) -> Processes:
    """Topics, the relay and the workers, on the real Kafka."""
    from events.kafka import ensure_topics

    ensure_topics(settings)
    processes.start("relay", "relay")
    processes.start("membership", "worker", "membership")
    processes.start("billing", "worker", "billing")
    processes.start("conflicts", "worker", "conflicts")
    processes.start("signals", "worker", "signals")
    for name, port in (
        ("relay", settings.metrics_port_relay),
        ("membership", settings.metrics_port_membership),
        ("billing", settings.metrics_port_billing),
        ("conflicts", settings.metrics_port_conflicts),
        ("signals", settings.metrics_port_signals),
    ):
        wait_for(lambda port=port: _http_ok(f"http://127.0.0.1:{port}/metrics"), timeout=30, message=name)
    return processes


@dataclass
class ScimOrg:
    id: str
    slug: str
    token: str
    base_url: str
    client: httpx.Client


def make_org(settings: Settings, engine: Engine) -> ScimOrg:
    slug = "t-" + uuid.uuid4().hex[:12]
    org, token = orgs.create(engine, slug)
    base = orgs.scim_base_url(settings.public_url, slug)
    client = httpx.Client(
        base_url=base,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
        timeout=10,
    )
    return ScimOrg(org.id, slug, token, base, client)


@pytest.fixture
def scim_org(settings: Settings, engine: Engine, server: str) -> Iterator[ScimOrg]:
    org = make_org(settings, engine)
    yield org
    org.client.close()


@pytest.fixture
def other_org(settings: Settings, engine: Engine, server: str) -> Iterator[ScimOrg]:
    org = make_org(settings, engine)
    yield org
    org.client.close()


@contextmanager
def own_ingest(settings: Settings, what: str, **overrides: Any) -> Iterator[Settings]:
    """An ingest process of its own on a free port, with these settings changed; its settings."""
    port = free_port()
    own = settings.model_copy(update={"http_port": port, "public_url": f"http://127.0.0.1:{port}", **overrides})
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve"], env={**os.environ, **to_env(own)}, preexec_fn=_die_with_parent
    )

    def up() -> bool:
        try:
            return httpx.get(f"{own.public_url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, timeout=30, message=what)
        yield own
    finally:
        proc.terminate()
        proc.wait(timeout=15)
