"""IdP health per org over real HTTP on the real PostgreSQL: an org whose IdP keeps sending a
revoked token shows `failing_auth` in the admin API and the CLI within a minute; a working one
is healthy, with its last successful write and its token's last use."""

import json
import subprocess
import sys
import time
import uuid

import httpx
import pytest
from sqlalchemy import select

from core.settings import to_env
from core.tables import scim_tokens
from domain import admin, orgs, tokens

pytestmark = pytest.mark.integration

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def _health(server: str, admin_token: str) -> dict:
    r = httpx.get(f"{server}/admin/v1/org/health", headers={"Authorization": f"Bearer {admin_token}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def _until(condition, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while True:
        found = condition()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


def test_a_revoked_token_shows_failing_auth_within_a_minute(server, engine, settings, scim_org):
    admin_token = admin.create_admin_token(engine, scim_org.slug)
    assert _health(server, admin_token)["state"] == "not_connected"
    email = f"health-{uuid.uuid4().hex[:8]}@example.test"
    assert scim_org.client.post("/Users", json={"schemas": [USER], "userName": email}).status_code == 201
    assert scim_org.client.get("/Users", params={"count": 1}).status_code == 200
    # both requests are in once the audit writer's batch is (the read's row is batched, the write's inline)
    def synced():
        h = _health(server, admin_token)
        return h["state"] == "healthy" and h["last_write_at"] and h["last_hour"]["2xx"] >= 2 and h

    healthy = _until(synced)
    assert healthy, _health(server, admin_token)
    assert healthy["scim_tokens"][0]["last_used_at"] is not None

    with engine.begin() as conn:
        row = conn.execute(select(scim_tokens).where(scim_tokens.c.org_id == scim_org.id).with_for_update()).first()
        tokens.revoke(conn, "scim", row)
    started = time.monotonic()
    for _ in range(3):  # the IdP keeps trying with the revoked token
        assert scim_org.client.get("/Users", params={"count": 1}).status_code == 401
    failing = _until(lambda: (h := _health(server, admin_token))["state"] == "failing_auth" and h)
    assert failing, _health(server, admin_token)
    assert time.monotonic() - started < 60
    assert failing["last_auth_failure_at"] > failing["last_success_at"]
    assert _until(lambda: _health(server, admin_token)["last_hour"]["401"] >= 3), _health(server, admin_token)
    assert failing["scim_tokens"][0]["live"] is False and failing["scim_tokens"][0]["revoked_at"]

    env = to_env(settings)
    listed = subprocess.run([sys.executable, "-m", "cli", "org", "health", "--state", "failing_auth", "--json"],
                            env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert scim_org.slug in [json.loads(line)["org"] for line in listed.stdout.splitlines()], listed.stderr
    one = subprocess.run([sys.executable, "-m", "cli", "org", "health", scim_org.slug, "--json"], env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert json.loads(one.stdout)["state"] == "failing_auth"

    # a new token pasted at the IdP: healthy again at its first success
    token = orgs.rotate_token(engine, scim_org.slug, 0)
    assert httpx.get(f"{scim_org.base_url}/Users", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200
    assert _until(lambda: _health(server, admin_token)["state"] == "healthy"), _health(server, admin_token)


def test_a_disabled_org_is_disabled_and_a_bad_state_is_refused(server, engine, settings, scim_org):
    admin_token = admin.create_admin_token(engine, scim_org.slug)
    orgs.update_settings(engine, scim_org.slug, scim_enabled=False)
    assert _health(server, admin_token)["state"] == "disabled"
    bad = subprocess.run([sys.executable, "-m", "cli", "org", "health", "--state", "asleep"], env=to_env(settings),
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "--state" in bad.stderr
