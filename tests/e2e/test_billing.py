"""Logins through the internal API → first-login and seat events on the real `billing` topic."""

import concurrent.futures

import httpx
import orjson
import pytest

from domain import service_tokens
from domain.postgres import SqlUnitOfWork
from tests.conftest import wait_for
from workers.billing.verify import read_topic, verify

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def app_client(settings, engine, server):
    token = service_tokens.create(engine, "tests")
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        yield client


def login(client, org, email, method="password"):
    r = client.post("/internal/v1/logins", json={"org": org, "email": email, "method": method})
    assert r.status_code == 202, r.text
    return r.json()


def billing_events(settings, org_id):
    events = [orjson.loads(v) for v in read_topic(settings)]
    return [e for e in events if e["orgid"] == org_id]


def of_type(events, suffix):
    return [e for e in events if e["type"].endswith(suffix)]


def provision(scim_org, email, **extra):
    body = {"schemas": [USER], "userName": email, "emails": [{"value": email, "primary": True}], **extra}
    r = scim_org.client.post("/Users", json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def emails_of(engine, member_ids):
    """The members' emails, from PostgreSQL: billing events carry member ids only."""
    from sqlalchemy import text

    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, email_ci FROM members WHERE id = ANY(CAST(:ids AS uuid[]))"), {"ids": member_ids})
        return {str(r.id): r.email_ci for r in rows}


def test_n_members_logging_in_twice_are_billed_exactly_n_times(pipeline, scim_org, app_client, settings, engine):
    emails = [f"person{i}@acme.test" for i in range(40)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda e: provision(scim_org, e), emails))
        # the first login races the membership being applied: it must still count once
        list(pool.map(lambda e: login(app_client, scim_org.slug, e), emails))
        list(pool.map(lambda e: login(app_client, scim_org.slug, e.upper(), "magic_link"), emails))
    wait_for(
        lambda: len(of_type(billing_events(settings, scim_org.id), "first_login")) >= len(emails), timeout=60, message="billing"
    )
    events = billing_events(settings, scim_org.id)
    first = of_type(events, "first_login")
    assert sorted(emails_of(engine, [e["data"]["member_id"] for e in first]).values()) == sorted(emails)
    assert len({e["id"] for e in first}) == len(emails)
    assert all(e["data"]["source"] == "scim" and e["data"]["first_login_at"] for e in first)
    report = verify(settings, engine, [scim_org.id])
    assert report.clean and report.facts == len(emails), report.as_dict()


def test_seat_released_at_deactivation_and_restored_at_the_next_sign_in(pipeline, scim_org, app_client, settings):
    uid = provision(scim_org, "seat@acme.test")
    login(app_client, scim_org.slug, "seat@acme.test")
    wait_for(lambda: of_type(billing_events(settings, scim_org.id), "first_login"), timeout=30, message="first login")

    def set_active(value):
        body = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": value}]}
        assert scim_org.client.patch(f"/Users/{uid}", json=body).status_code in (200, 204)

    set_active(False)
    wait_for(lambda: of_type(billing_events(settings, scim_org.id), "seat.released"), timeout=30, message="released")
    set_active(True)  # reactivated: costs nothing until the person signs in again
    provision(scim_org, "sentinel@acme.test")
    login(app_client, scim_org.slug, "sentinel@acme.test")  # through the same pipeline, after the reactivation
    wait_for(lambda: len(of_type(billing_events(settings, scim_org.id), "first_login")) == 2, timeout=30, message="sentinel")
    assert not of_type(billing_events(settings, scim_org.id), "seat.restored")
    login(app_client, scim_org.slug, "Seat@acme.test")
    wait_for(lambda: of_type(billing_events(settings, scim_org.id), "seat.restored"), timeout=30, message="restored")
    member_id = of_type(billing_events(settings, scim_org.id), "released")[0]["data"]["member_id"]
    events = [e for e in billing_events(settings, scim_org.id) if e["data"]["member_id"] == member_id]
    assert [(e["type"].rsplit(".", 2)[-2:], e["resourceversion"]) for e in events] == [
        (["member", "first_login"], 1),
        (["seat", "released"], 2),
        (["seat", "restored"], 3),
    ]
    assert of_type(events, "released")[0]["data"]["reason"] == "deactivated"
    assert of_type(events, "restored")[0]["data"]["reason"] == "reactivated"


def test_a_user_recreated_with_the_same_external_id_is_restored_not_billed_twice(pipeline, scim_org, app_client, settings):
    uid = provision(scim_org, "again@acme.test", externalId="00u-again")
    login(app_client, scim_org.slug, "again@acme.test")
    wait_for(lambda: of_type(billing_events(settings, scim_org.id), "first_login"), timeout=30, message="first login")
    assert scim_org.client.delete(f"/Users/{uid}").status_code == 204
    wait_for(lambda: of_type(billing_events(settings, scim_org.id), "released"), timeout=30, message="released on removal")
    provision(scim_org, "again@acme.test", externalId="00u-again")
    login(app_client, scim_org.slug, "again@acme.test")
    wait_for(lambda: of_type(billing_events(settings, scim_org.id), "restored"), timeout=30, message="seat restored")
    events = billing_events(settings, scim_org.id)
    assert len(of_type(events, "first_login")) == 1
    assert len({e["data"]["member_id"] for e in events}) == 1


def test_unprovisioned_app_login_bills_nobody(pipeline, scim_org, app_client, settings, engine):
    login(app_client, scim_org.slug, "stranger@acme.test")
    uid = provision(scim_org, "late@acme.test")  # a sentinel that goes through the same pipeline
    login(app_client, scim_org.slug, "late@acme.test")
    wait_for(lambda: of_type(billing_events(settings, scim_org.id), "first_login"), timeout=30, message="sentinel billed")
    member_ids = [e["data"]["member_id"] for e in billing_events(settings, scim_org.id)]
    assert list(emails_of(engine, member_ids).values()) == ["late@acme.test"] and uid


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"Authorization": "Bearer wrong"}, {"org": "x", "email": "a@b.co"}, 401),
        ({"Authorization": ""}, {"org": "x", "email": "a@b.co"}, 401),
        (None, {"org": "no-such-org", "email": "a@b.co"}, 404),
        (None, {"org": "{org}", "email": "not-an-email"}, 400),
        (None, {"org": "{org}"}, 400),
        (None, {"org": "{org}", "email": "a@b.co", "method": "drop table;"}, 400),
        (None, [1, 2], 400),
    ],
)
def test_internal_login_api_rejects_bad_requests(app_client, scim_org, headers, body, status):
    if isinstance(body, dict) and body.get("org") == "{org}":
        body = {**body, "org": scim_org.slug}
    kwargs = {"headers": headers} if headers is not None else {}
    r = app_client.post("/internal/v1/logins", json=body, **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["detail"]


def test_sso_sign_in_with_jit_creates_an_active_member_and_bills_once(pipeline, scim_org, settings, engine):
    """What the OIDC and SAML callbacks hand over (tests/sso drive those against real IdPs)."""
    from sqlalchemy import text

    from domain import orgs
    from ingest.logins import SignIn, record

    org = orgs.update_settings(engine, scim_org.slug, sso_provisioning=True)
    for _ in range(2):
        with engine.begin() as conn:
            outcome = record(
                SqlUnitOfWork(conn, settings.topics()),
                org,
                SignIn(email="Jit@Acme.test", method="oidc", sso=True, idp="https://idp.test"),
            )
        assert outcome.accepted

    def member():
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT status, source, first_login_at FROM members WHERE org_id = :o AND email_ci = 'jit@acme.test'"),
                {"o": org.id},
            ).all()

    wait_for(lambda: member() and member()[0].status == "active", timeout=30, message="JIT member")
    (row,) = member()
    assert row.source == "sso" and row.first_login_at is not None
    wait_for(lambda: of_type(billing_events(settings, org.id), "first_login"), timeout=30, message="billed")
    first = of_type(billing_events(settings, org.id), "first_login")
    assert len(first) == 1 and first[0]["data"]["source"] == "sso"
