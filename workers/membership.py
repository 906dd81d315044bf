"""The membership worker: applies user and group lifecycle, manual adds and sign-ins to the
org's membership.

Statuses: `provisioned` (pushed or added, never logged in), `active` (has logged in),
`deactivated`, `removed`. An event older than the state it would change (`resourceversion`
below the applied one) is stale and changes nothing, so redelivery and reordering are
harmless. Every member it creates is announced (`member.created`, for the conflict worker),
and what arrived for a member is kept as its activity.
"""

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, text, update
from sqlalchemy.dialects.postgresql import insert

from core.tables import member_activity, member_group_links, member_groups, members, pending_logins
from events import catalogue as c
from events.envelope import Event
from workers import member_events, membership_batch

CONSUMER = "membership"


class Membership:
    """The handlers, bound to the topic names member events go to."""

    def __init__(self, topics: dict[str, str]):
        self.topics = topics

    def __call__(self, event: Event, conn: Connection) -> str:
        """Apply one lifecycle event; returns the outcome (applied, stale, pending, ignored)."""
        if event.kind is c.LOGIN_SUCCEEDED:
            return self.apply_login(event, conn)
        if event.kind is c.MEMBER_MANUALLY_ADDED:
            return self.apply_manual_add(event, conn)
        handler = _HANDLERS.get(event.kind)
        if handler is None:
            return "ignored"
        before = _status_snapshot(conn, event)
        outcome = handler(event, conn)
        if outcome == "applied" and event.kind in _USER_EVENTS:
            self._after_user_change(event, conn, before)
        return outcome

    def apply_batch(self, events: list[Event], conn: Connection) -> list[str]:
        """The same as calling this handler on each event in order, set-wise (membership_batch)."""
        return membership_batch.apply_batch(events, conn, self, self.topics)

    def _after_user_change(self, event: Event, conn: Connection, before: str | None) -> None:
        row = _member(conn, event)
        if row is None:
            return
        _activity(conn, event, row.id, "scim", {"active": event.data.get("active"), "email": event.data.get("email")})
        if before is None and row.status != "removed":
            self._emit(conn, c.MEMBER_CREATED, event, row)
        kind = member_events.transition(before, row.status)
        if kind is not None:
            self._emit(conn, kind, event, row)
        if before is None and row.email_ci and row.status == "provisioned":
            self._claim_pending_login(conn, event, row)

    def _claim_pending_login(self, conn: Connection, event: Event, row: Any) -> None:
        """A login that arrived before its member existed counts now, as that member's first."""
        _lock_person(conn, event.org_id, row.email_ci)
        pending = conn.execute(
            delete(pending_logins)
            .where(pending_logins.c.org_id == event.org_id, pending_logins.c.email_ci == row.email_ci)
            .returning(pending_logins.c.logged_in_at)
        ).first()
        if pending is not None:
            self._first_login(conn, event, row, pending.logged_in_at)

    def apply_manual_add(self, event: Event, conn: Connection) -> str:
        """An admin added a person by hand: a `provisioned` member with source `manual`."""
        email = event.data["email"]
        email_ci = email.lower()
        _lock_person(conn, event.org_id, email_ci)
        exists = conn.execute(
            select(members.c.id).where(members.c.org_id == event.org_id, members.c.email_ci == email_ci, members.c.status != "removed")
        ).first()
        if exists:
            return "ignored"
        member_id = str(uuid.uuid4())
        conn.execute(
            insert(members).values(
                id=member_id, org_id=event.org_id, email=email, email_ci=email_ci, user_name=email,
                display_name=event.data.get("display_name"), status="provisioned", source="manual",
            )
        )
        row = conn.execute(select(members).where(members.c.id == member_id)).first()
        _activity(conn, event, member_id, "manual", {"actor": event.data.get("actor"), "email": email})
        self._emit(conn, c.MEMBER_CREATED, event, row)
        self._claim_pending_login(conn, event, row)
        return "applied"

    def apply_login(self, event: Event, conn: Connection) -> str:
        """A sign-in: the member's first one makes them active and is announced once."""
        email_ci = event.data["email"].lower()
        at = datetime.fromisoformat(event.data["logged_in_at"])
        _lock_person(conn, event.org_id, email_ci)
        row = conn.execute(
            select(members)
            .where(members.c.org_id == event.org_id, members.c.email_ci == email_ci, members.c.status != "removed")
            .order_by(members.c.created_at)
            .limit(1)
            .with_for_update()
        ).first()
        if row is None:
            if not event.data.get("jit"):
                conn.execute(
                    insert(pending_logins)
                    .values(org_id=event.org_id, email_ci=email_ci, event_id=event.id, logged_in_at=at, method=event.data["method"])
                    .on_conflict_do_nothing()
                )
                return "pending"
            member_id = str(uuid.uuid4())
            conn.execute(
                insert(members).values(
                    id=member_id, org_id=event.org_id, email=event.data["email"], email_ci=email_ci,
                    user_name=event.data["email"], status="active", source="sso", first_login_at=at,
                )
            )
            row = conn.execute(select(members).where(members.c.id == member_id)).first()
            _activity(conn, event, member_id, "sso", _login_summary(event))
            self._emit(conn, c.MEMBER_CREATED, event, row)
            self._emit(conn, c.MEMBER_LOGGED_IN_FIRST_TIME, event, row)
            return "applied"
        _activity(conn, event, row.id, "sso" if event.data.get("sso") else "app", _login_summary(event))
        if row.first_login_at is None and row.status in ("provisioned", "active"):
            self._first_login(conn, event, row, at)
        return "applied"

    def _first_login(self, conn: Connection, cause: Event, row: Any, at: datetime) -> None:
        conn.execute(
            update(members).where(members.c.id == row.id).values(first_login_at=at, status="active", updated_at=_now())
        )
        row = conn.execute(select(members).where(members.c.id == row.id)).first()
        self._emit(conn, c.MEMBER_LOGGED_IN_FIRST_TIME, cause, row)

    def _emit(self, conn: Connection, kind: c.EventType, cause: Event, row: Any) -> None:
        member_events.emit(
            conn, self.topics, kind, cause=cause, member_id=row.id, email=row.email, source=row.source,
            status=row.status, first_login_at=row.first_login_at,
        )


def _login_summary(event: Event) -> dict[str, Any]:
    return {"method": event.data.get("method"), "idp": event.data.get("idp"), "jit": event.data.get("jit")}


# Statements on the per-event path are built once: building them per row cost more CPU than
# executing them (see docs/benchmarks.md).
_INSERT_ACTIVITY = member_activity.insert()
_LOCK_PERSON = text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))")
_MEMBER_BY_SCIM_ID = (
    select(members)
    .where(members.c.org_id == bindparam("org_id"), members.c.scim_user_id == bindparam("scim_user_id"))
    .with_for_update()
)
_INSERT_SCIM_MEMBER = insert(members).on_conflict_do_nothing(constraint="ux_members_scim_user")
_UPDATE_MEMBER = (
    update(members)
    .where(members.c.id == bindparam("member_id"))
    .values(
        user_name=bindparam("user_name"), email=bindparam("email"), email_ci=bindparam("email_ci"),
        display_name=bindparam("display_name"), seq=bindparam("seq"), updated_at=bindparam("updated_at"),
        status=bindparam("status"),
    )
)


def _activity(conn: Connection, event: Event, member_id: str, source: str, summary: dict[str, Any]) -> None:
    conn.execute(
        _INSERT_ACTIVITY,
        {"org_id": event.org_id, "member_id": member_id, "event_id": event.id, "type": event.type, "source": source, "summary": summary},
    )


def _lock_person(conn: Connection, org_id: str, email_ci: str) -> None:
    """Serialise a login and the creation of the member it is for, across worker processes."""
    conn.execute(_LOCK_PERSON, {"k": f"{org_id}:{email_ci}"})


def _status_snapshot(conn: Connection, event: Event) -> str | None:
    if event.kind not in _USER_EVENTS:
        return None
    row = _member(conn, event)
    return row.status if row else None


def _now() -> datetime:
    return datetime.now(UTC)


def _member(conn: Connection, event: Event) -> Any:
    return conn.execute(_MEMBER_BY_SCIM_ID, {"org_id": event.org_id, "scim_user_id": event.data["user_id"]}).first()


def apply_user(event: Event, conn: Connection) -> str:
    row = _member(conn, event)
    data = event.data
    email = member_events.email_of(data)
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
            values["status"] = member_events.status_after(event, None)
        conn.execute(
            _INSERT_SCIM_MEMBER,
            {"id": str(uuid.uuid4()), "org_id": event.org_id, "scim_user_id": data["user_id"], "source": "scim", **values},
        )
        return "applied"
    if event.resource_version < row.seq or row.status == "removed":
        return "stale"
    values["status"] = member_events.status_after(event, row.first_login_at)
    conn.execute(_UPDATE_MEMBER, {"member_id": row.id, **values})
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


_USER_EVENTS = member_events.USER_EVENTS

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

