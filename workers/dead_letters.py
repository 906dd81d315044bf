"""`provisioner dlq list|redrive`: look at the records a worker set aside, and replay them after a fix.

A redrive runs the worker's own handler on each stored record through the same runtime path as
live traffic (tracking row, one transaction), so a record applied meanwhile is a harmless
duplicate. A record that applies (or is found already applied) is marked redriven; one that
fails again stays, with its new error.
"""

from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update

from core import cursors
from core.db import json_row
from core.settings import Settings
from core.tables import dead_letters
from workers.runtime import Tally, apply_records

_LISTED = ("id", "consumer", "topic", "partition", "offset", "key", "error", "created_at", "redriven_at")


def page_dead_letters(
    conn: Connection, consumer: str | None = None, include_redriven: bool = False, *, limit: int = 100,
    after: str | None = None,
) -> cursors.Page:
    """One page of dead letters (without their values), oldest first."""
    query = select(*(dead_letters.c[name] for name in _LISTED))
    if consumer:
        query = query.where(dead_letters.c.consumer == consumer)
    if not include_redriven:
        query = query.where(dead_letters.c.redriven_at.is_(None))
    found = cursors.page(conn, query, dead_letters.c.created_at, dead_letters.c.id, limit=limit, after=after)
    return cursors.Page([json_row(SimpleNamespace(**r), *_LISTED) for r in found.rows], found.next, found.previous)


def redrive(engine: Engine, settings: Settings, consumer: str, ids: list[int] | None = None) -> dict[str, Any]:
    """Re-apply a consumer's dead letters (all, or the given ids) with its current handler."""
    from workers.main import WORKERS

    matches = [entry for entry in WORKERS.values() if entry.consumer == consumer]
    if not matches:
        raise ValueError(f"unknown consumer {consumer!r}; known: {', '.join(e.consumer for e in WORKERS.values())}")
    handler = matches[0].handler(settings)
    query = select(dead_letters).where(dead_letters.c.consumer == consumer, dead_letters.c.redriven_at.is_(None))
    if ids:
        query = query.where(dead_letters.c.id.in_(ids))
    with engine.connect() as conn:
        rows = list(conn.execute(query.order_by(dead_letters.c.id)))
    report: dict[str, Any] = {"consumer": consumer, "redriven": [], "failed": []}
    for row in rows:
        record = SimpleNamespace(
            topic=row.topic, partition=row.partition, offset=row.offset, key=(row.key or "").encode() or None, value=row.value
        )
        tally = Tally()
        apply_records(engine, settings.topics(), consumer, handler, [record], tally)
        if tally.counts.get("dead_lettered"):
            report["failed"].append(row.id)
            _keep_one(engine, row)
        else:
            report["redriven"].append(row.id)
            with engine.begin() as conn:
                conn.execute(update(dead_letters).where(dead_letters.c.id == row.id).values(redriven_at=_now()))
    return report


def _keep_one(engine: Engine, row: Any) -> None:
    """The failed retry recorded a new dead letter: fold its error into the original row."""
    with engine.begin() as conn:
        newer = conn.execute(
            select(dead_letters.c.id, dead_letters.c.error)
            .where(
                dead_letters.c.consumer == row.consumer,
                dead_letters.c.topic == row.topic,
                dead_letters.c.partition == row.partition,
                dead_letters.c.offset == row.offset,
                dead_letters.c.id > row.id,
            )
            .order_by(dead_letters.c.id.desc())
        ).all()
        if newer:
            conn.execute(update(dead_letters).where(dead_letters.c.id == row.id).values(error=newer[0].error))
            conn.execute(delete(dead_letters).where(dead_letters.c.id.in_([n.id for n in newer])))


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
