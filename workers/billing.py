"""The billing worker: turns member facts into what billing systems consume on `billing`.

- `billing.member.first_login`: the first login of a person in an org, once, ever. The row in
  `billing_accounts` (primary key org + email) is the uniqueness fact, written in the same
  transaction as the event's outbox row; the event id is derived from (org, email), so even a
  re-emission could only repeat the same id, which `provisioner billing verify` would report.
- `billing.seat.released`: a billed member was deactivated or removed.
- `billing.seat.restored`: a billed member was reactivated, or a removed person came back
  (re-created by the IdP) and logged in again: the seat is billed again, without a second
  first-login event.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects.postgresql import insert

from core.tables import billing_accounts
from events import catalogue as c
from events import outbox
from events.envelope import Event, deterministic_id

CONSUMER = "billing"


def first_login_event_id(org_id: str, email_ci: str) -> str:
    return deterministic_id(c.BILLING_FIRST_LOGIN.type, org_id, email_ci)


class Billing:
    def __init__(self, topics: dict[str, str]):
        self.topics = topics

    def __call__(self, event: Event, conn: Connection) -> str:
        if event.kind is c.MEMBER_LOGGED_IN_FIRST_TIME:
            return self._first_login(event, conn)
        if event.kind in (c.MEMBER_DEACTIVATED, c.MEMBER_REMOVED):
            return self._seat(event, conn, active=False)
        if event.kind is c.MEMBER_REACTIVATED:
            return self._seat(event, conn, active=True)
        return "ignored"

    def _first_login(self, event: Event, conn: Connection) -> str:
        email_ci = (event.data.get("email") or "").lower()
        if not email_ci:
            return "ignored"
        at = datetime.fromisoformat(event.data["first_login_at"])
        event_id = first_login_event_id(event.org_id, email_ci)
        inserted = conn.execute(
            insert(billing_accounts)
            .values(
                org_id=event.org_id, email_ci=email_ci, member_id=event.data["member_id"], first_login_at=at,
                first_login_event_id=event_id, seat_active=True,
            )
            .on_conflict_do_nothing()
            .returning(billing_accounts.c.org_id)
        ).first()
        if inserted:
            self._publish(conn, c.BILLING_FIRST_LOGIN, event, email_ci, event_id, {"first_login_at": at.isoformat()})
            return "applied"
        account = self._account(conn, event.org_id, email_ci)
        if account.seat_active and account.member_id == event.data["member_id"]:
            return "stale"
        # the same person, a new membership (re-created by the IdP): bill the seat again, once
        self._set_seat(conn, event.org_id, email_ci, True, event.data["member_id"])
        self._publish(conn, c.BILLING_SEAT_RESTORED, event, email_ci, deterministic_id("seat", event.id), {"reason": "returned"})
        return "applied"

    def _seat(self, event: Event, conn: Connection, *, active: bool) -> str:
        email_ci = (event.data.get("email") or "").lower()
        account = self._account(conn, event.org_id, email_ci) if email_ci else None
        if account is None or account.member_id != event.data["member_id"] or account.seat_active == active:
            return "ignored"  # never billed, another membership, or already in that state
        self._set_seat(conn, event.org_id, email_ci, active, account.member_id)
        kind = c.BILLING_SEAT_RESTORED if active else c.BILLING_SEAT_RELEASED
        reason = {c.MEMBER_DEACTIVATED: "deactivated", c.MEMBER_REMOVED: "removed", c.MEMBER_REACTIVATED: "reactivated"}[event.kind]
        self._publish(conn, kind, event, email_ci, deterministic_id("seat", event.id), {"reason": reason})
        return "applied"

    @staticmethod
    def _account(conn: Connection, org_id: str, email_ci: str) -> Any:
        return conn.execute(
            select(billing_accounts)
            .where(billing_accounts.c.org_id == org_id, billing_accounts.c.email_ci == email_ci)
            .with_for_update()
        ).first()

    @staticmethod
    def _set_seat(conn: Connection, org_id: str, email_ci: str, active: bool, member_id: str) -> None:
        conn.execute(
            update(billing_accounts)
            .where(billing_accounts.c.org_id == org_id, billing_accounts.c.email_ci == email_ci)
            .values(seat_active=active, member_id=member_id, updated_at=func.now())
        )

    def _publish(self, conn: Connection, kind: c.EventType, cause: Event, email_ci: str, event_id: str, extra: dict[str, Any]) -> None:
        data = {
            "org_id": cause.org_id,
            "org_slug": cause.org_slug,
            "member_id": cause.data["member_id"],
            "email": cause.data.get("email"),
            "source": cause.data.get("source"),
            "occurred_at": cause.time.isoformat(),
            **extra,
        }
        event = Event(
            kind=kind,
            org_id=cause.org_id,
            org_slug=cause.org_slug,
            subject=f"members/{cause.data['member_id']}",
            key=f"{cause.org_id}:{email_ci}",
            resource_version=cause.resource_version,
            data=data,
            id=event_id,
            correlation_id=cause.correlation_id,
        )
        outbox.add(conn, [event], self.topics)
