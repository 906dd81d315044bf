"""The consume loop, written once: decode, dedupe, apply, dead-letter, commit, then commit offsets.

Each poll batch is applied in one PostgreSQL transaction; each record in a savepoint, with
its tracking row `(consumer, event_id)` (ARCHITECTURE §3.2). Offsets are committed to Kafka
only after the database commit, so a crash re-delivers and the tracking rows make the
redelivery a no-op. A record that cannot be decoded, or whose handler fails, is recorded
as a dead letter with its error and origin, and the batch goes on.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer
from kafka.errors import KafkaError
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.dialects.postgresql import insert

from core.tables import dead_letters, processed_events
from events.envelope import EnvelopeError, Event, decode

log = logging.getLogger("provisioner.worker")

Handler = Callable[[Event, Connection], str]


@dataclass
class Tally:
    """Outcomes so far, by name: applied, stale, ignored, duplicate, dead_lettered."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1


def _claim(conn: Connection, consumer: str, event_id: str) -> bool:
    """Record that this consumer processed the event; False if it already had."""
    result = conn.execute(
        insert(processed_events)
        .values(consumer=consumer, event_id=event_id)
        .on_conflict_do_nothing()
        .returning(processed_events.c.event_id)
    )
    return result.first() is not None


def _dead_letter(conn: Connection, consumer: str, record: Any, error: str) -> None:
    conn.execute(
        dead_letters.insert().values(
            consumer=consumer,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key.decode(errors="replace") if record.key else None,
            value=record.value,
            error=error[:2000],
        )
    )


def apply_records(engine: Engine, consumer: str, handler: Handler, records: list[Any], tally: Tally) -> None:
    """Apply a batch of Kafka records in one transaction (a savepoint per record)."""
    with engine.begin() as conn:
        for record in records:
            try:
                event = decode(record.value)
            except EnvelopeError as exc:
                _dead_letter(conn, consumer, record, str(exc))
                tally.add("dead_lettered")
                continue
            try:
                with conn.begin_nested():
                    if not _claim(conn, consumer, event.id):
                        tally.add("duplicate")
                        continue
                    tally.add(handler(event, conn))
            except (OperationalError, InterfaceError):
                raise  # the database is unavailable: crash, restart, and get the batch again
            except Exception as exc:  # a handler bug must not block other orgs: dead-letter it
                log.exception("handler failed", extra={"event_id": event.id, "org": event.org_id})
                _dead_letter(conn, consumer, record, f"{type(exc).__name__}: {exc}")
                tally.add("dead_lettered")


def run(engine: Engine, kafka: KafkaConsumer, consumer: str, handler: Handler, should_run: Callable[[], bool]) -> Tally:
    """Consume until should_run() is false; commits offsets after each applied batch."""
    tally = Tally()
    while should_run():
        try:
            batches = kafka.poll(timeout_ms=500)
        except KafkaError as exc:  # the broker is restarting: the client reconnects on the next poll
            log.warning("poll failed (%s); retrying", exc)
            time.sleep(1.0)
            continue
        records = [r for batch in batches.values() for r in batch]
        if not records:
            continue
        apply_records(engine, consumer, handler, records, tally)
        try:
            kafka.commit()
        except KafkaError as exc:
            # e.g. the coordinator moved or the broker restarts: the batch is in PostgreSQL with
            # its tracking rows, so a redelivery is harmless; the next commit covers it.
            log.warning("offset commit failed (%s); the batch will be redelivered and skipped", exc)
    return tally
