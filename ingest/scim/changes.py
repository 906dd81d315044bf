"""Lifecycle events derived from a SCIM write: what changed between the stored and the new state.

Pure functions of (org, before, after, version): the storage calls them inside the write's
transaction and stages what they return in the outbox.
"""

from typing import Any

from events import catalogue as c
from events.envelope import Event

Snapshot = dict[str, Any]


def _primary_email(data: Snapshot) -> str | None:
    emails = data.get("emails") or []
    for pick in (
        lambda e: e.get("primary") is True,
        lambda e: e.get("type") == "work",
        lambda e: True,
    ):
        for email in emails:
            if email.get("value") and pick(email):
                return email["value"]
    return None


def user_snapshot(user_id: str, data: Snapshot) -> Snapshot:
    """The member-facing view of a SCIM user that lifecycle events carry."""
    name = data.get("name") or {}
    return {
        "user_id": user_id,
        "user_name": data.get("userName"),
        "external_id": data.get("externalId"),
        "display_name": data.get("displayName") or name.get("formatted"),
        "given_name": name.get("givenName"),
        "family_name": name.get("familyName"),
        "email": _primary_email(data),
        "active": data.get("active") is not False,
    }


class OrgRef:
    """The org a write belongs to, and the request that caused it."""

    def __init__(self, org_id: str, org_slug: str, correlation_id: str | None = None):
        self.id = org_id
        self.slug = org_slug
        self.correlation_id = correlation_id

    def event(self, kind: c.EventType, subject: str, key_id: str, version: int, data: Snapshot) -> Event:
        return Event(
            kind=kind,
            org_id=self.id,
            org_slug=self.slug,
            subject=subject,
            key=f"{self.id}:{key_id}",
            resource_version=version,
            data=data,
            correlation_id=self.correlation_id,
        )


def user_events(org: OrgRef, user_id: str, before: Snapshot | None, after: Snapshot | None, version: int) -> list[Event]:
    """User created / updated / deactivated / reactivated / deleted, in that order of precedence."""
    subject = f"Users/{user_id}"
    if after is None:
        data = user_snapshot(user_id, before or {})
        return [org.event(c.USER_DELETED, subject, user_id, version, data)]
    new = user_snapshot(user_id, after)
    if before is None:
        return [org.event(c.USER_CREATED, subject, user_id, version, new)]
    old = user_snapshot(user_id, before)
    events = []
    if {k: v for k, v in old.items() if k != "active"} != {k: v for k, v in new.items() if k != "active"}:
        events.append(org.event(c.USER_UPDATED, subject, user_id, version, new))
    if old["active"] and not new["active"]:
        events.append(org.event(c.USER_DEACTIVATED, subject, user_id, version, new))
    elif not old["active"] and new["active"]:
        events.append(org.event(c.USER_REACTIVATED, subject, user_id, version, new))
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
    subject = f"Groups/{group_id}"
    name = (after or before or {}).get("displayName")
    info = {"group_id": group_id, "display_name": name, "external_id": (after or before or {}).get("externalId")}
    events = []
    if before is None:
        events.append(org.event(c.GROUP_CREATED, subject, group_id, version, info))
    elif after is None:
        events.append(org.event(c.GROUP_DELETED, subject, group_id, version, info))
    elif before.get("displayName") != after.get("displayName"):
        events.append(org.event(c.GROUP_RENAMED, subject, group_id, version, {**info, "previous_display_name": before.get("displayName")}))
    for member_id in sorted(members_after.keys() - members_before.keys()):
        data = {**info, "member_id": member_id, "member_type": members_after[member_id]}
        events.append(org.event(c.GROUP_MEMBER_ADDED, f"{subject}/members/{member_id}", member_id, version, data))
    if after is not None:
        for member_id in sorted(members_before.keys() - members_after.keys()):
            data = {**info, "member_id": member_id, "member_type": members_before[member_id]}
            events.append(org.event(c.GROUP_MEMBER_REMOVED, f"{subject}/members/{member_id}", member_id, version, data))
    return events
