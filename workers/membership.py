"""The membership worker: applies user and group lifecycle to the org's membership.

Statuses: `provisioned` (pushed, never logged in), `active` (has logged in), `deactivated`,
`removed`. An event older than the state it would change (`resourceversion` below the
applied one) is stale and changes nothing, so redelivery and reordering are harmless.
"""

import uuid
from datetime import UTC, datetime

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert

from core.tables import member_group_links, member_groups, members
from events import catalogue as c
from events.envelope import Event

CONSUMER = "membership"


def _now() -> datetime:
    return datetime.now(UTC)


def _member(conn: Connection, event: Event) -> object | None:
    return conn.execute(
        select(members)
        .where(members.c.org_id == event.org_id, members.c.scim_user_id == event.data["user_id"])
        .with_for_update()
    ).first()


def _status_after(event: Event, first_login_at: datetime | None) -> str:
    if event.kind is c.USER_DELETED:
        return "removed"
    if not event.data.get("active", True):
        return "deactivated"
    return "active" if first_login_at else "provisioned"


def apply_user(event: Event, conn: Connection) -> str:
    row = _member(conn, event)
    data = event.data
    email = data.get("email")
    values = {
        "user_name": data.get("user_name"),
        "email": email,
        "email_ci": email.lower() if email else None,
        "display_name": data.get("display_name"),
        "seq": event.resource_version,
        "updated_at": _now(),
    }
    if row is None:
        if event.kind is c.USER_DELETED:
            values["status"] = "removed"
        else:
            values["status"] = _status_after(event, None)
        conn.execute(
            insert(members)
            .values(id=str(uuid.uuid4()), org_id=event.org_id, scim_user_id=data["user_id"], source="scim", **values)
            .on_conflict_do_nothing(constraint="ux_members_scim_user")
        )
        return "applied"
    if event.resource_version < row.seq or row.status == "removed":
        return "stale"
    values["status"] = _status_after(event, row.first_login_at)
    conn.execute(update(members).where(members.c.id == row.id).values(**values))
    if event.kind is c.USER_DELETED:
        conn.execute(
            update(member_group_links)
            .where(member_group_links.c.org_id == event.org_id, member_group_links.c.scim_user_id == data["user_id"])
            .values(present=False)
        )
    return "applied"


def apply_group(event: Event, conn: Connection) -> str:
    data = event.data
    key = {"org_id": event.org_id, "group_id": data["group_id"]}
    current = conn.execute(
        select(member_groups.c.seq).where(*(getattr(member_groups.c, k) == v for k, v in key.items())).with_for_update()
    ).scalar()
    if current is not None and event.resource_version < current:
        return "stale"
    values = {"display_name": data.get("display_name"), "seq": event.resource_version, "deleted": event.kind is c.GROUP_DELETED}
    conn.execute(insert(member_groups).values(**key, **values).on_conflict_do_update(index_elements=list(key), set_=values))
    if event.kind is c.GROUP_DELETED:
        conn.execute(
            update(member_group_links)
            .where(member_group_links.c.org_id == event.org_id, member_group_links.c.group_id == data["group_id"])
            .values(present=False, seq=event.resource_version)
        )
    return "applied"


def apply_link(event: Event, conn: Connection) -> str:
    if event.data.get("member_type", "User") != "User":
        return "ignored"
    deleted_at = conn.execute(
        select(member_groups.c.seq).where(
            member_groups.c.org_id == event.org_id,
            member_groups.c.group_id == event.data["group_id"],
            member_groups.c.deleted.is_(True),
        )
    ).scalar()
    if deleted_at is not None and event.resource_version <= deleted_at:
        return "stale"  # the group is gone (its deletion travelled on another partition)
    key = {"org_id": event.org_id, "group_id": event.data["group_id"], "scim_user_id": event.data["member_id"]}
    present = event.kind is c.GROUP_MEMBER_ADDED
    values = {"present": present, "seq": event.resource_version}
    result = conn.execute(
        insert(member_group_links)
        .values(**key, **values)
        .on_conflict_do_update(
            index_elements=list(key),
            set_=values,
            where=member_group_links.c.seq <= event.resource_version,
        )
        .returning(member_group_links.c.seq)
    )
    return "applied" if result.first() is not None else "stale"


_HANDLERS = {
    c.USER_CREATED: apply_user,
    c.USER_UPDATED: apply_user,
    c.USER_DEACTIVATED: apply_user,
    c.USER_REACTIVATED: apply_user,
    c.USER_DELETED: apply_user,
    c.GROUP_CREATED: apply_group,
    c.GROUP_RENAMED: apply_group,
    c.GROUP_DELETED: apply_group,
    c.GROUP_MEMBER_ADDED: apply_link,
    c.GROUP_MEMBER_REMOVED: apply_link,
}


def handle(event: Event, conn: Connection) -> str:
    """Apply one lifecycle event; returns the outcome (applied, stale, ignored)."""
    handler = _HANDLERS.get(event.kind)
    return handler(event, conn) if handler else "ignored"
