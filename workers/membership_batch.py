"""The membership worker's set-wise path: a batch's user and group-member events in a few
statements, with the same effect as applying them one by one (workers/membership.py).

A batch is cut into runs of consecutive events of one family (user lifecycle, group member
links); any other event is applied alone, in its place, so the order of events within a
partition is kept. For a run of user events the members concerned are read and locked once,
the events are applied to them in memory in order (statuses, versions, the member events they
announce, pending sign-ins they claim), and the result is written back with one statement per
table. The one-by-one handlers stay the reference: the test suite checks both give the same
state (tests/integration/test_membership_batch.py), and a batch whose set-wise attempt fails is
run again one by one.
"""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Text, bindparam, cast, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert

from core.tables import member_activity, member_group_links, member_groups, members, pending_logins
from events import catalogue as c
from events import outbox
from events.envelope import Event
from workers import member_events

USER_EVENTS = member_events.USER_EVENTS
LINK_EVENTS = frozenset({c.GROUP_MEMBER_ADDED, c.GROUP_MEMBER_REMOVED})

_ORG_IDS = func.any(cast(bindparam("org_ids"), ARRAY(UUID(as_uuid=False))))
_COLUMNS = ("id", "org_id", "scim_user_id", "user_name", "email", "email_ci", "display_name", "status", "source", "seq", "version", "first_login_at")

_MEMBERS_BY_SCIM_ID = (
    select(*(members.c[name] for name in _COLUMNS))
    .where(members.c.org_id == _ORG_IDS, members.c.scim_user_id == func.any(cast(bindparam("user_ids"), ARRAY(Text))))
    .with_for_update()
)
_PENDING = (
    select(pending_logins.c.org_id, pending_logins.c.email_ci, pending_logins.c.logged_in_at)
    .where(pending_logins.c.org_id == _ORG_IDS, pending_logins.c.email_ci == func.any(cast(bindparam("emails"), ARRAY(Text))))
    .with_for_update()
)
# in a fixed order, so two workers locking overlapping people cannot deadlock on each other
_LOCK_PEOPLE = text(
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM (SELECT k FROM unnest(CAST(:keys AS text[])) AS k ORDER BY k) AS people"
)
_INSERT_MEMBERS = insert(members)
_UPDATE_MEMBERS = (
    update(members)
    .where(members.c.id == bindparam("member_id"))
    .values(
        user_name=bindparam("user_name"), email=bindparam("email"), email_ci=bindparam("email_ci"),
        display_name=bindparam("display_name"), seq=bindparam("seq"), status=bindparam("status"),
        version=bindparam("version"), first_login_at=bindparam("first_login_at"), updated_at=bindparam("updated_at"),
    )
)
_UNLINK_USER = (
    update(member_group_links)
    .where(member_group_links.c.org_id == bindparam("o"), member_group_links.c.scim_user_id == bindparam("u"))
    .values(present=False)
)
_DELETE_PENDING = delete(pending_logins).where(pending_logins.c.org_id == bindparam("o"), pending_logins.c.email_ci == bindparam("e"))
_INSERT_ACTIVITY = member_activity.insert()

_DELETED_GROUPS = select(member_groups.c.org_id, member_groups.c.group_id, member_groups.c.seq).where(
    member_groups.c.org_id == _ORG_IDS,
    member_groups.c.group_id == func.any(cast(bindparam("group_ids"), ARRAY(Text))),
    member_groups.c.deleted.is_(True),
)
_upsert = insert(member_group_links)
_UPSERT_LINKS = _upsert.on_conflict_do_update(
    index_elements=["org_id", "group_id", "scim_user_id"],
    set_={"present": _upsert.excluded.present, "seq": _upsert.excluded.seq},
    where=member_group_links.c.seq <= _upsert.excluded.seq,
).returning(member_group_links.c.org_id, member_group_links.c.group_id, member_group_links.c.scim_user_id)


def apply_batch(events: list[Event], conn: Connection, one: Callable[[Event, Connection], str], topics: dict[str, str]) -> list[str]:
    """Outcomes in the order of `events`; `one` applies an event of no set-wise family."""
    outcomes: list[str] = []
    run: list[Event] = []
    family: frozenset[c.EventType] | None = None

    def flush() -> None:
        if run:
            outcomes.extend(_Users(conn, topics).apply(run) if family is USER_EVENTS else _apply_links(conn, run))
            run.clear()

    for event in events:
        kind = USER_EVENTS if event.kind in USER_EVENTS else LINK_EVENTS if event.kind in LINK_EVENTS else None
        if kind is not family:
            flush()
            family = kind
        if kind is None:
            outcomes.append(one(event, conn))
        else:
            run.append(event)
    flush()
    return outcomes


class _Users:
    """A run of user lifecycle events, applied in memory to the locked members, then written."""

    def __init__(self, conn: Connection, topics: dict[str, str]):
        self.conn = conn
        self.topics = topics
        self.now = datetime.now(UTC)
        self.state: dict[tuple[str, str], dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []
        self.changed: dict[str, dict[str, Any]] = {}
        self.unlinked: list[dict[str, str]] = []
        self.activity: list[dict[str, Any]] = []
        self.announced: list[Event] = []
        self.pending: dict[tuple[str, str], datetime] = {}
        self.claimed: list[dict[str, str]] = []

    def apply(self, events: list[Event]) -> list[str]:
        self._load(events)
        outcomes = [self._apply(event) for event in events]
        self._write()
        return outcomes

    def _load(self, events: list[Event]) -> None:
        org_ids = sorted({e.org_id for e in events})
        rows = self.conn.execute(_MEMBERS_BY_SCIM_ID, {"org_ids": org_ids, "user_ids": sorted({e.data["user_id"] for e in events})})
        wanted = {(e.org_id, e.data["user_id"]) for e in events}
        for row in rows:
            if (row.org_id, row.scim_user_id) in wanted:
                self.state[(row.org_id, row.scim_user_id)] = dict(row._mapping)
        # people who may become members now: a sign-in that arrived before them counts as their first
        people = sorted({(e.org_id, email.lower()) for e in events if (e.org_id, e.data["user_id"]) not in self.state and (email := member_events.email_of(e.data))})
        if people:
            self.conn.execute(_LOCK_PEOPLE, {"keys": [f"{o}:{e}" for o, e in people]})
            found = self.conn.execute(_PENDING, {"org_ids": org_ids, "emails": sorted({e for _, e in people})})
            wanted_people = set(people)
            self.pending = {(r.org_id, r.email_ci): r.logged_in_at for r in found if (r.org_id, r.email_ci) in wanted_people}

    def _apply(self, event: Event) -> str:
        data = event.data
        key = (event.org_id, data["user_id"])
        member = self.state.get(key)
        before = member["status"] if member else None
        email = member_events.email_of(data)
        values = {
            "user_name": data.get("user_name"), "email": email, "email_ci": email.lower() if email else None,
            "display_name": data.get("display_name"), "seq": event.resource_version,
        }
        if member is None:
            member = {
                "id": str(uuid.uuid4()), "org_id": event.org_id, "scim_user_id": data["user_id"], "source": "scim",
                "version": 0, "first_login_at": None, **values, "status": member_events.status_after(event, None),
            }
            self.state[key] = member
            self.created.append(member)
        else:
            if event.resource_version < member["seq"] or member["status"] == "removed":
                return "stale"
            member.update(values, status=member_events.status_after(event, member["first_login_at"]))
            self.changed[member["id"]] = member
            if event.kind is c.USER_DELETED:
                self.unlinked.append({"o": event.org_id, "u": data["user_id"]})
        self.activity.append({
            "org_id": event.org_id, "member_id": member["id"], "event_id": event.id, "type": event.type, "source": "scim",
            "summary": {"active": data.get("active"), "email": data.get("email")},
        })
        if before is None and member["status"] != "removed":
            self._announce(c.MEMBER_CREATED, event, member)
        kind = member_events.transition(before, member["status"])
        if kind is not None:
            self._announce(kind, event, member)
        if before is None and member["email_ci"] and member["status"] == "provisioned":
            person = (event.org_id, member["email_ci"])
            logged_in_at = self.pending.pop(person, None)
            if logged_in_at is not None:
                self.claimed.append({"o": event.org_id, "e": member["email_ci"]})
                member.update(first_login_at=logged_in_at, status="active")
                self._announce(c.MEMBER_LOGGED_IN_FIRST_TIME, event, member)
        return "applied"

    def _announce(self, kind: c.EventType, cause: Event, member: dict[str, Any]) -> None:
        member["version"] += 1
        self.announced.append(
            member_events.build(
                kind, cause=cause, member_id=member["id"], version=member["version"], email=member["email"],
                source=member["source"], status=member["status"], first_login_at=member["first_login_at"],
            )
        )

    def _write(self) -> None:
        conn = self.conn
        if self.created:
            conn.execute(_INSERT_MEMBERS, [{name: m[name] for name in _COLUMNS} | {"updated_at": self.now} for m in self.created])
        new = {m["id"] for m in self.created}  # inserted with their final state
        changed = [m for m in self.changed.values() if m["id"] not in new]
        if changed:
            conn.execute(_UPDATE_MEMBERS, [
                {"member_id": m["id"], "updated_at": self.now, **{k: m[k] for k in ("user_name", "email", "email_ci", "display_name", "seq", "status", "version", "first_login_at")}}
                for m in changed
            ])
        if self.unlinked:
            conn.execute(_UNLINK_USER, self.unlinked)
        if self.claimed:
            conn.execute(_DELETE_PENDING, self.claimed)
        if self.activity:
            conn.execute(_INSERT_ACTIVITY, self.activity)
        outbox.add(conn, self.announced, self.topics)


def _apply_links(conn: Connection, events: list[Event]) -> list[str]:
    """Group member links: the newest event per link wins, older ones are superseded."""
    outcomes: dict[int, str] = {}
    users = [(i, e) for i, e in enumerate(events) if e.data.get("member_type", "User") == "User"]
    for i, e in enumerate(events):
        if e.data.get("member_type", "User") != "User":
            outcomes[i] = "ignored"
    deleted: dict[tuple[str, str], int] = {}
    if users:
        rows = conn.execute(_DELETED_GROUPS, {
            "org_ids": sorted({e.org_id for _, e in users}), "group_ids": sorted({e.data["group_id"] for _, e in users}),
        })
        deleted = {(r.org_id, r.group_id): r.seq for r in rows}
    newest: dict[tuple[str, str, str], tuple[int, Event]] = {}
    for i, e in users:
        gone = deleted.get((e.org_id, e.data["group_id"]))
        if gone is not None and e.resource_version <= gone:
            outcomes[i] = "stale"  # the group is gone (its deletion travelled on another partition)
            continue
        key = (e.org_id, e.data["group_id"], e.data["member_id"])
        if key not in newest or e.resource_version >= newest[key][1].resource_version:
            newest[key] = (i, e)
    written: set[tuple[str, str, str]] = set()
    if newest:
        rows = conn.execute(_UPSERT_LINKS, [
            {"org_id": k[0], "group_id": k[1], "scim_user_id": k[2], "present": e.kind is c.GROUP_MEMBER_ADDED, "seq": e.resource_version}
            for k, (_, e) in newest.items()
        ])
        written = {(r.org_id, r.group_id, r.scim_user_id) for r in rows}
    for i, e in users:
        if i not in outcomes:
            outcomes[i] = "applied" if (e.org_id, e.data["group_id"], e.data["member_id"]) in written else "stale"
    return [outcomes[i] for i in range(len(events))]
