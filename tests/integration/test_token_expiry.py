"""SCIM tokens with a lifetime on the real PostgreSQL: issued by the admin API and the CLI, refused
past their end, shown in the IdP health, and one `credential.expiring` per token before the end
(from any number of processes at once), none for a token a rotation replaced or one revoked."""

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, select, update
from starlette.testclient import TestClient
from typer.testing import CliRunner

from cli.main import app
from core import credentials
from core.settings import Settings, to_env
from core.tables import outbox, scim_tokens
from domain import admin, orgs, token_expiry
from ingest.app import create_app
from tests.conftest import wait_for

pytestmark = pytest.mark.integration

USERS = "/scim/{slug}/v2/Users"
WEEKS_2 = timedelta(days=14)


@pytest.fixture(scope="module")
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"auth_cache_seconds": 0}), engine)
    with TestClient(app, base_url="http://testserver", raise_server_exceptions=False) as c:
        yield c


def _org(engine: Engine, settings: Settings) -> tuple[orgs.Org, str, dict[str, str]]:
    org, scim = orgs.create(engine, "t-" + uuid.uuid4().hex[:12], topics=settings.topics())
    adm = admin.create_admin_token(engine, org.slug, "ops", topics=settings.topics())
    return org, scim, {"Authorization": f"Bearer {adm}"}


def _warnings(engine: Engine, org_id: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.payload).where(outbox.c.key == f"{org_id}:{org_id}").order_by(outbox.c.id))
        return [r.payload for r in rows if r.payload["type"] == "io.provisioner.credential.expiring"]


def _rotate(client: TestClient, headers: dict[str, str], days: int | None) -> dict:
    response = client.post("/admin/v1/org/scim-token/rotate", headers=headers, json={"expires_in_days": days})
    assert response.status_code == 200, response.text
    body: dict = response.json()
    return body


def _token_row(engine: Engine, token: str):
    with engine.connect() as conn:
        return conn.execute(select(scim_tokens).where(scim_tokens.c.token_hash == credentials.token_hash(token))).one()


def test_a_lifetime_from_the_admin_api_ends_the_token_and_shows_in_the_health(client, settings, engine):
    org, _, headers = _org(engine, settings)
    rotated = _rotate(client, headers, 90)
    row = _token_row(engine, rotated["scim_token"])
    assert abs(row.expires_at - (datetime.now(UTC) + timedelta(days=90))) < timedelta(minutes=1)
    assert abs(datetime.fromisoformat(rotated["expires_at"]) - row.expires_at) < timedelta(seconds=5)
    health = client.get("/admin/v1/org/health", headers=headers).json()
    newest = next(t for t in health["scim_tokens"] if t["id"] == str(row.id))
    assert newest["expires_soon"] is False and newest["expires_at"]

    soon = _rotate(client, headers, 10)  # within the 14 days' warning
    health = client.get("/admin/v1/org/health", headers=headers).json()
    by_prefix = {t["prefix"]: t for t in health["scim_tokens"]}
    assert by_prefix[_token_row(engine, soon["scim_token"]).prefix]["expires_soon"] is True
    assert by_prefix[row.prefix]["expires_soon"] is False  # replaced: its overlap end is no news

    with engine.begin() as conn:  # the end passes
        conn.execute(update(scim_tokens).where(scim_tokens.c.id == _token_row(engine, soon["scim_token"]).id)
                     .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))  # fmt: skip
    refused = client.get(USERS.format(slug=org.slug), headers={"Authorization": f"Bearer {soon['scim_token']}"})
    assert refused.status_code == 401


@pytest.mark.parametrize("days", [0, -1, 3651, "30", 1.5, True])
def test_a_lifetime_that_is_no_whole_number_of_days_is_refused_and_nothing_changes(client, settings, engine, days):
    org, scim, headers = _org(engine, settings)
    with engine.connect() as conn:
        before = conn.execute(select(scim_tokens).where(scim_tokens.c.org_id == org.id)).all()
    response = client.post("/admin/v1/org/scim-token/rotate", headers=headers, json={"expires_in_days": days})
    assert response.status_code == 422, response.text
    assert "expires_in_days" in response.text
    with engine.connect() as conn:
        assert conn.execute(select(scim_tokens).where(scim_tokens.c.org_id == org.id)).all() == before


def test_no_body_is_still_a_token_without_end(client, settings, engine):
    _, _, headers = _org(engine, settings)
    response = client.post("/admin/v1/org/scim-token/rotate", headers=headers)
    assert response.status_code == 200 and response.json()["expires_at"] is None
    assert _token_row(engine, response.json()["scim_token"]).expires_at is None


def test_one_warning_per_token_from_every_process_at_once(client, settings, engine):
    org, _, headers = _org(engine, settings)
    first = _rotate(client, headers, 10)
    now = datetime.now(UTC)
    results: list[int] = []
    workers = [
        threading.Thread(target=lambda: results.append(token_expiry.warn_expiring(engine, settings.topics(), now, WEEKS_2)))
        for _ in range(4)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    [warning] = _warnings(engine, org.id)  # one, whoever (the test app's own audit writer included) got there
    row = _token_row(engine, first["scim_token"])
    assert warning["data"] == {"kind": "scim", "token_id": str(row.id), "prefix": row.prefix,
                               "expires_at": row.expires_at.isoformat()}  # fmt: skip
    assert warning["subject"] == f"orgs/{org.id}/credentials/{row.id}" and warning["orgslug"] == org.slug
    assert token_expiry.warn_expiring(engine, settings.topics(), now, WEEKS_2) == 0

    _rotate(client, headers, None)  # replaced, then a far end, then revoked: no more warnings
    far = _rotate(client, headers, 365)
    revoked = _rotate(client, headers, 3)
    revoked_row = _token_row(engine, revoked["scim_token"])
    client.delete(f"/admin/v1/org/tokens/{revoked_row.id}", headers=headers)
    token_expiry.warn_expiring(engine, settings.topics(), datetime.now(UTC), WEEKS_2)
    # the test app's own warner (every second) may have warned of the 3-day token in the moment
    # between its rotation and its revocation; nothing warns of it once revoked
    first_warning, *later = _warnings(engine, org.id)
    assert first_warning == warning
    revoked_at = _token_row(engine, revoked["scim_token"]).revoked_at
    assert all(w["data"]["token_id"] == str(revoked_row.id) and datetime.fromisoformat(w["time"]) <= revoked_at
               for w in later), later  # fmt: skip
    assert _token_row(engine, far["scim_token"]).expiry_notice_at is not None  # replaced by the last rotation


def test_the_running_server_warns_by_itself(settings, engine, server):
    """The ingest process's audit writer stages the warning (every idp_health_refresh_seconds)."""
    org, _, headers = _org(engine, settings)
    rotated = httpx.post(f"{server}/admin/v1/org/scim-token/rotate", headers=headers, json={"expires_in_days": 2}, timeout=10)
    assert rotated.status_code == 200, rotated.text
    wait_for(lambda: len(_warnings(engine, org.id)) == 1, timeout=20, message="credential.expiring from the server")


def test_the_cli_issues_a_token_with_a_lifetime_and_refuses_a_bad_one(settings, engine, monkeypatch):
    org, _, _ = _org(engine, settings)
    for key, value in to_env(settings).items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["org", "rotate-token", org.slug, "--expires-in-days", "30", "--json"])
    assert result.exit_code == 0, result.output
    assert _token_row(engine, json.loads(result.output)["scim_token"]).expires_at is not None
    refused = CliRunner().invoke(app, ["org", "rotate-token", org.slug, "--expires-in-days", "0"])
    assert refused.exit_code != 0 and "expires_in_days" in refused.output
