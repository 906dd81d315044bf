"""`provisioner reconcile SLUG [--fix]` on the real pipeline: an org provisioned and signed in over
the real paths, then one drift of each kind injected behind the system's back (rows changed in
PostgreSQL as a bug or a manual edit would), found by `reconcile`, repaired by `--fix` through the
events consumers expect, after which `reconcile` and `billing verify` are clean."""

import json
import os
import subprocess
import sys

import httpx
import pytest
from sqlalchemy import text

from core.settings import to_env
from domain import service_tokens
from events import catalogue as c
from tests.conftest import events_of_org, wait_for
from workers.billing import first_login_event_id
from workers.billing.verify import verify_until_settled

USER = "urn:ietf:params:scim:schemas:core:2.0:User"

pytestmark = pytest.mark.e2e


def cli(settings, *args: str) -> tuple[int, dict]:
    done = subprocess.run([sys.executable, "-m", "cli", *args], env={**os.environ, **to_env(settings)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def idle(engine, org_id):
    """The org's outbox empty and every member event consumed by the billing worker."""
    with engine.connect() as conn:
        pending = conn.execute(text("SELECT count(*) FROM outbox WHERE payload->>'orgid' = :o"), {"o": org_id}).scalar()
    return pending == 0


def settle(settings, engine, org_id):
    wait_for(lambda: idle(engine, org_id), timeout=30, message="the org's outbox drained")
    report = verify_until_settled(settings, engine, 30, [org_id])
    assert report.clean and not report.pending, report.as_dict()


@pytest.fixture
def people(pipeline, scim_org, engine, settings, server):
    """Seven SCIM users; the first, second and fourth signed in once (a seat each)."""
    ids = []
    for i in range(7):
        email = f"rec{i}@acme.test"
        r = scim_org.client.post("/Users", json={"schemas": [USER], "userName": email, "emails": [{"value": email}]})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])

    def members():
        with engine.connect() as conn:
            query = text("SELECT scim_user_id, id::text FROM members WHERE org_id = :o")
            rows = dict(conn.execute(query, {"o": scim_org.id}).all())
        return rows if len(rows) == 7 else None

    by_user = wait_for(members, timeout=30, message="seven members")
    token = service_tokens.create(engine, "reconcile")
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {token}"}, timeout=10) as app:
        for i in (0, 1, 3):
            assert app.post("/internal/v1/logins", json={"org": scim_org.slug, "email": f"rec{i}@acme.test"}).status_code == 202

    def seats():
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM seats WHERE org_id = :o"), {"o": scim_org.id}).scalar() == 3

    wait_for(seats, timeout=30, message="three seats")
    settle(settings, engine, scim_org.id)
    return [(user, by_user[user]) for user in ids]


def test_reconcile_finds_each_injected_drift_and_fix_repairs_it_with_the_expected_events(people, scim_org, engine, settings):
    org = scim_org.id
    code, clean = cli(settings, "reconcile", scim_org.slug, "--min-age", "0", "--json")
    assert code == 0 and clean["drifts"] == []
    (u0, m0), (_, m1), (_, m2), (u3, m3), (u4, m4), (u5, m5), (_, m6) = people
    with engine.begin() as conn:
        # the billing worker missed m0's deactivation: SCIM and member say deactivated, the seat is held
        conn.execute(text("UPDATE scim_resources SET data = data || '{\"active\": false}' WHERE org_id = :o AND id = :u"),
                     {"o": org, "u": u0})
        conn.execute(text("UPDATE members SET status = 'deactivated' WHERE id = :m"), {"m": m0})
        # m2 signed in, but the billing worker never saw it: active, no seat
        conn.execute(text("UPDATE members SET status = 'active', first_login_at = now() WHERE id = :m"), {"m": m2})
        # the IdP deactivated u3, the membership worker never applied it
        conn.execute(text("UPDATE scim_resources SET data = data || '{\"active\": false}' WHERE org_id = :o AND id = :u"),
                     {"o": org, "u": u3})
        # u4's member is gone; u5's SCIM user is gone
        conn.execute(text("DELETE FROM members WHERE id = :m"), {"m": m4})
        conn.execute(text("DELETE FROM scim_resources WHERE org_id = :o AND id = :u"), {"o": org, "u": u5})
        # m6's first login is in the ledger, its billing event was lost before it reached the outbox
        conn.execute(text("UPDATE members SET status = 'active', first_login_at = now() WHERE id = :m"), {"m": m6})
        conn.execute(text(
            "INSERT INTO seats (org_id, member_id, state, version, first_login_at, first_login_event_id) "
            "VALUES (:o, :m, 'held', 1, now(), :e)"
        ), {"o": org, "m": m6, "e": first_login_event_id(org, m6)})  # fmt: skip
    expected = {
        ("seat_held_by_inactive_member", m0), ("active_member_without_seat", m2), ("member_status_differs", m3),
        ("scim_user_without_member", None), ("member_without_scim_user", m5), ("billing_event_missing", m6),
    }
    code, found = cli(settings, "reconcile", scim_org.slug, "--min-age", "0", "--json")
    assert code == 1
    assert {(d["kind"], d["member_id"]) for d in found["drifts"]} == expected, found
    assert next(d for d in found["drifts"] if d["kind"] == "scim_user_without_member")["scim_user_id"] == u4
    # state changed within the last hour may still be on its way through the pipeline: left alone
    code, young = cli(settings, "reconcile", scim_org.slug, "--min-age", "3600", "--json")
    assert code == 0 and young["drifts"] == [], young

    code, fixed = cli(settings, "reconcile", scim_org.slug, "--min-age", "0", "--fix", "--json")
    assert code == 0 and fixed["unrepaired"] == 0, fixed
    staged = {d["kind"]: d["staged"] for d in fixed["drifts"]}
    assert staged == {
        "seat_held_by_inactive_member": [c.BILLING_SEAT_RELEASED.type],
        "active_member_without_seat": [c.BILLING_FIRST_LOGIN.type],
        "member_status_differs": [c.MEMBER_DEACTIVATED.type],
        "scim_user_without_member": [c.MEMBER_CREATED.type],
        "member_without_scim_user": [c.MEMBER_REMOVED.type],
        "billing_event_missing": [c.BILLING_FIRST_LOGIN.type],
    }

    # the repairs' events flow like any others: m3's deactivation releases its seat, u4 has a member again
    def seat_of(member):
        with engine.connect() as conn:
            return conn.execute(text("SELECT state FROM seats WHERE member_id = :m"), {"m": member}).scalar()

    wait_for(lambda: seat_of(m3) == "released", timeout=30, message="m3's seat released by the billing worker")
    settle(settings, engine, org)
    code, after = cli(settings, "reconcile", scim_org.slug, "--min-age", "0", "--json")
    assert code == 0 and after["drifts"] == [], after
    members_topic = events_of_org(settings, [settings.topic_members], org)
    with engine.connect() as conn:
        new_m4 = conn.execute(text("SELECT id::text FROM members WHERE org_id = :o AND scim_user_id = :u"),
                              {"o": org, "u": u4}).scalar()
    assert any(e["type"] == c.MEMBER_CREATED.type and e["data"]["member_id"] == new_m4 for e in members_topic)
    assert any(e["type"] == c.MEMBER_REMOVED.type and e["data"]["member_id"] == m5 for e in members_topic)
    assert any(e["type"] == c.MEMBER_DEACTIVATED.type and e["data"]["member_id"] == m3 for e in members_topic)
    billing = events_of_org(settings, [settings.topic_billing], org)
    first_logins = [e["data"]["member_id"] for e in billing if e["type"] == c.BILLING_FIRST_LOGIN.type]
    assert sorted(first_logins) == sorted([people[i][1] for i in (0, 1, 2, 3)] + [m6])  # each once
    released = {e["data"]["member_id"] for e in billing if e["type"] == c.BILLING_SEAT_RELEASED.type}
    assert released == {m0, m3}


def test_reconcile_refuses_an_unknown_org(settings, pipeline):
    done = subprocess.run([sys.executable, "-m", "cli", "reconcile", "no-such-org"], env={**os.environ, **to_env(settings)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "error:" in done.stderr
