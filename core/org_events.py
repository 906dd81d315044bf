"""Events that ingest writes for org-level actions (settings, manual adds, accounts, conflicts)."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select

from events import catalogue as c
from events import outbox
from events.envelope import Event, deterministic_id


def stage(
    conn: Connection,
    topics: dict[str, str],
    kind: c.EventType,
    *,
    org_id: str,
    org_slug: str,
    subject: str,
    key_id: str,
    data: dict[str, Any],
    correlation_id: str | None = None,
    at: datetime | None = None,
) -> Event:
    """Stage one event in the caller's transaction; its id is unique to this transaction.

    `at` (default: now) is the moment of the fact; in microseconds it is the event's version.
    """
    now = at or datetime.now(UTC)
    txid = conn.execute(select(func.txid_current())).scalar()
    event = Event(
        kind=kind,
        org_id=org_id,
        org_slug=org_slug,
        subject=subject,
        key=f"{org_id}:{key_id}",
        resource_version=int(now.timestamp() * 1_000_000),
        data=data,
        id=deterministic_id(kind.type, org_id, subject, txid),
        time=now,
        correlation_id=correlation_id,
    )
    outbox.add(conn, [event], topics)
    return event
