"""`make abuse`'s system and orgs: its own database, ingest (access log kept), relay and workers; a
victim org with a few hundred users; a hostile org with a 10,000-email user and a slow IdP."""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import Engine, text

from bench.abuse_attacks import Target
from bench.abuse_idp import SlowIdp
from bench.abuse_victim import Victim
from bench.harness import fresh_database, wait_http
from bench.scenarios import _SEED
from core import sealed
from core.settings import Settings, free_port, isolated, to_env
from domain import admin, orgs, sso_config

SEEDED = 300


def abuse_settings(http_workers: int, rate_limit: float) -> Settings:
    """Isolated settings on the shared PostgreSQL and Kafka; the per-org rate limit on (at `rate_limit`,
    low enough that a flood on this box exceeds it), the access log on, and IdPs on loopback allowed
    (the slow IdP stands in for a public one)."""
    base = Settings()
    url = urlunsplit(urlsplit(base.database_url)._replace(path="/provisioner_abuse"))
    return isolated(base, f"abuse-{uuid.uuid4().hex[:6]}", url, http_workers=http_workers, log_level="INFO",
                    billing_verify_interval_seconds=0, idp_allow_private_addresses=True,
                    scim_rate_limit_per_second=rate_limit, scim_rate_limit_burst=max(1, int(2 * rate_limit)))


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (uvicorn's workers), in MB."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
            todo += [int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
        except (OSError, StopIteration):
            continue
    return round(total / 1024, 1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (uvicorn's workers), in seconds."""
    total, todo, tick = 0.0, [pid], os.sysconf("SC_CLK_TCK")
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            todo += [int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue
    return total


@dataclass
class AbuseSystem:
    """The processes of one run, and the ingest's access log."""

    settings: Settings
    engine: Engine = field(init=False)
    log_path: Path = field(init=False)
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    control_url: str = ""  # the second ingest of a control run, serving the hostile clients

    def start(self, pipeline: bool, control: bool = False) -> None:
        self.engine = fresh_database(self.settings)
        from events.kafka import ensure_topics

        ensure_topics(self.settings)
        env = {**os.environ, **to_env(self.settings)}
        self.log_path = Path(tempfile.mkstemp(prefix="abuse-ingest-", suffix=".log")[1])
        with open(self.log_path, "wb") as log:
            self.children["ingest"] = subprocess.Popen([sys.executable, "-m", "cli", "serve"], env=env,
                                                       stdout=subprocess.DEVNULL, stderr=log)
        if control:  # a second ingest for the hostile clients alone: the box's share without the process's
            port = free_port()
            self.control_url = f"http://127.0.0.1:{port}"
            own = {**env, **to_env(self.settings.model_copy(update={"http_port": port, "public_url": self.control_url}))}
            self.children["control ingest"] = subprocess.Popen([sys.executable, "-m", "cli", "serve"], env=own,
                                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_http(self.control_url + "/readyz", timeout=60)
        roles = [["relay"], ["worker", "membership"], ["worker", "billing"], ["worker", "conflicts"]] if pipeline else []
        for role in roles:
            self.children[role[-1]] = subprocess.Popen([sys.executable, "-m", "cli", *role], env=env,
                                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(self.settings.public_url + "/readyz", timeout=60)
        if pipeline:
            wait_http(f"http://127.0.0.1:{self.settings.metrics_port_relay}/readyz", timeout=60)

    @property
    def ingest_pid(self) -> int:
        return self.children["ingest"].pid

    def stop(self) -> None:
        for proc in self.children.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.children.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if hasattr(self, "engine"):  # else the database was never created
            # what the hostile requests left running in PostgreSQL must not outlive the run on a shared server
            with self.engine.begin() as conn:
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
            self.engine.dispose()
        if hasattr(self, "log_path"):
            self.log_path.unlink(missing_ok=True)


def _seed(engine: Engine, org_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(_SEED), {"org": org_id, "start": 0, "stop": SEEDED})
        conn.execute(text("ANALYZE scim_resources"))


def victim_org(system: AbuseSystem) -> Victim:
    org, token = orgs.create(system.engine, "victim-" + uuid.uuid4().hex[:6])
    _seed(system.engine, org.id)
    with system.engine.connect() as conn:
        user_id, user_name = conn.execute(
            text("SELECT id, data->>'userName' FROM scim_resources WHERE org_id = :o ORDER BY id LIMIT 1"), {"o": org.id}).one()
    return Victim(orgs.scim_base_url(system.settings.public_url, org.slug), token, user_id, user_name)


_BIG = """
INSERT INTO scim_resources (org_id, id, resource_type, version, data, user_name_ci, emails_ci)
VALUES (:org, :id, 'User', 1, CAST(:data AS jsonb), :name, CAST(:emails AS text[]))
"""


def _big_user(system: AbuseSystem, org_id: str, scim: str, token: str) -> tuple[str, dict[str, Any]]:
    """The user with 10,000 emails: POSTed as the issue did; stored directly when the POST is refused
    (a user stored before the limits existed), so its GET and sort still cost what they cost."""
    emails = [{"value": f"big{i}@hostile.test", "type": "work"} for i in range(10_000)]
    user = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "big@hostile.test",
            "title": "big", "emails": emails}
    started = time.monotonic()
    reply = httpx.post(f"{scim}/Users", json=user, headers={"Authorization": f"Bearer {token}"}, timeout=120)
    created = {"status": reply.status_code, "seconds": round(time.monotonic() - started, 2), "stored_directly": False}
    if reply.status_code == 201:
        return str(reply.json()["id"]), created
    user_id = uuid.uuid4().hex
    data = {**user, "id": user_id, "meta": {"resourceType": "User"}}
    emails_ci = "{" + ",".join(e["value"] for e in emails) + "}"
    with system.engine.begin() as conn:
        conn.execute(text(_BIG), {"org": org_id, "id": user_id, "data": json.dumps(data), "name": "big@hostile.test",
                                  "emails": emails_ci})
    created["stored_directly"] = True
    return user_id, created


def _oidc(system: AbuseSystem, slug: str, org_id: str, admin_token: str, idp: SlowIdp) -> str:
    """Point the org's OIDC issuer at the slow IdP through the admin API; stored directly if refused."""
    reply = httpx.put(f"{system.settings.public_url}/admin/v1/org/sso/oidc", timeout=30,
                      headers={"Authorization": f"Bearer {admin_token}"},
                      json={"issuer": idp.issuer, "client_id": "hostile", "client_secret": "hostile-secret"})
    if reply.status_code == 200:
        return "admin API"
    config = {"issuer": idp.issuer, "client_id": "hostile", "client_secret_sealed": sealed.seal(system.settings, "s")}
    with system.engine.begin() as conn:
        sso_config.put(conn, org_id, "oidc", config)
    return f"stored directly (the admin API answered {reply.status_code})"


def hostile_org(system: AbuseSystem, idp: SlowIdp) -> tuple[Target, dict[str, Any]]:
    """The hostile org (users, the big user, OIDC at the slow IdP) and the same attacker's flood org."""
    org, token = orgs.create(system.engine, "hostile-" + uuid.uuid4().hex[:6])
    flood, flood_token = orgs.create(system.engine, "hostile-flood-" + uuid.uuid4().hex[:6])
    admin_token = admin.create_admin_token(system.engine, org.slug)
    _seed(system.engine, org.id)
    public = system.settings.public_url
    scim = orgs.scim_base_url(public, org.slug)
    big, created = _big_user(system, org.id, scim, token)
    with system.engine.connect() as conn:
        small = conn.execute(text("SELECT id FROM scim_resources WHERE org_id = :o AND id <> :b ORDER BY id LIMIT 1"),
                             {"o": org.id, "b": big}).scalar_one()
    db, kafka = urlsplit(system.settings.database_url), system.settings.kafka_bootstrap_servers.split(",")[0]
    ports = {"closed": free_port(), "postgresql": db.port or 5432, "kafka": int(kafka.rsplit(":", 1)[1]),
             "slow IdP": idp.port, "ingest": system.settings.http_port}
    target = Target(public, org.slug, scim, token, admin_token, orgs.scim_base_url(public, flood.slug), flood_token,
                    big, small, ports)
    return target, {"big_user": created, "oidc_configured": _oidc(system, org.slug, org.id, admin_token, idp)}


class Sampler(threading.Thread):
    """Every half second: the oldest active query of this run's database, and ingest's RSS."""

    def __init__(self, system: AbuseSystem):
        super().__init__(daemon=True)
        self.system, self.halt = system, threading.Event()
        self.longest_query_s, self.max_rss_mb, self.max_active = 0.0, 0.0, 0

    def run(self) -> None:
        while not self.halt.wait(0.5):
            self.max_rss_mb = max(self.max_rss_mb, rss_mb(self.system.ingest_pid))
            try:
                active, oldest = active_queries(self.system.engine)
            except Exception:  # noqa: BLE001 - a sample lost to a saturated server is just skipped
                continue
            self.max_active, self.longest_query_s = max(self.max_active, active), max(self.longest_query_s, oldest)


def active_queries(engine: Engine) -> tuple[int, float]:
    """How many of this database's other sessions are running a query, and the oldest one's age (s)."""
    with engine.connect() as conn:
        count, oldest = conn.execute(text(
            "SELECT count(*), coalesce(max(EXTRACT(EPOCH FROM now() - query_start)), 0) FROM pg_stat_activity "
            "WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()")).one()
    return int(count), round(float(oldest), 1)
