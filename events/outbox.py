"""The transactional outbox: events are rows written in the same transaction as their cause.

No NOTIFY: PostgreSQL serialises the commits of every transaction that notifies (a
database-wide lock held through the commit's WAL flush), which capped SCIM writes at about
one commit per disk flush. The relay polls instead (see docs/decisions.md).
"""

from collections.abc import Iterable

from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert

from core.tables import outbox
from events.envelope import Event

_STAGED = "outbox.staged_types"
_INSERT = insert(outbox).on_conflict_do_nothing(index_elements=["event_id"])


def add(conn: Connection, events: Iterable[Event], topics: dict[str, str]) -> int:
    """Stage events for publication; a re-staged event (same id) is ignored.

    `topics` maps a topic role to its configured name.
    """
    events = list(events)
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
    conn.execute(_INSERT, rows)
    conn.info.setdefault(_STAGED, []).extend(e.type for e in events)
    return len(rows)


def add_payload(conn: Connection, event_id: str, topic: str, key: str, payload: dict[str, object]) -> None:
    """Stage a record that is not one of the catalogue's events (the dead-letter topic's)."""
    conn.execute(_INSERT, {"event_id": event_id, "topic": topic, "key": key, "payload": payload})


def staged_types(conn: Connection) -> list[str]:
    """The types of the events this connection staged since the last call (for metrics)."""
    return conn.info.pop(_STAGED, [])
