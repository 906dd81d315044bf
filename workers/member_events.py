"""Member-level facts the membership worker emits for the billing worker (topic role "members").

Each is keyed by the member and carries the member's event counter as `resourceversion`; its
id derives from the event that caused it, so re-processing a cause re-creates the same event.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, update

from core.tables import members
from events import catalogue as c
from events import outbox
from events.envelope import Event, deterministic_id

_BUMP_VERSION = (
    update(members).where(members.c.id == bindparam("member_id")).values(version=members.c.version + 1).returning(members.c.version)
)

# status before → status after: the member event a transition emits
_TRANSITIONS = {
    ("provisioned", "deactivated"): c.MEMBER_DEACTIVATED,
    ("active", "deactivated"): c.MEMBER_DEACTIVATED,
    ("provisioned", "removed"): c.MEMBER_REMOVED,
    ("active", "removed"): c.MEMBER_REMOVED,
    ("deactivated", "removed"): c.MEMBER_REMOVED,
    ("deactivated", "provisioned"): c.MEMBER_REACTIVATED,
    ("deactivated", "active"): c.MEMBER_REACTIVATED,
}


# The SCIM user events the membership worker applies to a member (both of its paths).
USER_EVENTS = frozenset({c.USER_CREATED, c.USER_UPDATED, c.USER_DEACTIVATED, c.USER_REACTIVATED, c.USER_DELETED})


def email_of(user: dict[str, Any]) -> str | None:
    """A SCIM user event's email: its `email`, else its `user_name` when that is an address."""
    user_name = user.get("user_name") or ""
    return user.get("email") or (user_name if "@" in user_name else None)


def status_after(event: Event, first_login_at: datetime | None) -> str:
    """The member status a SCIM user event leaves."""
    if event.kind is c.USER_DELETED:
        return "removed"
    if not event.data.get("active", True):
        return "deactivated"
    return "active" if first_login_at else "provisioned"


def transition(before: str | None, after: str) -> c.EventType | None:
    return _TRANSITIONS.get((before or "", after))


def emit(
    conn: Connection,
    topics: dict[str, str],
    kind: c.EventType,
    *,
    cause: Event,
    member_id: str,
    email: str | None,
    source: str,
    status: str,
    first_login_at: datetime | None,
) -> Event:
    """Stage a member event in the worker's transaction; bumps the member's version."""
    version = conn.execute(_BUMP_VERSION, {"member_id": member_id}).scalar_one()
    event = build(kind, cause=cause, member_id=member_id, version=version, email=email, source=source, status=status, first_login_at=first_login_at)
    outbox.add(conn, [event], topics)
    return event


def build(
    kind: c.EventType,
    *,
    cause: Event,
    member_id: str,
    version: int,
    email: str | None,
    source: str,
    status: str,
    first_login_at: datetime | None,
) -> Event:
    """The member event `cause` leads to, as the member's `version`-th event."""
    data: dict[str, Any] = {
        "member_id": member_id,
        "email": email,
        "source": source,
        "status": status,
        "first_login_at": first_login_at.isoformat() if first_login_at else None,
        "cause_event_id": cause.id,
    }
    return Event(
        kind=kind,
        org_id=cause.org_id,
        org_slug=cause.org_slug,
        subject=f"members/{member_id}",
        key=f"{cause.org_id}:{member_id}",
        resource_version=version,
        data=data,
        id=deterministic_id(kind.type, cause.id, member_id),
        correlation_id=cause.correlation_id,
    )
