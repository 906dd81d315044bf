"""Every kind of token listed and revoked on the real PostgreSQL: through the admin API, the internal API's
scoped service tokens and the CLI; last use written at most once a minute; revocation with the auth cache
on and off; the audit facts staged with each change."""

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select, text, update
from starlette.testclient import TestClient
from typer.testing import CliRunner

from core.settings import Settings
from core.tables import admin_tokens, outbox, scim_tokens, service_tokens
from domain import admin, orgs
from domain import service_tokens as services
from ingest.app import create_app

pytestmark = pytest.mark.integration

USERS = "/scim/{slug}/v2/Users"


def _app(settings: Settings, engine: Engine, cache_seconds: float) -> TestClient:
    return TestClient(
        create_app(settings.model_copy(update={"auth_cache_seconds": cache_seconds}), engine),
        base_url="http://testserver", raise_server_exceptions=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with _app(settings, engine, 0) as c:
        yield c


def _org(engine: Engine, settings: Settings) -> tuple[orgs.Org, str, str]:
    org, scim = orgs.create(engine, "t-" + uuid.uuid4().hex[:12], topics=settings.topics())
    return org, scim, admin.create_admin_token(engine, org.slug, "ops", topics=settings.topics())


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _facts(engine: Engine, org_id: str, kind: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.payload).where(outbox.c.key == f"{org_id}:{org_id}").order_by(outbox.c.id))
        return [r.payload for r in rows if r.payload["type"] == f"io.provisioner.{kind}"]


def test_the_admin_api_lists_the_orgs_tokens_by_prefix_and_revokes_one_now(client, settings, engine):
    org, scim, adm = _org(engine, settings)
    other, other_scim, _ = _org(engine, settings)
    assert client.get(USERS.format(slug=org.slug), headers=_bearer(scim)).status_code == 200
    listed = client.get("/admin/v1/org/tokens", headers=_bearer(adm))
    assert listed.status_code == 200, listed.text
    tokens = {t["kind"]: t for t in listed.json()["tokens"]}
    assert set(tokens) == {"admin", "scim"} and len(listed.json()["tokens"]) == 2  # not the other org's
    assert tokens["scim"]["prefix"] == scim[:12] and tokens["admin"]["prefix"] == adm[:12]
    assert tokens["scim"]["last_used_at"] and tokens["admin"]["last_used_at"]  # this very request
    assert scim not in listed.text and adm not in listed.text
    # another org's token is no token of this org's: 404, and it keeps working
    with engine.connect() as conn:
        other_id = str(conn.execute(select(scim_tokens.c.id).where(scim_tokens.c.org_id == other.id)).scalar_one())
    assert client.delete(f"/admin/v1/org/tokens/{other_id}", headers=_bearer(adm)).status_code == 404
    assert client.delete("/admin/v1/org/tokens/not-an-id", headers=_bearer(adm)).json() == {
        "status": 404,
        "detail": "no such token",
    }
    assert client.get(USERS.format(slug=other.slug), headers=_bearer(other_scim)).status_code == 200
    # revoke-now for a leak: the SCIM token stops at once (cache off), with no rotation
    revoked = client.delete(f"/admin/v1/org/tokens/{tokens['scim']['id']}", headers=_bearer(adm))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] and revoked.json()["live"] is False
    assert client.get(USERS.format(slug=org.slug), headers=_bearer(scim)).status_code == 401
    again = client.delete(f"/admin/v1/org/tokens/{tokens['scim']['id']}", headers=_bearer(adm))
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]
    facts = _facts(engine, org.id, "credential.revoked")
    assert [(f["data"]["kind"], f["data"]["token_id"], f["data"]["actor"]) for f in facts] == [
        ("scim", tokens["scim"]["id"], "admin-api:ops")
    ]  # once: revoking a revoked token changes nothing
    issued = _facts(engine, org.id, "credential.issued")
    assert [(f["data"]["kind"], f["data"]["prefix"]) for f in issued] == [("scim", scim[:12]), ("admin", adm[:12])]
    # an admin token revokes itself: the next call is 401
    assert client.delete(f"/admin/v1/org/tokens/{tokens['admin']['id']}", headers=_bearer(adm)).status_code == 200
    assert client.get("/admin/v1/org/tokens", headers=_bearer(adm)).status_code == 401


def test_a_revoked_token_works_until_the_auth_cache_expires_then_stops(settings, engine):
    org, scim, adm = _org(engine, settings)
    with _app(settings, engine, 1.0) as cached:
        url = USERS.format(slug=org.slug)
        listed = cached.get("/admin/v1/org/tokens", headers=_bearer(adm)).json()["tokens"]
        token_id = next(t["id"] for t in listed if t["kind"] == "scim")
        verified_at = time.monotonic()
        assert cached.get(url, headers=_bearer(scim)).status_code == 200  # verified, now cached for a second
        assert cached.delete(f"/admin/v1/org/tokens/{token_id}", headers=_bearer(adm)).status_code == 200
        if time.monotonic() - verified_at < 0.8:  # (on a loaded machine the cached second may be gone already)
            assert cached.get(url, headers=_bearer(scim)).status_code == 200  # still cached
        while cached.get(url, headers=_bearer(scim)).status_code == 200:
            # the cache's second, plus the slack of one request on a loaded machine
            assert time.monotonic() - verified_at < 1.0 + 2.0, "still accepted after the auth cache's seconds"
            time.sleep(0.05)
        assert cached.get(url, headers=_bearer(scim)).status_code == 401


def test_a_rotated_out_scim_token_can_be_revoked_before_its_overlap_ends(client, settings, engine):
    org, old, adm = _org(engine, settings)
    new = orgs.rotate_token(engine, org.slug, 3600, topics=settings.topics(), actor="cli")
    url = USERS.format(slug=org.slug)
    assert client.get(url, headers=_bearer(old)).status_code == 200  # in its overlap
    listed = client.get("/admin/v1/org/tokens", headers=_bearer(adm)).json()["tokens"]
    old_id = next(t["id"] for t in listed if t["prefix"] == old[:12])
    assert next(t for t in listed if t["id"] == old_id)["expires_at"]
    client.delete(f"/admin/v1/org/tokens/{old_id}", headers=_bearer(adm))
    assert client.get(url, headers=_bearer(old)).status_code == 401
    assert client.get(url, headers=_bearer(new)).status_code == 200
    assert [f["data"]["reason"] for f in _facts(engine, org.id, "credential.issued")] == ["created", "created", "rotated"]


def test_last_use_is_written_at_most_once_a_minute(client, settings, engine):
    org, scim, adm = _org(engine, settings)

    def last_used() -> object:
        with engine.connect() as conn:
            return conn.execute(select(scim_tokens.c.last_used_at).where(scim_tokens.c.org_id == org.id)).scalar_one()

    url = USERS.format(slug=org.slug)
    assert last_used() is None
    client.get(url, headers=_bearer(scim))
    first = last_used()
    assert first is not None
    for _ in range(5):
        client.get(url, headers=_bearer(scim))
    assert last_used() == first  # no write per request
    with engine.begin() as conn:  # a minute later
        conn.execute(
            update(scim_tokens).where(scim_tokens.c.org_id == org.id).values(last_used_at=func.now() - timedelta(seconds=61))
        )
    aged = last_used()
    client.get(url, headers=_bearer(scim))
    assert last_used() > aged


def test_a_scoped_service_token_acts_only_for_its_orgs(client, settings, engine):
    mine, _, _ = _org(engine, settings)
    theirs, _, _ = _org(engine, settings)
    scoped = services.create(engine, "app-eu", [mine.slug])
    unscoped = services.create(engine, "app")
    with pytest.raises(services.ServiceTokenError):
        services.create(engine, "app", ["no-such-org"])

    def login(token: str, slug: str) -> int:
        body = {"org": slug, "email": f"p-{uuid.uuid4().hex[:6]}@example.test"}
        return client.post("/internal/v1/logins", json=body, headers=_bearer(token)).status_code

    before = _outbox_count(engine)
    assert login(scoped, theirs.slug) == 403
    refused = client.post("/internal/v1/logins", json={"org": theirs.slug, "email": "x@example.test"}, headers=_bearer(scoped))
    assert refused.json() == {"status": 403, "detail": "this service token is not allowed to act for that organisation"}
    assert _outbox_count(engine) == before  # refused: nothing recorded
    assert login(scoped, mine.slug) == 202
    assert login(unscoped, theirs.slug) == 202  # unscoped: every org, as before
    assert login(scoped, "no-such-org") == 403  # an unknown org is another org
    # revoked: 401 at once here (the suite turns the token cache off; otherwise within auth_cache_seconds)
    with engine.begin() as conn:
        row = conn.execute(select(service_tokens).where(service_tokens.c.token_hash == _hash(scoped))).one()
    from domain import tokens

    with engine.begin() as conn:
        assert tokens.revoke(conn, "service", row)
    assert login(scoped, mine.slug) == 401


def _hash(token: str) -> bytes:
    from core import credentials

    return credentials.token_hash(token)


def _outbox_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(outbox)).scalar_one())


def test_the_cli_lists_and_revokes_every_kind(settings, engine, monkeypatch):
    from cli.main import app

    monkeypatch.setattr("cli._common.load_settings", lambda: settings)
    monkeypatch.setattr("cli.orgs.load_settings", lambda: settings)
    monkeypatch.setattr("cli.tokens.load_settings", lambda: settings)
    org, scim, adm = _org(engine, settings)
    svc = services.create(engine, "app-cli", [org.slug])
    run = CliRunner().invoke
    listed = run(app, ["admin-token", "list", org.slug, "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.output)
    assert row["prefix"] == adm[:12] and adm not in listed.output
    scim_rows = json.loads(run(app, ["org", "scim-tokens", org.slug, "--json"]).output)
    assert [r["prefix"] for r in scim_rows] == [scim[:12]]
    services_listed = json.loads(run(app, ["service-token", "list", "--json"]).output)
    svc_row = next(r for r in services_listed if r["prefix"] == svc[:12])
    assert svc_row["org_ids"] == [org.id]
    assert run(app, ["org", "revoke-scim-token", org.slug, scim_rows[0]["id"]]).exit_code == 0
    assert run(app, ["admin-token", "revoke", row["id"]]).exit_code == 0
    assert run(app, ["service-token", "revoke", svc_row["id"]]).exit_code == 0
    refused = run(app, ["admin-token", "revoke", str(uuid.uuid4())])
    assert refused.exit_code == 2 and "no such token" in refused.output
    with engine.connect() as conn:
        assert orgs.authenticate(conn, scim) is None and admin.authenticate(conn, adm) is None
        assert services.authenticate(conn, svc) is None
        revoked = select(func.count()).select_from(admin_tokens).where(admin_tokens.c.revoked_at.isnot(None))
        assert conn.execute(revoked.where(admin_tokens.c.org_id == org.id)).scalar_one() == 1
    assert [f["data"]["actor"] for f in _facts(engine, org.id, "credential.revoked")] == ["cli", "cli"]


def test_migration_gave_every_existing_token_an_id_and_prefix(engine):
    with engine.connect() as conn:
        for table in ("scim_tokens", "admin_tokens", "service_tokens"):
            assert conn.execute(text(f"SELECT count(*) FROM {table} WHERE id IS NULL OR prefix = ''")).scalar_one() == 0
