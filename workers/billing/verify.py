"""`provisioner billing verify`: an independent check of the billing topic against PostgreSQL.

It reads the whole `billing` topic as a consumer with `read_committed` (no group, nothing
committed), replays it per member, and reports:
- first-login facts (seat ledger rows) without their event, first-login events without a fact,
  and any event id seen more than once;
- per member, seat events out of their only possible order: `first_login` (version 1), then
  `released` and `restored` in turn, each one version more;
- members whose seat the topic says is held but who are not active in PostgreSQL, active members
  whose seat the topic does not hold, and ledger rows whose state or version differ from the topic.
Billing events still in the outbox (not yet relayed) count as on the topic, after it, and are
reported as pending. Records of an older contract (before the seat ledger: keyed by email, no seat
versions) count for the first-login check only, and their members' seats are not compared. A
difference may be work in flight, so `verify_until_settled` re-checks.
"""

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, text

from core.settings import Settings
from events import catalogue as c
from events import kafka
from events.envelope import SCHEMA_BASE

_FIRST, _RELEASED, _RESTORED = c.BILLING_FIRST_LOGIN.type, c.BILLING_SEAT_RELEASED.type, c.BILLING_SEAT_RESTORED.type
_MOVES = {_FIRST, _RELEASED, _RESTORED}
_NEXT = {_FIRST: _RELEASED, _RESTORED: _RELEASED, _RELEASED: _RESTORED}  # the only move after each


@dataclass
class Report:
    facts: int = 0
    events: int = 0
    first_login_events: int = 0
    seats_held: int = 0
    active_members: int = 0
    pending: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=dict)
    out_of_order: list[dict[str, Any]] = field(default_factory=list)
    seat_differences: list[dict[str, Any]] = field(default_factory=list)
    undecodable: int = 0
    older_contract: int = 0

    @property
    def clean(self) -> bool:
        return not (
            self.missing or self.unexpected or self.duplicates or self.undecodable or self.out_of_order or self.seat_differences
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "clean": self.clean,
            "facts": self.facts,
            "events": self.events,
            "first_login_events": self.first_login_events,
            "seats_held": self.seats_held,
            "active_members": self.active_members,
            "pending": len(self.pending),
            "missing": self.missing,
            "unexpected": self.unexpected,
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
            "seat_differences": self.seat_differences,
            "undecodable": self.undecodable,
            "older_contract": self.older_contract,
        }


def read_topic(settings: Settings) -> list[bytes]:
    """Every committed record of the billing topic, from the beginning to the current end."""
    return list(kafka.read_to_end(settings, [settings.topic_billing]))


_Member = tuple[str, str]  # (org id, member id)


@dataclass
class _Seat:
    """One member's seat as the topic tells it."""

    state: str | None = None  # "held", "released", None before any first login
    version: int = 0


def verify(settings: Settings, engine: Engine, org_ids: list[str] | None = None) -> Report:
    """Compare the topic with PostgreSQL; `org_ids` narrows both to some orgs."""
    report = Report()
    scope = "" if org_ids is None else " AND org_id = ANY(CAST(:orgs AS uuid[]))"
    with engine.connect() as conn:
        ledger = {
            (str(r.org_id), str(r.member_id)): r
            for r in conn.execute(text("SELECT * FROM seats WHERE true" + scope), {"orgs": org_ids})
        }
        active = {
            (str(r[0]), str(r[1]))
            for r in conn.execute(text("SELECT org_id, id FROM members WHERE status = 'active'" + scope), {"orgs": org_ids})
        }
        outbox = _outbox(conn, settings, scope, org_ids)
    ids: Counter[str] = Counter()
    seen: set[str] = set()
    first_logins: set[str] = set()
    seats: dict[_Member, _Seat] = {}
    legacy: set[tuple[object, object]] = set()
    for raw in [*read_topic(settings), *outbox.values()]:
        try:
            ce = orjson.loads(raw)
            event_id, kind = str(ce["id"]), ce["type"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            report.undecodable += 1
            continue
        if org_ids is not None and ce.get("orgid") not in org_ids:
            continue
        ids[event_id] += 1
        if event_id in seen:
            continue  # a duplicate (reported): consumers drop it by id
        seen.add(event_id)
        if kind == _FIRST:
            first_logins.add(event_id)
        if not str(ce.get("dataschema", "")).startswith(SCHEMA_BASE):
            report.older_contract += 1  # published before the seat ledger: keyed by email, no seat versions
            legacy.add((ce.get("orgid"), ce.get("data", {}).get("member_id")))
            continue
        if kind in _MOVES:
            _replay(report, seats.setdefault((ce["orgid"], ce["data"]["member_id"]), _Seat()), ce)
    facts = {str(r.first_login_event_id) for r in ledger.values()}
    on_topic = first_logins - set(outbox)
    report.facts, report.events, report.first_login_events = len(facts), sum(ids.values()), len(on_topic)
    report.pending = sorted(set(outbox))
    report.missing = sorted(facts - first_logins)
    report.unexpected = sorted(first_logins - facts)
    report.duplicates = {i: n for i, n in ids.items() if n > 1}
    held = {m for m, seat in seats.items() if seat.state == "held"}
    report.seats_held, report.active_members = len(held), len(active)
    report.seat_differences = [
        d for d in _differences(seats, held, active, ledger) if (d["org_id"], d["member_id"]) not in legacy
    ]
    return report


def _outbox(conn: Connection, settings: Settings, scope: str, org_ids: list[str] | None) -> dict[str, bytes]:
    """Billing events committed but not relayed yet, in the order they will be published."""
    rows = conn.execute(
        text(
            "SELECT event_id, payload FROM outbox WHERE topic = :t"
            + scope.replace("org_id", "CAST(payload->>'orgid' AS uuid)")
            + " ORDER BY id"
        ),
        {"t": settings.topic_billing, "orgs": org_ids},
    )
    return {str(r.event_id): orjson.dumps(r.payload) for r in rows}


def _replay(report: Report, seat: _Seat, ce: dict[str, Any]) -> None:
    """Apply one seat event to the member's seat, reporting a move the ledger could never make."""
    kind, version = ce["type"], ce.get("resourceversion")
    expected = _FIRST if seat.state is None else _NEXT[_FIRST if seat.state == "held" else _RELEASED]
    if kind != expected or version != seat.version + 1:
        report.out_of_order.append(
            {
                "org_id": ce["orgid"], "member_id": ce["data"]["member_id"], "event_id": ce["id"], "type": kind,
                "resourceversion": version, "expected_type": expected, "expected_resourceversion": seat.version + 1,
            }
        )  # fmt: skip
    seat.state = "released" if kind == _RELEASED else "held"
    seat.version = version if isinstance(version, int) else seat.version + 1


def _differences(
    seats: dict[_Member, _Seat], held: set[_Member], active: set[_Member], ledger: dict[_Member, Any]
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for org_id, member_id in sorted(held - active):
        found.append({"org_id": org_id, "member_id": member_id, "problem": "seat held on the topic, member not active"})
    for org_id, member_id in sorted(active - held):
        found.append({"org_id": org_id, "member_id": member_id, "problem": "member active, seat not held on the topic"})
    for key in sorted(set(ledger) | set(seats)):
        row, seat = ledger.get(key), seats.get(key, _Seat())
        if row is None or (row.state, row.version) != (seat.state, seat.version):
            found.append(
                {
                    "org_id": key[0], "member_id": key[1], "problem": "seat ledger differs from the topic",
                    "ledger": None if row is None else {"state": row.state, "version": row.version},
                    "topic": {"state": seat.state, "version": seat.version},
                }
            )  # fmt: skip
    return found


def verify_until_settled(settings: Settings, engine: Engine, wait_seconds: float, org_ids: list[str] | None = None) -> Report:
    """Verify, re-checking while events are in flight (pending in the outbox, or differences that
    work still in the pipeline may settle), up to wait_seconds."""
    deadline = time.monotonic() + wait_seconds
    while True:
        report = verify(settings, engine, org_ids)
        if (report.clean and not report.pending) or time.monotonic() >= deadline:
            return report
        time.sleep(1.0)
