"""The transactional outbox: events are rows written in the same transaction as their cause."""

from collections.abc import Iterable

from sqlalchemy import Connection, text
from sqlalchemy.dialects.postgresql import insert

from core.tables import outbox
from events.envelope import Event

NOTIFY_CHANNEL = "provisioner_outbox"


def add(conn: Connection, events: Iterable[Event], topics: dict[str, str]) -> int:
    """Stage events for publication; a re-staged event (same id) is ignored.

    `topics` maps a topic role to its configured name. A NOTIFY wakes the relay when the
    transaction commits (PostgreSQL delivers notifications only on commit).
    """
    rows = [
        {
            "event_id": e.id,
            "topic": topics[e.kind.topic_role],
            "key": e.key,
            "payload": e.to_cloudevent(),
        }
        for e in events
    ]
    if not rows:
        return 0
    conn.execute(insert(outbox).on_conflict_do_nothing(index_elements=["event_id"]), rows)
    if conn.info.get(_DEFER):
        conn.info[_PENDING] = True
        conn.info.setdefault(_STAGED, []).extend(e.type for e in events)
    else:
        conn.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
    return len(rows)


_DEFER = "outbox.defer_notify"
_PENDING = "outbox.notify_pending"
_STAGED = "outbox.staged_types"


def defer_notify(conn: Connection) -> None:
    """Within this transaction, stage rows without a NOTIFY each; call notify_if_staged once."""
    conn.info[_DEFER] = True
    conn.info[_PENDING] = False
    conn.info[_STAGED] = []


def notify_if_staged(conn: Connection) -> list[str]:
    """Send the one NOTIFY; returns the types of the events staged in this transaction."""
    if conn.info.pop(_PENDING, False):
        conn.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
    conn.info.pop(_DEFER, None)
    return conn.info.pop(_STAGED, [])
