"""End to end through the real Kafka: SCIM write → outbox → relay → topic → membership worker."""

import base64
import json
import subprocess
import sys
import time

import pytest
from kafka import KafkaProducer
from sqlalchemy import text

from core.settings import to_env
from domain.members import list_members
from events.envelope import encode
from ingest.scim.changes import OrgRef, group_events, user_events
from tests.conftest import topic_payloads, wait_for

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

pytestmark = pytest.mark.e2e


def member(engine, org_id, user_id):
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT * FROM members WHERE org_id = :o AND scim_user_id = :u"), {"o": org_id, "u": user_id}
        ).first()


def status_of(engine, org_id, user_id):
    row = member(engine, org_id, user_id)
    return row.status if row else None


def set_active(client, user_id, active):
    body = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": active}]}
    assert client.patch(f"/Users/{user_id}", json=body).status_code in (200, 204)


def test_scim_user_becomes_provisioned_member(pipeline, scim_org, engine, settings):
    started = time.monotonic()
    r = scim_org.client.post(
        "/Users", json={"schemas": [USER], "userName": "pat", "emails": [{"value": "Pat@Example.com", "primary": True}]}
    )
    assert r.status_code == 201
    uid = r.json()["id"]
    wait_for(lambda: status_of(engine, scim_org.id, uid) == "provisioned", timeout=10, message="member provisioned")
    print(f"SCIM commit to membership applied: {time.monotonic() - started:.3f}s")
    out = subprocess.run(
        [sys.executable, "-m", "cli", "members", "list", scim_org.slug, "--json"],
        env={**to_env(settings), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=True,
        text=True,
    )
    (listed,) = json.loads(out.stdout)
    assert listed["email"].lower() == "pat@example.com"  # the domain is normalised to lower case
    assert listed["status"] == "provisioned"
    assert listed["source"] == "scim"


def test_lifecycle_statuses_follow_scim(pipeline, scim_org, engine):
    c = scim_org.client
    uid = c.post("/Users", json={"schemas": [USER], "userName": "quinn"}).json()["id"]
    wait_for(lambda: status_of(engine, scim_org.id, uid) == "provisioned", message="provisioned")
    set_active(c, uid, False)
    wait_for(lambda: status_of(engine, scim_org.id, uid) == "deactivated", message="deactivated")
    set_active(c, uid, True)
    wait_for(lambda: status_of(engine, scim_org.id, uid) == "provisioned", message="reactivated")
    assert c.delete(f"/Users/{uid}").status_code == 204
    wait_for(lambda: status_of(engine, scim_org.id, uid) == "removed", message="removed")
    with engine.connect() as conn:
        assert list_members(conn, scim_org.id) == []


def test_group_membership_applied_as_links(pipeline, scim_org, engine):
    c = scim_org.client
    a = c.post("/Users", json={"schemas": [USER], "userName": "ga"}).json()["id"]
    b = c.post("/Users", json={"schemas": [USER], "userName": "gb"}).json()["id"]
    gid = c.post("/Groups", json={"schemas": [GROUP], "displayName": "G", "members": [{"value": a}, {"value": b}]}).json()["id"]
    body = {"schemas": [PATCH], "Operations": [{"op": "remove", "path": f'members[value eq "{a}"]'}]}
    assert c.patch(f"/Groups/{gid}", json=body).status_code in (200, 204)

    def links():
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT scim_user_id, present FROM member_group_links WHERE org_id = :o AND group_id = :g"),
                {"o": scim_org.id, "g": gid},
            )
            return dict(rows.all())

    wait_for(lambda: links() == {a: False, b: True}, message="group links applied")


def _produce(settings, events_or_raw):
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers.split(","), acks="all")
    for item in events_or_raw:
        if isinstance(item, tuple):
            key, raw = item
            producer.send(settings.topic_lifecycle, key=key, value=raw)
        else:
            producer.send(settings.topic_lifecycle, key=item.key.encode(), value=encode(item))
    producer.flush()
    producer.close()


def test_duplicates_and_out_of_order_delivery_change_nothing(pipeline, scim_org, engine, settings):
    org = OrgRef(scim_org.id, scim_org.slug)
    uid = "ooo-user"
    v1 = {"userName": "ooo", "emails": [{"value": "old@x.com"}], "active": True}
    v2 = {**v1, "emails": [{"value": "new@x.com"}]}
    v3 = {**v2, "active": False}
    created = user_events(org, uid, None, v1, 1)
    updated = user_events(org, uid, v1, v2, 2)
    deactivated = user_events(org, uid, v2, v3, 3)
    # newest first, then the older ones, each twice
    _produce(settings, deactivated + updated + created + created + deactivated + updated)
    wait_for(lambda: status_of(engine, scim_org.id, uid) == "deactivated", message="deactivated")
    sentinel = user_events(org, "sentinel", None, {"userName": "s"}, 1)
    _produce(settings, sentinel)  # same partition order is not guaranteed across keys: wait on it too
    wait_for(lambda: status_of(engine, scim_org.id, "sentinel") == "provisioned", message="sentinel")
    row = member(engine, scim_org.id, uid)
    assert (row.status, row.email, row.seq) == ("deactivated", "new@x.com", 3)
    with engine.connect() as conn:
        ids = [e.id for e in created + updated + deactivated]
        n = conn.execute(
            text("SELECT count(*) FROM processed_events WHERE consumer = 'membership' AND event_id = ANY(CAST(:ids AS uuid[]))"),
            {"ids": ids},
        ).scalar()
    assert n == 3


def test_stale_group_link_never_overwrites_newer(pipeline, scim_org, engine, settings):
    org = OrgRef(scim_org.id, scim_org.slug)
    added = group_events(org, "g-stale", {"displayName": "G"}, {"displayName": "G"}, {}, {"u-x": "User"}, 2)
    removed = group_events(org, "g-stale", {"displayName": "G"}, {"displayName": "G"}, {"u-x": "User"}, {}, 5)
    _produce(settings, removed + added)

    def link():
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT present, seq FROM member_group_links WHERE org_id = :o AND group_id = 'g-stale'"), {"o": scim_org.id}
            ).first()

    wait_for(lambda: link() is not None, message="link")
    time.sleep(1.0)  # give the older (stale) add every chance to land
    assert tuple(link()) == (False, 5)


def test_poison_record_is_dead_lettered_and_blocks_nobody(pipeline, scim_org, engine, settings):
    key = f"{scim_org.id}:poison".encode()
    _produce(settings, [(key, b"\x00 not an event")])
    uid = scim_org.client.post("/Users", json={"schemas": [USER], "userName": "after-poison"}).json()["id"]
    wait_for(lambda: status_of(engine, scim_org.id, uid) == "provisioned", message="later event applied")

    def dead():
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT error FROM dead_letters WHERE key = :k AND consumer = 'membership'"), {"k": key.decode()}
            ).scalar()

    assert "not a provisioner CloudEvent" in wait_for(dead, message="dead letter")
    # and it is on the dead-letter topic, with its error and origin, through the relay
    # (the conflict worker reads the lifecycle topic too, and sets it aside as well)
    def letters() -> list[dict]:
        """The dead letters of this key, once both consumers have set it aside."""
        mine = [p for p in topic_payloads(settings, settings.topic_dead_letter) if p["data"]["origin"]["key"] == key.decode()]
        return mine if {p["data"]["consumer"] for p in mine} >= {"membership", "conflicts"} else []

    found = wait_for(letters, timeout=30, message="dead letters on their topic")
    assert sorted(p["data"]["consumer"] for p in found) == ["conflicts", "membership"]
    letter = next(p for p in found if p["data"]["consumer"] == "membership")
    assert letter["type"] == "io.provisioner.dead_letter"
    assert letter["data"]["origin"]["topic"] == settings.topic_lifecycle
    assert "not a provisioner CloudEvent" in letter["data"]["error"]
    assert letter["data"]["value"] is None and base64.b64decode(letter["data"]["value_base64"]) == b"\x00 not an event"



def test_kill_9_of_relay_and_worker_loses_nothing_and_applies_once(pipeline, scim_org, engine, settings):
    """At-least-once relay + tracking rows: kill -9 mid-stream, restart, every user applied once."""
    import concurrent.futures

    names = [f"crash-{i:03d}" for i in range(150)]

    def create(name):
        r = scim_org.client.post("/Users", json={"schemas": [USER], "userName": name})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        first = list(pool.map(create, names[:75]))
        pipeline.kill("relay")
        pipeline.kill("membership")
        second = list(pool.map(create, names[75:]))
    pipeline.start("relay", "relay")
    pipeline.start("membership", "worker", "membership")
    ids = first + second

    def applied():
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT count(*) FROM members WHERE org_id = :o AND status = 'provisioned'"), {"o": scim_org.id}
            ).scalar() == len(ids)

    wait_for(applied, timeout=60, message="every user applied after the restarts")
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT scim_user_id, count(*) FROM members WHERE org_id = :o GROUP BY scim_user_id"), {"o": scim_org.id}
        ).all()
        outbox_left = conn.execute(text("SELECT count(*) FROM outbox WHERE payload->>'orgid' = :o"), {"o": scim_org.id}).scalar()
    assert sorted(r[0] for r in rows) == sorted(ids)
    assert all(r[1] == 1 for r in rows)
    wait_for(lambda: outbox_left == 0 or _outbox_empty(engine, scim_org.id), timeout=30, message="outbox drained")


def _outbox_empty(engine, org_id):
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM outbox WHERE payload->>'orgid' = :o"), {"o": org_id}).scalar() == 0
