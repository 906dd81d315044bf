"""The billing worker: turns member facts into what billing systems consume on `billing`, through
the seat ledger (one row per org and member in `seats`, domain.model.SEAT_MOVES says how it moves).

- `billing.member.first_login`: a member's first login, once, ever (version 1 of their seat). The
  ledger row is the uniqueness fact, written in the same transaction as the event's outbox row;
  the id derives from (org, member), so even a re-emission could only repeat the same id, which
  `provisioner billing verify` (workers/billing/verify.py) would report.
- `billing.seat.released`: a billed member was deactivated or removed (held -> released).
- `billing.seat.restored`: a member whose seat was released signed in again after a reactivation,
  or after the IdP created them again (released -> held).
- `billing.seat.overage`: a seat taken beyond the org's seat limit (policy `allow`).
- `billing.member.erased`: a billed member's personal data was erased.

Every event carries the member's seat version as its `resourceversion` (1, 2, 3, ...: first login,
then releases and restores in turn) and derives its id from it, so one member's billing events
are in order, gap-free and idempotent. No personal data: members are ids.
"""

from datetime import datetime

from domain.model import SEAT_MOVES, Outcome, Seat, SeatPolicy, SeatState
from domain.uow import UnitOfWork
from events import catalogue as c
from events.envelope import Event, deterministic_id

CONSUMER = "billing"


def first_login_event_id(org_id: str, member_id: str) -> str:
    return deterministic_id(c.BILLING_FIRST_LOGIN.type, org_id, member_id)


class Billing:
    TYPES = frozenset(k.type for k in (c.MEMBER_LOGGED_IN_FIRST_TIME, c.MEMBER_ERASED, *SEAT_MOVES))

    def apply(self, events: list[Event], uow: UnitOfWork) -> list[Outcome]:
        """Runs of consecutive first logins are billed set-wise (`_first_logins`); any other
        event alone, in its place."""
        outcomes: list[Outcome] = []
        run: list[Event] = []
        for event in [*events, None]:
            if event is not None and event.kind is c.MEMBER_LOGGED_IN_FIRST_TIME:
                run.append(event)
                continue
            if run:
                outcomes += _first_logins(run, uow)
                run = []
            if event is not None:
                outcomes.append(self._one(event, uow))
        return outcomes

    def _one(self, event: Event, uow: UnitOfWork) -> Outcome:
        if event.kind is c.MEMBER_LOGGED_IN_FIRST_TIME:
            return _first_login(event, uow)
        if event.kind in SEAT_MOVES:
            return _move_seat(event, uow)
        if event.kind is c.MEMBER_ERASED:
            return _erased(event, uow)
        return Outcome.IGNORED


def first_login_billing_event(cause: Event) -> Event:
    """`billing.member.first_login` for a member's first login (version 1 of their seat): its id
    derives from the org and member alone, so building it again gives the same event id."""
    at = datetime.fromisoformat(cause.data["first_login_at"])
    return _billing_event(c.BillingFirstLogin, cause, 1, first_login_at=at.isoformat())


def _first_login(event: Event, uow: UnitOfWork) -> Outcome:
    member_id = event.data["member_id"]
    at = datetime.fromisoformat(event.data["first_login_at"])
    billed = first_login_billing_event(event)
    if not uow.seats.add_if_absent(Seat(event.org_id, member_id, SeatState.HELD, 1, at, billed.id)):
        return Outcome.STALE  # billed before: a member has one first login, ever
    uow.stage([billed, *_overage(event, uow, 1)])
    return Outcome.APPLIED


def _first_logins(events: list[Event], uow: UnitOfWork) -> list[Outcome]:
    """`_first_login` of each, in one statement for the seats and one for the events. An org
    that bills overage (policy `allow` under a limit) counts its held seats after each first
    login: its runs are billed one at a time."""
    orgs = {org_id: uow.orgs.by_id(org_id) for org_id in {e.org_id for e in events}}
    if any(o is not None and o.seat_limit is not None and o.seat_policy == SeatPolicy.ALLOW for o in orgs.values()):
        return [_first_login(event, uow) for event in events]
    billed = [first_login_billing_event(event) for event in events]
    seats = [
        Seat(e.org_id, e.data["member_id"], SeatState.HELD, 1, datetime.fromisoformat(e.data["first_login_at"]), b.id)
        for e, b in zip(events, billed, strict=True)
    ]
    added = uow.seats.add_absent(seats)
    outcomes, staged, seen = [], [], set()
    for seat, event in zip(seats, billed, strict=True):
        key = (seat.org_id, seat.member_id)
        if key in added and key not in seen:
            seen.add(key)
            staged.append(event)
            outcomes.append(Outcome.APPLIED)
        else:
            outcomes.append(Outcome.STALE)  # billed before: a member has one first login, ever
    uow.stage(staged)
    return outcomes


def _move_seat(event: Event, uow: UnitOfWork) -> Outcome:
    source, target, reason = SEAT_MOVES[event.kind]
    version = uow.seats.move(event.org_id, event.data["member_id"], source=source, target=target)
    if version is None:
        return Outcome.IGNORED  # never billed, or already in that state
    kind = c.BillingSeatRestored if target is SeatState.HELD else c.BillingSeatReleased
    staged = [_billing_event(kind, event, version, reason=reason)]
    if target is SeatState.HELD:
        staged += _overage(event, uow, version)
    uow.stage(staged)
    return Outcome.APPLIED


def _overage(cause: Event, uow: UnitOfWork, version: int) -> list[Event]:
    """An overage event when the seat just taken is beyond the org's limit (policy `allow`)."""
    org = uow.orgs.by_id(cause.org_id)
    if org is None or org.seat_limit is None or org.seat_policy != SeatPolicy.ALLOW:
        return []
    held = uow.seats.count_held(cause.org_id)
    if held <= org.seat_limit:
        return []
    return [_billing_event(c.BillingSeatOverage, cause, version, seats_held=held, seat_limit=org.seat_limit)]


def _erased(event: Event, uow: UnitOfWork) -> Outcome:
    """Erasure removes the member: a held seat is released first, then billing systems are told
    to erase what they hold about the member."""
    member_id = event.data["member_id"]
    seat = uow.seats.get(event.org_id, member_id)
    if seat is None:
        return Outcome.IGNORED  # never billed: billing systems know nothing about them
    member = uow.members.get(member_id)
    source = member.source if member is not None else None
    staged, version = [], seat.version
    released = uow.seats.move(event.org_id, member_id, source=SeatState.HELD, target=SeatState.RELEASED)
    if released is not None:
        version = released
        staged.append(_billing_event(c.BillingSeatReleased, event, version, source=source, reason="removed"))
    staged.append(_billing_event(c.BillingMemberErased, event, version, source=source))
    uow.stage(staged)
    return Outcome.APPLIED


def _billing_event(kind: type[c.Payload], cause: Event, version: int, **extra: object) -> Event:
    fields: dict[str, object] = {"source": cause.data.get("source"), **extra}
    payload = kind(
        org_id=cause.org_id,  # type: ignore[call-arg]
        org_slug=cause.org_slug,
        member_id=cause.data["member_id"],
        occurred_at=cause.time.isoformat(),
        **fields,
    )
    return Event.of(
        payload, org_id=cause.org_id, org_slug=cause.org_slug, version=version, occasion=version,
        correlation_id=cause.correlation_id,
    ).following(cause)  # fmt: skip
