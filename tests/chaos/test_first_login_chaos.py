"""Exactly-once first-login billing under faults (ARCHITECTURE §3.4), checked by `billing verify`.

Thousands of first logins arrive while the relay and the workers are killed with SIGKILL at
random moments and the Kafka broker is restarted once. Afterwards the independent verifier
must find every fact's event, no event without a fact, and no duplicate id.
"""

import concurrent.futures
import os
import random
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from domain import service_tokens
from tests.conftest import wait_for
from workers.billing.verify import verify

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
STACK = Path(__file__).resolve().parents[2] / "deploy" / "local" / "stack.sh"
PEOPLE = int(os.environ.get("PROVISIONER_CHAOS_PEOPLE", "2000"))

pytestmark = pytest.mark.chaos


def _chaos(pipeline, log: list[str], seed: int, done: threading.Event, finished: threading.Event) -> None:
    """A fixed list of faults at random moments: SIGKILLs of every role and one broker restart.

    The thread lives until the test ends: the children it starts are tied to it (they get
    SIGTERM when the thread that started them exits, so none outlives a killed test run).
    """
    rng = random.Random(seed)
    roles = {"relay": ("relay",), "membership": ("worker", "membership"), "billing": ("worker", "billing")}
    faults = ["relay", "membership", "billing", "kafka", "relay", "billing", "membership", "relay"]
    for fault in faults:
        time.sleep(rng.uniform(0.5, 2.0))
        if fault == "kafka":
            subprocess.run(["bash", str(STACK), "restart-kafka"], check=True, capture_output=True, timeout=120)
            log.append("restart kafka broker")
            continue
        pipeline.kill(fault)
        log.append(f"kill -9 {fault}")
        time.sleep(rng.uniform(0.1, 1.0))
        pipeline.start(fault, *roles[fault])
    for role, args in roles.items():  # as the supervisor would: whatever died, restart it
        if pipeline.children[role].poll() is not None:
            pipeline.start(role, *args)
            log.append(f"restart exited {role}")
    finished.set()
    done.wait()


def test_first_logins_bill_exactly_once_despite_kills_and_a_broker_restart(pipeline, scim_org, engine, settings, server):
    emails = [f"chaos{i:05d}@acme.test" for i in range(PEOPLE)]
    token = service_tokens.create(engine, "chaos")
    app = httpx.Client(base_url=server, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def provision(email):
        r = scim_org.client.post("/Users", json={"schemas": [USER], "userName": email})
        assert r.status_code == 201, r.text

    def login(email):
        r = app.post("/internal/v1/logins", json={"org": scim_org.slug, "email": email})
        assert r.status_code == 202, r.text

    log: list[str] = []
    done, finished = threading.Event(), threading.Event()
    chaos = threading.Thread(target=_chaos, args=(pipeline, log, 20261128, done, finished))
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        list(pool.map(provision, emails))
        chaos.start()
        # first logins, then second logins (which must change nothing), spread over the faults
        for chunk in range(0, PEOPLE + PEOPLE // 2, 50):
            batch = (emails + emails[: PEOPLE // 2])[chunk : chunk + 50]
            list(pool.map(login, batch))
            if not finished.is_set():
                time.sleep(0.3)
        finished.wait()
    app.close()
    print("faults injected:", "; ".join(log))
    assert "restart kafka broker" in log and sum(entry.startswith("kill -9") for entry in log) == 7

    def settled():
        with engine.connect() as conn:
            facts = conn.execute(text("SELECT count(*) FROM seats WHERE org_id = :o"), {"o": scim_org.id}).scalar()
        if facts < PEOPLE:
            return None
        report = verify(settings, engine, [scim_org.id])
        return report if not report.pending and report.first_login_events >= PEOPLE else None

    try:
        report = wait_for(settled, timeout=240, interval=2.0, message="every first login billed and relayed")
    finally:
        with engine.connect() as conn:
            def of_org(sql: str) -> object:
                return conn.execute(text(sql), {"o": scim_org.id}).scalar()

            print("state:", {
                "facts": of_org("SELECT count(*) FROM seats WHERE org_id = :o"),
                "active": of_org("SELECT count(*) FROM members WHERE org_id = :o AND status = 'active'"),
                "pending_logins": of_org("SELECT count(*) FROM pending_logins WHERE org_id = :o"),
                "outbox": conn.execute(text("SELECT topic, count(*) FROM outbox GROUP BY topic")).all(),
                "dead_letters": conn.execute(text("SELECT consumer, left(error, 200) FROM dead_letters LIMIT 3")).all(),
                "alive": {name: proc.poll() is None for name, proc in pipeline.children.items()},
            })
        done.set()
    done.set()
    chaos.join()
    assert report.clean, report.as_dict()
    assert (report.facts, report.first_login_events) == (PEOPLE, PEOPLE)
