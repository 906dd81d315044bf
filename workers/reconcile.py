"""`provisioner reconcile SLUG [--fix]`: SCIM resources, members, the seat ledger and the billing
topic compared, every drift reported, and, with `--fix`, each repaired through the rules and events
a normal change goes through.

The drifts, by kind (`KINDS`), and how `--fix` repairs each:

- `scim_user_without_member`: a SCIM user with no live member. The membership rules apply the
  user as a `user.created` (a new member, `member.created`).
- `member_without_scim_user`: a SCIM member whose SCIM user is gone. The membership rules apply a
  `user.deleted` (`member.removed`; the billing worker then releases a held seat as usual).
- `member_status_differs`: a SCIM user inactive whose member is not deactivated, or the reverse.
  The membership rules apply a `user.deactivated` or `user.reactivated` (`member.deactivated`,
  `member.reactivated`).
- `seat_held_by_inactive_member`: a held seat of a deactivated or removed member. The billing
  rules apply the member's `member.deactivated` or `member.removed` (`billing.seat.released`).
- `active_member_without_seat`: a member who signed in (status active) with no seat. The billing
  rules apply their `member.logged_in_first_time` (`billing.member.first_login`, once, ever).
- `billing_event_missing`: a first-login fact of the ledger whose event is neither on the billing
  topic nor in the outbox. The same event (same id, derived from the org and member) is staged again.
- `billing_topic_differs`: what else `provisioner billing verify` finds for the org (an event
  without its fact, a duplicate id, seat moves out of order): reported, not repaired, since the
  topic is append-only; the report says what to look at.

Each repair is one transaction of its own, through the workers' own handlers, so its events are
exactly those a normal change would stage, in the outbox, for the relay. A change younger than
`min_age_seconds` is left alone (it may still be on its way through the pipeline).
"""

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from core.settings import Settings
from domain.model import SeatState
from domain.postgres import SqlUnitOfWork
from events import catalogue as c
from events import outbox
from events.envelope import UNVERSIONED, Event
from events.user_view import user_snapshot
from workers import billing, membership
from workers.billing.verify import verify

KINDS = (
    "scim_user_without_member", "member_without_scim_user", "member_status_differs", "seat_held_by_inactive_member",
    "active_member_without_seat", "billing_event_missing", "billing_topic_differs",
)  # fmt: skip


@dataclass
class Drift:
    kind: str
    org_id: str
    detail: str
    member_id: str | None = None
    scim_user_id: str | None = None
    fixed: bool = False
    staged: list[str] = field(default_factory=list)  # the event types the repair staged
    facts: dict[str, Any] = field(default_factory=dict)  # what the repair needs, from the finding query

    def as_dict(self) -> dict[str, Any]:
        out = {"kind": self.kind, "org_id": self.org_id, "member_id": self.member_id, "scim_user_id": self.scim_user_id,
               "detail": self.detail}
        return out | ({"fixed": self.fixed, "staged": self.staged} if self.fixed or self.staged else {})


_OLD = "< now() - make_interval(secs => :age)"
_ORG = "(CAST(:org AS uuid) IS NULL OR {t}.org_id = CAST(:org AS uuid))"

_SCIM_WITHOUT_MEMBER = text(f"""
SELECT r.org_id::text, r.id, r.version, r.data FROM scim_resources r
WHERE r.resource_type = 'User' AND {_ORG.format(t="r")} AND r.updated_at {_OLD}
  AND NOT EXISTS (SELECT 1 FROM members m WHERE m.org_id = r.org_id AND m.scim_user_id = r.id AND m.status <> 'removed')
ORDER BY r.org_id, r.id""")
_MEMBER_WITHOUT_SCIM = text(f"""
SELECT m.org_id::text, m.id::text, m.scim_user_id, m.seq FROM members m
WHERE m.source = 'scim' AND m.status <> 'removed' AND {_ORG.format(t="m")} AND m.updated_at {_OLD}
  AND NOT EXISTS (SELECT 1 FROM scim_resources r WHERE r.org_id = m.org_id AND r.id = m.scim_user_id
                  AND r.resource_type = 'User')
ORDER BY m.org_id, m.id""")
_STATUS_DIFFERS = text(f"""
SELECT m.org_id::text, m.id::text, m.scim_user_id, m.status, m.seq, r.version, r.data FROM members m
JOIN scim_resources r ON r.org_id = m.org_id AND r.id = m.scim_user_id AND r.resource_type = 'User'
WHERE m.source = 'scim' AND m.status <> 'removed' AND {_ORG.format(t="m")}
  AND m.updated_at {_OLD} AND r.updated_at {_OLD}
  AND ((r.data->>'active' = 'false') <> (m.status = 'deactivated'))
ORDER BY m.org_id, m.id""")
_SEAT_HELD = text(f"""
SELECT s.org_id::text, s.member_id::text, m.status, m.source FROM seats s
JOIN members m ON m.id = s.member_id AND m.org_id = s.org_id
WHERE s.state = 'held' AND m.status IN ('deactivated', 'removed') AND {_ORG.format(t="s")}
  AND s.updated_at {_OLD} AND m.updated_at {_OLD}
ORDER BY s.org_id, s.member_id""")
_ACTIVE_WITHOUT_SEAT = text(f"""
SELECT m.org_id::text, m.id::text, m.source, m.first_login_at FROM members m
WHERE m.status = 'active' AND m.first_login_at IS NOT NULL AND {_ORG.format(t="m")} AND m.updated_at {_OLD}
  AND NOT EXISTS (SELECT 1 FROM seats s WHERE s.org_id = m.org_id AND s.member_id = m.id)
ORDER BY m.org_id, m.id""")


def find(settings: Settings, engine: Engine, org_id: str | None, *, min_age_seconds: float = 60.0,
         with_topic: bool = True) -> list[Drift]:
    """Every drift of one org (or of all, `org_id` None) in rows unchanged for `min_age_seconds`;
    the billing topic is read once (`with_topic`)."""
    params = {"org": org_id, "age": min_age_seconds}
    with engine.connect() as conn:
        drifts = _in_postgres(conn, params)
    if with_topic:
        drifts += _on_the_topic(settings, engine, params, {(d.org_id, d.member_id) for d in drifts})
    return drifts


def _in_postgres(conn: Connection, params: dict[str, Any]) -> list[Drift]:
    drifts: list[Drift] = []
    for org, user_id, version, data in conn.execute(_SCIM_WITHOUT_MEMBER, params):
        drifts.append(Drift("scim_user_without_member", org, f"SCIM user {user_id} has no member", scim_user_id=user_id,
                            facts={"version": version, "data": data}))
    for org, member_id, user_id, seq in conn.execute(_MEMBER_WITHOUT_SCIM, params):
        drifts.append(Drift("member_without_scim_user", org, f"member of SCIM user {user_id}, which is gone",
                            member_id=member_id, scim_user_id=user_id, facts={"version": seq}))
    for org, member_id, user_id, status, seq, version, data in conn.execute(_STATUS_DIFFERS, params):
        active = data.get("active") is not False
        drifts.append(Drift("member_status_differs", org, f"SCIM user {'active' if active else 'inactive'}, member {status}",
                            member_id=member_id, scim_user_id=user_id, facts={"version": max(seq, version), "data": data}))
    for org, member_id, status, source in conn.execute(_SEAT_HELD, params):
        drifts.append(Drift("seat_held_by_inactive_member", org, f"seat held, member {status}", member_id=member_id,
                            facts={"status": status, "source": source}))
    for org, member_id, source, first_login_at in conn.execute(_ACTIVE_WITHOUT_SEAT, params):
        drifts.append(Drift("active_member_without_seat", org, f"signed in {first_login_at.isoformat()}, no seat",
                            member_id=member_id, facts={"source": source, "first_login_at": first_login_at}))
    return drifts


def _on_the_topic(settings: Settings, engine: Engine, params: dict[str, Any], seen: set[tuple[str, str | None]]) -> list[Drift]:
    org_id = params["org"]
    report = verify(settings, engine, None if org_id is None else [org_id])
    drifts: list[Drift] = []
    if report.missing:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT org_id::text, member_id::text, first_login_event_id::text, first_login_at FROM seats "
                f"WHERE first_login_event_id = ANY(CAST(:ids AS uuid[])) AND updated_at {_OLD}"
            ), {"ids": report.missing, "age": params["age"]}).all()  # fmt: skip
        for org, member_id, event_id, at in rows:
            drifts.append(Drift("billing_event_missing", org, f"first-login event {event_id} is not on the billing topic",
                                member_id=member_id, facts={"event_id": event_id, "first_login_at": at}))
    covered = seen | {(d.org_id, d.member_id) for d in drifts} | _changed_lately(engine, params)
    for difference in report.seat_differences + report.out_of_order:
        key = (difference["org_id"], difference["member_id"])
        if key not in covered:  # a ledger repair above moves the topic too
            covered.add(key)
            drifts.append(Drift("billing_topic_differs", key[0], f"{difference.get('problem', 'seat event out of order')} "
                                "(provisioner billing verify --json)", member_id=key[1]))
    for event_id in report.unexpected + sorted(report.duplicates):
        drifts.append(Drift("billing_topic_differs", org_id or "", f"billing event {event_id}: without its fact, or "
                            "more than once (provisioner billing verify --json)"))
    return drifts


def _changed_lately(engine: Engine, params: dict[str, Any]) -> set[tuple[str, str | None]]:
    """Members whose row or seat changed within the min age: their billing events may be in flight."""
    young = "> now() - make_interval(secs => :age)"
    with engine.connect() as conn:
        rows = conn.execute(text(
            f"SELECT org_id::text, id::text FROM members m WHERE {_ORG.format(t='m')} AND updated_at {young} UNION "
            f"SELECT org_id::text, member_id::text FROM seats s WHERE {_ORG.format(t='s')} AND updated_at {young}"
        ), params).all()  # fmt: skip
    return {(org, member) for org, member in rows}


# -- repairs ---------------------------------------------------------------------------------


def fix(settings: Settings, engine: Engine, drifts: list[Drift]) -> list[Drift]:
    """Repair each drift that can be, one transaction each; returns the drifts with `fixed` and `staged` set."""
    topics = settings.topics()
    slugs = _slugs(engine, {d.org_id for d in drifts})
    run = uuid.uuid4().hex  # the synthetic events of this run: new ids, never taken for redeliveries
    for drift in drifts:
        repair = _REPAIRS.get(drift.kind)
        if repair is None:
            continue
        with SqlUnitOfWork.begin(engine, topics) as uow:
            outbox.track_staged(uow.conn)
            try:
                outcomes = repair(uow, drift, slugs.get(drift.org_id, ""), run)
            finally:
                drift.staged = outbox.staged_types(uow.conn)  # a repair that raised stops the tracking too
        drift.fixed = bool(outcomes) and all(o == "applied" for o in outcomes)
    return drifts


def _slugs(engine: Engine, org_ids: set[str]) -> dict[str, str]:
    with engine.connect() as conn:
        query = text("SELECT id::text, slug FROM orgs WHERE id = ANY(CAST(:ids AS uuid[]))")
        return dict(conn.execute(query, {"ids": sorted(org_ids)}).all())


def _user_event(kind: c.EventType, drift: Drift, slug: str, run: str) -> Event:
    data = drift.facts.get("data") or {}
    snapshot = user_snapshot(str(drift.scim_user_id), data)
    if kind is c.USER_DEACTIVATED:
        snapshot["active"] = False
    payload = c.PAYLOAD_OF[kind](**snapshot)
    return Event.of(payload, org_id=drift.org_id, org_slug=slug, version=int(drift.facts["version"]),
                    occasion=f"reconcile:{run}", correlation_id=f"reconcile-{run}")


def _member_fact(kind: c.EventType, drift: Drift, slug: str, run: str, at: datetime | None = None) -> Event:
    payload = c.PAYLOAD_OF[kind](
        member_id=drift.member_id, email=None, source=drift.facts.get("source", "scim"),  # type: ignore[call-arg]
        status=drift.facts.get("status", "active"), first_login_at=at.isoformat() if at else None,
        cause_event_id=f"reconcile:{run}:{drift.member_id}",
    )
    event = Event.of(payload, org_id=drift.org_id, org_slug=slug, version=UNVERSIONED, occasion=run,
                     correlation_id=f"reconcile-{run}")
    return event if at is None else replace(event, time=at)


def _scim_user(uow: SqlUnitOfWork, drift: Drift, slug: str, run: str) -> list[str]:
    if drift.kind == "scim_user_without_member":
        kind = c.USER_CREATED
    elif drift.kind == "member_without_scim_user":
        kind = c.USER_DELETED
    else:
        kind = c.USER_REACTIVATED if (drift.facts["data"] or {}).get("active") is not False else c.USER_DEACTIVATED
    return list(membership.Membership().apply([_user_event(kind, drift, slug, run)], uow))


def _seat(uow: SqlUnitOfWork, drift: Drift, slug: str, run: str) -> list[str]:
    if drift.kind == "seat_held_by_inactive_member":
        kind = c.MEMBER_REMOVED if drift.facts["status"] == "removed" else c.MEMBER_DEACTIVATED
        return list(billing.Billing().apply([_member_fact(kind, drift, slug, run)], uow))
    event = _member_fact(c.MEMBER_LOGGED_IN_FIRST_TIME, drift, slug, run, at=drift.facts["first_login_at"])
    return list(billing.Billing().apply([event], uow))


def _billing_event(uow: SqlUnitOfWork, drift: Drift, slug: str, run: str) -> list[str]:
    """The first-login event again, built as the billing worker built it: its id must be the ledger's."""
    seat = uow.seats.get(drift.org_id, str(drift.member_id))
    if seat is None or seat.state not in (SeatState.HELD, SeatState.RELEASED):
        return []
    cause = _member_fact(c.MEMBER_LOGGED_IN_FIRST_TIME, drift, slug, run, at=seat.first_login_at)
    event = billing.first_login_billing_event(cause)
    if event.id != drift.facts["event_id"]:
        return []  # not the event the ledger recorded: leave it to an operator
    uow.stage([event])
    return ["applied"]


_REPAIRS = {
    "scim_user_without_member": _scim_user, "member_without_scim_user": _scim_user, "member_status_differs": _scim_user,
    "seat_held_by_inactive_member": _seat, "active_member_without_seat": _seat, "billing_event_missing": _billing_event,
}  # fmt: skip


def counts(drifts: list[Drift]) -> dict[str, int]:
    """Drifts per kind, every kind present (for the gauge and the report)."""
    found = dict.fromkeys(KINDS, 0)
    for drift in drifts:
        found[drift.kind] += 1
    return found

