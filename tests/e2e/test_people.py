"""People, not email strings, on the real pipeline: a member keeps their seat through an email
change, whoever reuses an old address is a new person with their own first login, seat events
alternate per member, no email reaches a billing record's key or headers, seat limits refuse or
bill an overage, an admin's removal releases a just-in-time member's seat, and `billing verify`
checks seats against PostgreSQL (and reports a difference when there is one)."""

import uuid

import httpx
import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import text

from domain import admin, orgs, service_tokens
from domain.postgres import SqlUnitOfWork
from ingest.logins import SignIn, record
from tests.conftest import wait_for
from workers.billing.verify import verify, verify_until_settled

pytestmark = pytest.mark.e2e

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.fixture(scope="module")
def app(settings, engine, server):
    token = service_tokens.create(engine, "people-tests")
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        yield client


def sign_in(app, org, email):
    return app.post("/internal/v1/logins", json={"org": org.slug, "email": email, "method": "password"})


def provision(org, email):
    body = {"schemas": [USER], "userName": email, "emails": [{"value": email, "primary": True}]}
    r = org.client.post("/Users", json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def patch(org, uid, *operations):
    r = org.client.patch(f"/Users/{uid}", json={"schemas": [PATCH], "Operations": list(operations)})
    assert r.status_code in (200, 204), r.text


def billing_records(settings, org_id):
    """(key, headers, event) of every billing record of the org, in partition order."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers.split(","), enable_auto_commit=False, isolation_level="read_committed"
    )
    try:
        parts = [TopicPartition(settings.topic_billing, p) for p in sorted(consumer.partitions_for_topic(settings.topic_billing))]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        out = []
        while any(consumer.position(tp) < end[tp] for tp in parts):
            for records in consumer.poll(timeout_ms=1000).values():
                out += [(r.key, r.headers, orjson.loads(r.value)) for r in records]
        return [(k, h, e) for k, h, e in out if e["orgid"] == org_id]
    finally:
        consumer.close()


def seat_events(settings, org_id, member_id):
    events = [e for _, _, e in billing_records(settings, org_id) if e["data"]["member_id"] == member_id]
    return [(e["type"].removeprefix("io.provisioner.billing."), e["resourceversion"]) for e in events]


def member_of(engine, org_id, scim_user_id):
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT id::text AS id, email, status FROM members WHERE org_id = :o AND scim_user_id = :u"),
            {"o": org_id, "u": scim_user_id},
        ).first()


def active_member_id(engine, org_id, scim_user_id):
    member = member_of(engine, org_id, scim_user_id)
    return member.id if member is not None and member.status == "active" else None


def test_seats_follow_the_person_not_the_email(pipeline, scim_org, app, settings, engine):
    ann = provision(scim_org, "ann@people.test")
    assert sign_in(app, scim_org, "ann@people.test").status_code == 202
    ann_id = wait_for(lambda: active_member_id(engine, scim_org.id, ann), timeout=30, message="Ann")
    # Ann's address changes at the IdP, then she is deactivated: her seat is released
    patch(
        scim_org, ann,
        {"op": "replace", "path": "userName", "value": "ann.renamed@people.test"},
        {"op": "replace", "path": "emails", "value": [{"value": "Ann.Renamed@people.test", "primary": True}]},
    )  # fmt: skip
    patch(scim_org, ann, {"op": "replace", "path": "active", "value": False})
    wait_for(lambda: seat_events(settings, scim_org.id, ann_id)[-1:] == [("seat.released", 2)], timeout=30, message="released")
    # a new person is given Ann's old address: a member of their own, and a first login
    carl = provision(scim_org, "ann@people.test")
    assert sign_in(app, scim_org, "ANN@people.test").status_code == 202
    carl_id = wait_for(lambda: active_member_id(engine, scim_org.id, carl), timeout=30, message="Carl")
    assert carl_id != ann_id
    wait_for(lambda: seat_events(settings, scim_org.id, carl_id) == [("member.first_login", 1)], timeout=30, message="Carl")
    # Ann, renamed, is reactivated and signs in with her new address: her seat is restored
    patch(scim_org, ann, {"op": "replace", "path": "active", "value": True})
    wait_for(lambda: member_of(engine, scim_org.id, ann).status == "provisioned", timeout=30, message="reactivated")
    assert sign_in(app, scim_org, "ann.renamed@PEOPLE.test").status_code == 202
    wait_for(lambda: len(seat_events(settings, scim_org.id, ann_id)) == 3, timeout=30, message="restored")
    assert seat_events(settings, scim_org.id, ann_id) == [("member.first_login", 1), ("seat.released", 2), ("seat.restored", 3)]
    assert member_of(engine, scim_org.id, ann).email == "Ann.Renamed@people.test"
    # no email in any billing key or header; ids only
    for key, headers, event in billing_records(settings, scim_org.id):
        assert key == f"{scim_org.id}:{event['data']['member_id']}".encode()
        assert headers == [("content-type", b"application/cloudevents+json")]
        assert "email" not in event["data"] and "@" not in orjson.dumps(event).decode()
    report = verify_until_settled(settings, engine, 30, [scim_org.id])
    assert report.clean and report.seats_held == report.active_members == 2, report.as_dict()


def test_billing_verify_reports_an_active_member_whose_seat_is_not_held(pipeline, scim_org, app, settings, engine):
    uid = provision(scim_org, "held@people.test")
    assert sign_in(app, scim_org, "held@people.test").status_code == 202
    wait_for(lambda: verify(settings, engine, [scim_org.id]).seats_held == 1, timeout=30, message="billed")
    ghost = provision(scim_org, "ghost@people.test")
    ghost_id = wait_for(lambda: (m := member_of(engine, scim_org.id, ghost)) and m.id, timeout=30, message="member")
    with engine.begin() as conn:  # a member made active behind billing's back
        conn.execute(text("UPDATE members SET status = 'active' WHERE id = :m"), {"m": ghost_id})
    report = verify(settings, engine, [scim_org.id])
    assert not report.clean and uid
    assert report.seat_differences == [
        {"org_id": scim_org.id, "member_id": ghost_id, "problem": "member active, seat not held on the topic"}
    ]


def test_a_seat_limit_refuses_the_sign_in_past_it_and_a_freed_seat_can_be_taken(pipeline, scim_org, app, settings, engine):
    orgs.update_settings(engine, scim_org.slug, seat_limit=1)
    first, second = provision(scim_org, "one@people.test"), provision(scim_org, "two@people.test")
    assert sign_in(app, scim_org, "one@people.test").status_code == 202
    refused = sign_in(app, scim_org, "two@people.test")
    assert refused.status_code == 403 and refused.json()["accepted"] is False
    assert "seat" in refused.json()["detail"]
    wait_for(lambda: active_member_id(engine, scim_org.id, first), timeout=30, message="first")
    assert member_of(engine, scim_org.id, second).status == "provisioned"
    patch(scim_org, first, {"op": "replace", "path": "active", "value": False})
    wait_for(lambda: (m := member_of(engine, scim_org.id, first)) and m.status == "deactivated", timeout=30, message="freed")
    assert sign_in(app, scim_org, "two@people.test").status_code == 202
    wait_for(lambda: active_member_id(engine, scim_org.id, second), timeout=30, message="second")


def test_a_seat_limit_with_allow_bills_an_overage(pipeline, scim_org, app, settings, engine):
    orgs.update_settings(engine, scim_org.slug, seat_limit=1, seat_policy="allow")
    for email in ("a@over.test", "b@over.test"):
        provision(scim_org, email)
        assert sign_in(app, scim_org, email).status_code == 202
    overage = wait_for(
        lambda: [e for _, _, e in billing_records(settings, scim_org.id) if e["type"].endswith("seat.overage")],
        timeout=30, message="overage",
    )  # fmt: skip
    assert [(e["data"]["seats_held"], e["data"]["seat_limit"]) for e in overage] == [(2, 1)]


def test_an_admin_removing_a_just_in_time_member_releases_its_seat(pipeline, scim_org, settings, engine):
    org = orgs.update_settings(engine, scim_org.slug, sso_provisioning=True)
    subject = uuid.uuid4().hex
    with SqlUnitOfWork.begin(engine, settings.topics()) as uow:
        sign = SignIn(email="jit@people.test", method="oidc", sso=True, idp="https://idp.people.test", subject=subject)
        assert record(uow, org, sign).accepted
    member_id = wait_for(
        lambda: [r for _, _, r in billing_records(settings, org.id) if r["type"].endswith("first_login")],
        timeout=30, message="billed",
    )[0]["data"]["member_id"]  # fmt: skip
    token = admin.create_admin_token(engine, org.slug)
    r = httpx.delete(f"{settings.public_url}/admin/v1/org/members/{member_id}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 202, r.text
    wait_for(lambda: len(seat_events(settings, org.id, member_id)) == 2, timeout=30, message="released")
    assert seat_events(settings, org.id, member_id) == [("member.first_login", 1), ("seat.released", 2)]
    scim_user = provision(scim_org, "pushed@people.test")
    pushed = wait_for(lambda: (m := member_of(engine, org.id, scim_user)) and m.id, timeout=30, message="SCIM member")
    refused = httpx.delete(f"{settings.public_url}/admin/v1/org/members/{pushed}", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 409 and "SCIM" in refused.json()["detail"]
