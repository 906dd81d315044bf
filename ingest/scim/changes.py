"""Lifecycle events derived from a SCIM write: what changed between the stored and the new state.

Pure functions of (org, before, after, version): the storage calls them inside the write's
transaction and stages what they return in the outbox.
"""

from typing import Any

from events import catalogue as c
from events.envelope import Event
from events.user_view import Snapshot, user_snapshot

__all__ = ["OrgRef", "Snapshot", "group_events", "user_events", "user_snapshot"]


class OrgRef:
    """The org a write belongs to, and the request that caused it."""

    def __init__(self, org_id: str, org_slug: str, correlation_id: str | None = None):
        self.id = org_id
        self.slug = org_slug
        self.correlation_id = correlation_id

    def event(self, payload: c.Payload, version: int) -> Event:
        """The event of a SCIM write: one per resource version (its id derives from it)."""
        return Event.of(
            payload, org_id=self.id, org_slug=self.slug, version=version, occasion=version, correlation_id=self.correlation_id
        )


def user_events(org: OrgRef, user_id: str, before: Snapshot | None, after: Snapshot | None, version: int) -> list[Event]:
    """User created / updated / deactivated / reactivated / deleted, in that order of precedence."""
    if after is None:
        return [org.event(c.UserDeleted(**user_snapshot(user_id, before or {})), version)]
    new = user_snapshot(user_id, after)
    if before is None:
        return [org.event(c.UserCreated(**new), version)]
    old = user_snapshot(user_id, before)
    events = []
    if {k: v for k, v in old.items() if k != "active"} != {k: v for k, v in new.items() if k != "active"}:
        events.append(org.event(c.UserUpdated(**new), version))
    if old["active"] and not new["active"]:
        events.append(org.event(c.UserDeactivated(**new), version))
    elif not old["active"] and new["active"]:
        events.append(org.event(c.UserReactivated(**new), version))
    return events


def group_events(
    org: OrgRef,
    group_id: str,
    before: Snapshot | None,
    after: Snapshot | None,
    members_before: dict[str, str],
    members_after: dict[str, str],
    version: int,
) -> list[Event]:
    """Group created / renamed / deleted, then one event per member added or removed.

    `members_*` map member id to member type ("User" or "Group"). Member events are keyed by
    the member, so they stay in order with that user's own lifecycle.
    """
    state = after or before or {}
    info: dict[str, Any] = {
        "group_id": group_id,
        "display_name": state.get("displayName"),
        "external_id": state.get("externalId"),
    }
    events = []
    if before is None:
        events.append(org.event(c.GroupCreated(**info), version))
    elif after is None:
        events.append(org.event(c.GroupDeleted(**info), version))
    elif before.get("displayName") != after.get("displayName"):
        events.append(org.event(c.GroupRenamed(**info, previous_display_name=before.get("displayName")), version))
    for member_id in sorted(members_after.keys() - members_before.keys()):
        events.append(org.event(c.GroupMemberAdded(**info, member_id=member_id, member_type=members_after[member_id]), version))
    if after is not None:
        for member_id in sorted(members_before.keys() - members_after.keys()):
            removed = c.GroupMemberRemoved(**info, member_id=member_id, member_type=members_before[member_id])
            events.append(org.event(removed, version))
    return events
