"""SCIM preview on the real pipeline: an Entra-shaped first sync of 1,000 users and a group into an
org in preview creates no member and publishes no event, while the IdP is answered as usual; the
preview shows the new members, the email conflicts and the seats that would be billed under the
seat limit; go-live publishes the held events in order, the workers apply them, and first logins
bill as usual (`billing verify` clean)."""

import concurrent.futures
import copy
import json
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from domain import admin, service_tokens
from tests.conftest import events_of_org, wait_for
from workers.billing.verify import verify_until_settled

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "idp"
USERS, INACTIVE, OUTSIDE, LIMIT = 1000, 10, 5, 900


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())["request"]["body"]


ENTRA_USER = _fixture("entra-post-user.json")
ENTRA_ADD_MEMBERS = _fixture("entra-patch-add-member.json")
ENTRA_DISABLE = _fixture("entra-patch-disable-user-string-bool.json")


def entra_user(i: int) -> dict:
    body = copy.deepcopy(ENTRA_USER)
    body.update(externalId=f"ext-{i:05d}", userName=f"p{i:05d}@preview.test", displayName=f"Person {i}")
    body["emails"] = [{"primary": True, "type": "work", "value": f"p{i:05d}@preview.test"}]
    return body


def sync_one(client: httpx.Client, i: int) -> str:
    """Entra's first cycle for one user: look it up by userName, then create it."""
    found = client.get("/Users", params={"filter": f'userName eq "p{i:05d}@preview.test"'})
    assert found.status_code == 200 and found.json()["totalResults"] == 0, found.text
    created = client.post("/Users", json=entra_user(i))
    assert created.status_code == 201, created.text
    return created.json()["id"]


def org_events(settings, org_id):
    return events_of_org(settings, [settings.topic_lifecycle, settings.topic_members, settings.topic_billing], org_id)


def count(engine, sql, org_id):
    with engine.connect() as conn:
        return conn.execute(text(sql), {"o": org_id}).scalar()


def test_a_preview_sync_holds_everything_and_go_live_applies_it_in_order(pipeline, scim_org, engine, settings, server):
    org = scim_org.id
    token = service_tokens.create(engine, "preview")
    backend = httpx.Client(base_url=server, headers={"Authorization": f"Bearer {token}"}, timeout=15)
    admin_api = httpx.Client(base_url=f"{server}/admin/v1", timeout=15,
                             headers={"Authorization": f"Bearer {admin.create_admin_token(engine, scim_org.slug)}"})
    assert admin_api.patch("/org/settings", json={"seat_limit": LIMIT, "seat_policy": "refuse"}).status_code == 200
    for i in range(OUTSIDE):  # accounts outside the org whose emails the IdP will push
        assert backend.post("/internal/v1/accounts", json={"email": f"p{i * 7:05d}@preview.test"}).status_code in (200, 201)
    assert admin_api.get("/org/scim/preview").json()["preview"] is False
    started = admin_api.post("/org/scim/preview")
    assert started.status_code == 200 and started.json()["preview"] is True, started.text
    assert admin_api.post("/org/scim/preview").status_code == 409  # in preview already
    before = len(org_events(settings, org))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda i: sync_one(scim_org.client, i), range(USERS)))
    group = scim_org.client.post("/Groups", json=_fixture("entra-post-group.json") | {"displayName": "Everyone"})
    assert group.status_code == 201, group.text
    group_id = group.json()["id"]
    for start in range(0, USERS, 100):
        patch = copy.deepcopy(ENTRA_ADD_MEMBERS)
        patch["Operations"][0]["value"] = [{"$ref": None, "value": user_id} for user_id in ids[start:start + 100]]
        r = scim_org.client.patch(f"/Groups/{group_id}", json=patch)
        assert r.status_code in (200, 204), r.text
    for user_id in ids[-INACTIVE:]:
        assert scim_org.client.patch(f"/Users/{user_id}", json=ENTRA_DISABLE).status_code in (200, 204)
    # the IdP's answers are those of a live org
    listed = scim_org.client.get("/Users", params={"count": 1}).json()
    assert listed["totalResults"] == USERS
    assert scim_org.client.get(f"/Users/{ids[-1]}").json()["active"] is False

    time.sleep(2.0)  # the relay polls every 20 ms and the workers apply within a second: nothing may come
    assert count(engine, "SELECT count(*) FROM members WHERE org_id = :o", org) == 0
    assert count(engine, "SELECT count(*) FROM outbox WHERE payload->>'orgid' = CAST(:o AS text)", org) == 0
    assert len(org_events(settings, org)) == before  # not one event of the org on any topic
    report = admin_api.get("/org/scim/preview").json()
    assert report["scim_users"] == USERS and report["scim_groups"] == 1 and report["group_memberships"] == USERS
    assert report["new_members"] == {"total": USERS, "provisioned": USERS - INACTIVE, "deactivated": INACTIVE}
    assert report["email_conflicts"]["count"] == OUTSIDE
    assert report["email_conflicts"]["emails"] == sorted(f"p{i * 7:05d}@preview.test" for i in range(OUTSIDE))
    assert report["seats"] == {"limit": LIMIT, "policy": "refuse", "held_now": 0, "billable_at_first_login": LIMIT,
                               "beyond_limit": USERS - INACTIVE - LIMIT, "beyond_limit_means": "sign-in refused"}
    held = report["held_events"]["by_type"]
    assert held["io.provisioner.user.created"] == USERS and held["io.provisioner.group.member.added"] == USERS
    assert held["io.provisioner.user.deactivated"] == INACTIVE and held["io.provisioner.group.created"] == 1

    live = admin_api.post("/org/scim/go-live")
    assert live.status_code == 200 and live.json()["events"] == report["held_events"]["total"], live.text
    assert admin_api.post("/org/scim/go-live").status_code == 409  # live already
    wait_for(lambda: count(engine, "SELECT count(*) FROM members WHERE org_id = :o", org) == USERS, timeout=90,
             message="every user a member")
    wait_for(lambda: count(engine, "SELECT count(*) FROM conflicts WHERE org_id = :o AND status = 'open'", org) == OUTSIDE,
             timeout=60, message="the email conflicts flagged")
    wait_for(lambda: count(engine, "SELECT count(*) FROM members WHERE org_id = :o AND status = 'deactivated'", org)
             == INACTIVE, timeout=30, message="the inactive users' members deactivated")
    wait_for(lambda: count(engine, "SELECT count(*) FROM scim_group_members WHERE org_id = :o", org) == USERS, timeout=30)
    # in order: each resource's held events reached the topic in the order of its versions
    lifecycle = events_of_org(settings, [settings.topic_lifecycle], org)
    versions = defaultdict(list)
    for event in lifecycle:
        versions[event["subject"]].append(event.get("resourceversion", 0))
    assert all(v == sorted(v) for v in versions.values())
    assert versions[f"Users/{ids[-1]}"] == [1, 2]  # created, then deactivated
    assert sum(e["type"] == "io.provisioner.user.created" for e in lifecycle) == USERS

    # after go-live, writes go straight through, and first logins bill as usual
    late = sync_one(scim_org.client, USERS)
    wait_for(lambda: count(engine, "SELECT count(*) FROM members WHERE org_id = :o", org) == USERS + 1, timeout=30)
    assert late
    for i in range(100, 120):  # none of them an email conflict
        r = backend.post("/internal/v1/logins", json={"org": scim_org.slug, "email": f"p{i:05d}@preview.test"})
        assert r.status_code == 202, r.text
    wait_for(lambda: count(engine, "SELECT count(*) FROM seats WHERE org_id = :o", org) == 20, timeout=30,
             message="twenty seats billed")
    verified = verify_until_settled(settings, engine, 30, [org])
    assert verified.clean and not verified.pending, verified.as_dict()
    assert verified.first_login_events == 20
