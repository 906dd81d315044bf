"""Which lifecycle events a SCIM write yields (pure, no database)."""

import pytest

from events import catalogue as c
from ingest.scim.changes import OrgRef, group_events, user_events, user_snapshot

pytestmark = pytest.mark.unit

ORG = OrgRef("00000000-0000-0000-0000-000000000001", "acme", "req-1")
ALICE = {
    "userName": "alice",
    "emails": [{"value": "a@x.com", "type": "home"}, {"value": "A@work.com", "primary": True}],
    "active": True,
}


def types(events):
    return [e.kind for e in events]


def test_primary_email_wins_over_order():
    assert user_snapshot("u1", ALICE)["email"] == "A@work.com"


def test_create_update_deactivate_reactivate_delete():
    assert types(user_events(ORG, "u1", None, ALICE, 1)) == [c.USER_CREATED]
    renamed = {**ALICE, "displayName": "Alice"}
    assert types(user_events(ORG, "u1", ALICE, renamed, 2)) == [c.USER_UPDATED]
    off = {**renamed, "active": False}
    assert types(user_events(ORG, "u1", renamed, off, 3)) == [c.USER_DEACTIVATED]
    assert types(user_events(ORG, "u1", off, renamed, 4)) == [c.USER_REACTIVATED]
    assert types(user_events(ORG, "u1", renamed, None, 5)) == [c.USER_DELETED]


def test_no_event_when_nothing_the_members_see_changed():
    assert user_events(ORG, "u1", ALICE, {**ALICE, "title": "CTO"}, 2) == []


def test_events_are_keyed_by_user_and_carry_version_and_correlation():
    (event,) = user_events(ORG, "u1", None, ALICE, 1)
    assert event.key == f"{ORG.id}:u1"
    assert event.resource_version == 1
    assert event.correlation_id == "req-1"
    assert event.to_cloudevent()["subject"] == "Users/u1"


def test_event_ids_are_deterministic_and_distinct_per_version():
    first = user_events(ORG, "u1", None, ALICE, 1)[0]
    again = user_events(ORG, "u1", None, ALICE, 1)[0]
    later = user_events(ORG, "u1", ALICE, {**ALICE, "active": False}, 2)[0]
    assert first.id == again.id
    assert first.id != later.id


def test_group_membership_diff_emits_one_event_per_member_keyed_by_member():
    before = {"displayName": "Eng"}
    after = {"displayName": "Engineering"}
    events = group_events(ORG, "g1", before, after, {"u1": "User", "u2": "User"}, {"u2": "User", "u3": "User"}, 7)
    assert types(events) == [c.GROUP_RENAMED, c.GROUP_MEMBER_ADDED, c.GROUP_MEMBER_REMOVED]
    added, removed = events[1], events[2]
    assert added.data["member_id"] == "u3" and added.key.endswith(":u3")
    assert removed.data["member_id"] == "u1" and removed.key.endswith(":u1")
    assert events[0].data["previous_display_name"] == "Eng"


def test_group_delete_is_one_event():
    events = group_events(ORG, "g1", {"displayName": "Eng"}, None, {"u1": "User"}, {}, 3)
    assert types(events) == [c.GROUP_DELETED]
