"""Email conflicts with existing accounts, acquisition, and manual provisioning, end to end."""

import time

import pytest
from sqlalchemy import text

from domain import admin, domains, orgs, service_tokens
from domain.accounts import register
from domain.members import list_members
from domain.postgres import SqlUnitOfWork
from tests.conftest import wait_for
from tests.e2e.test_billing import billing_events, login, of_type

USER = "urn:ietf:params:scim:schemas:core:2.0:User"

pytestmark = pytest.mark.e2e


def members_by_email(engine, org_id):
    with engine.connect() as conn:
        return {m["email"].lower(): m for m in list_members(conn, org_id) if m["email"]}


@pytest.fixture
def app_client(settings, engine, server):
    import httpx

    token = service_tokens.create(engine, "tests")
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        yield client


def test_scim_push_of_an_existing_account_is_a_conflict_until_acquired(pipeline, scim_org, engine, settings, app_client):
    r = app_client.post("/internal/v1/accounts", json={"email": "Solo@Example.test", "display_name": "Solo"})
    assert r.status_code == 201, r.text
    assert app_client.post("/internal/v1/accounts", json={"email": "solo@example.test"}).status_code == 200  # idempotent
    started = time.monotonic()
    uid = scim_org.client.post("/Users", json={"schemas": [USER], "userName": "solo@example.test"}).json()["id"]
    member = wait_for(
        lambda: (
            members_by_email(engine, scim_org.id).get("solo@example.test", {}).get("status") == "conflict"
            and members_by_email(engine, scim_org.id)["solo@example.test"]
        ),
        message="conflict",
    )
    print(f"SCIM push to conflict shown: {time.monotonic() - started:.2f}s")
    assert "already has an account" in member["error"]
    with engine.connect() as conn:
        (conflict,) = admin.list_conflicts(conn, orgs.get(conn, scim_org.slug))
    assert conflict["email"] == "solo@example.test" and conflict["status"] == "open"

    with engine.begin() as conn:
        uow, org = SqlUnitOfWork(conn, settings.topics()), orgs.get(conn, scim_org.slug)
        domains.add(uow, org, "example.test", "support:test", verified=True)  # the org may acquire accounts on it
        result = admin.resolve(uow, org, "test", "SOLO@example.test", acquire=True)
    assert result["status"] == "acquired"
    member = members_by_email(engine, scim_org.id)["solo@example.test"]
    assert member["status"] == "provisioned" and member["account_id"] == conflict["account_id"]
    # later SCIM updates apply to the acquired member
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": "Solo S"}],
    }
    assert scim_org.client.patch(f"/Users/{uid}", json=patch).status_code in (200, 204)
    wait_for(
        lambda: members_by_email(engine, scim_org.id)["solo@example.test"]["display_name"] == "Solo S", message="update applied"
    )
    # and its first login bills once
    login(app_client, scim_org.slug, "solo@example.test")
    login(app_client, scim_org.slug, "solo@example.test")
    wait_for(lambda: of_type(billing_events(settings, scim_org.id), "first_login"), timeout=30, message="billed")
    time.sleep(1)
    assert len(of_type(billing_events(settings, scim_org.id), "first_login")) == 1


def test_account_registered_after_the_member_is_flagged_too_and_can_be_dismissed(pipeline, scim_org, engine, settings):
    scim_org.client.post("/Users", json={"schemas": [USER], "userName": "later@example.test"})
    wait_for(lambda: "later@example.test" in members_by_email(engine, scim_org.id), message="member")
    with engine.begin() as conn:
        register(SqlUnitOfWork(conn, settings.topics()), "LATER@example.test")
    wait_for(lambda: members_by_email(engine, scim_org.id)["later@example.test"]["status"] == "conflict", message="conflict")
    with engine.begin() as conn:
        admin.resolve(
            SqlUnitOfWork(conn, settings.topics()), orgs.get(conn, scim_org.slug), "test", "later@example.test", acquire=False
        )
    member = members_by_email(engine, scim_org.id)["later@example.test"]
    assert member["status"] == "provisioned" and member["account_id"] is None
    with engine.connect() as conn:
        assert admin.list_conflicts(conn, orgs.get(conn, scim_org.slug), "dismissed")[0]["status"] == "dismissed"


def test_manual_provisioning_toggle(pipeline, scim_org, engine, settings):
    with engine.begin() as conn:
        org = admin.change_settings(
            SqlUnitOfWork(conn, settings.topics()), orgs.get(conn, scim_org.slug), "test", manual_provisioning=False
        )
    with engine.begin() as conn, pytest.raises(admin.AdminError) as refused:
        admin.add_member(SqlUnitOfWork(conn, settings.topics()), org, "test", "hand@example.test")
    assert refused.value.status == 403 and "manual_provisioning" in str(refused.value)
    with engine.begin() as conn:
        org = admin.change_settings(SqlUnitOfWork(conn, settings.topics()), org, "test", manual_provisioning=True)
        admin.add_member(SqlUnitOfWork(conn, settings.topics()), org, "test", "hand@example.test", "Hand")
    member = wait_for(lambda: members_by_email(engine, scim_org.id).get("hand@example.test"), message="manual member")
    assert (member["status"], member["source"]) == ("provisioned", "manual")
    with engine.connect() as conn:
        audited = conn.execute(
            text("SELECT count(*) FROM member_activity WHERE org_id = :o AND source = 'manual'"), {"o": scim_org.id}
        ).scalar()
    assert audited == 1


def test_scim_refused_while_disabled(scim_org, engine, settings):
    with engine.begin() as conn:
        admin.change_settings(SqlUnitOfWork(conn, settings.topics()), orgs.get(conn, scim_org.slug), "test", scim_enabled=False)
    r = scim_org.client.post("/Users", json={"schemas": [USER], "userName": "nope@example.test"})
    assert r.status_code == 401
    with engine.begin() as conn:
        admin.change_settings(SqlUnitOfWork(conn, settings.topics()), orgs.get(conn, scim_org.slug), "test", scim_enabled=True)
    assert scim_org.client.get("/Users", params={"filter": 'userName eq "nope@example.test"'}).json()["totalResults"] == 0
