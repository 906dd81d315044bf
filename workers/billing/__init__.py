"""The billing worker: turns member facts into what billing systems consume on `billing`.

- `billing.member.first_login`: the first login of a person in an org, once, ever. The seat row
  (primary key org + email) is the uniqueness fact, written in the same transaction as the
  event's outbox row; the event id derives from (org, email), so even a re-emission could only
  repeat the same id, which `provisioner billing verify` (workers/billing/verify.py) would report.
- `billing.seat.released`: a billed member was deactivated or removed.
- `billing.seat.restored`: a billed member was reactivated, or a removed person came back
  (re-created by the IdP) and logged in again: the seat is billed again, without a second
  first-login event.
"""

from datetime import datetime

from domain.model import SEAT_MOVES, Outcome, Seat
from domain.uow import UnitOfWork
from events import catalogue as c
from events.envelope import Event, deterministic_id

CONSUMER = "billing"


def first_login_event_id(org_id: str, email_ci: str) -> str:
    return deterministic_id(c.BILLING_FIRST_LOGIN.type, org_id, email_ci)


class Billing:
    def apply(self, events: list[Event], uow: UnitOfWork) -> list[Outcome]:
        return [self._one(event, uow) for event in events]

    def _one(self, event: Event, uow: UnitOfWork) -> Outcome:
        if event.kind is c.MEMBER_LOGGED_IN_FIRST_TIME:
            return _first_login(event, uow)
        if event.kind in SEAT_MOVES:
            return _move_seat(event, uow)
        return Outcome.IGNORED


def _first_login(event: Event, uow: UnitOfWork) -> Outcome:
    email_ci = (event.data.get("email") or "").lower()
    if not email_ci:
        return Outcome.IGNORED
    at = datetime.fromisoformat(event.data["first_login_at"])
    member_id = event.data["member_id"]
    billed = _billing_event(c.BillingFirstLogin, event, first_login_at=at.isoformat())
    if uow.seats.add_if_absent(Seat(event.org_id, email_ci, member_id, at, billed.id, seat_active=True)):
        uow.stage([billed])
        return Outcome.APPLIED
    seat = uow.seats.get(event.org_id, email_ci)
    if seat is not None and seat.seat_active and seat.member_id == member_id:
        return Outcome.STALE
    # the same person, a new membership (re-created by the IdP): bill the seat again, once
    uow.seats.move(event.org_id, email_ci, active=True, member_id=member_id)
    uow.stage([_billing_event(c.BillingSeatRestored, event, reason="returned")])
    return Outcome.APPLIED


def _move_seat(event: Event, uow: UnitOfWork) -> Outcome:
    active, reason = SEAT_MOVES[event.kind]
    email_ci = (event.data.get("email") or "").lower()
    seat = uow.seats.get(event.org_id, email_ci) if email_ci else None
    if seat is None or seat.member_id != event.data["member_id"] or seat.seat_active == active:
        return Outcome.IGNORED  # never billed, another membership, or already in that state
    uow.seats.move(event.org_id, email_ci, active=active, member_id=seat.member_id)
    kind = c.BillingSeatRestored if active else c.BillingSeatReleased
    uow.stage([_billing_event(kind, event, reason=reason)])
    return Outcome.APPLIED


def _billing_event(kind: type[c.Payload], cause: Event, **extra: str) -> Event:
    payload = kind(
        org_id=cause.org_id,  # type: ignore[call-arg]
        org_slug=cause.org_slug,
        member_id=cause.data["member_id"],
        email=cause.data.get("email"),
        source=cause.data.get("source"),
        occurred_at=cause.time.isoformat(),
        **extra,
    )
    return cause.causes(payload, version=cause.resource_version)
