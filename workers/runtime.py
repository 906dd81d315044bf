"""The consume loop, written once: decode, dedupe, apply, dead-letter, commit, then commit offsets.

Each poll batch is applied in one PostgreSQL transaction (a unit of work) with a tracking row
`(consumer, event_id)` per event (ARCHITECTURE §3.2), claimed for the whole batch in one
statement. The handler gets the batch's new events at once (and may apply them set-wise).
Offsets are committed to Kafka only after the database commit, so a crash re-delivers and the
tracking rows make the redelivery a no-op. If a handler fails, the batch is rolled back and
run again one event at a time (a batch of one), each in a savepoint: a record that cannot be
decoded, or whose handler fails, is recorded as a dead letter with its error and origin, and
the batch goes on.
Metrics (outcomes, latencies, lag, rebalances) are recorded here, so handlers stay free of them.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from kafka import ConsumerRebalanceListener
from kafka.errors import FencedInstanceIdError, KafkaError
from sqlalchemy import Connection, Engine, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import InterfaceError, OperationalError

from core import metrics
from core.tables import dead_letters, processed_events
from domain.model import Outcome
from domain.postgres import SqlUnitOfWork
from domain.uow import UnitOfWork
from events import catalogue as c
from events import dead_letter, outbox
from events.envelope import EnvelopeError, Event, decode
from events.kafka import GroupConsumer

log = logging.getLogger("provisioner.worker")


class Handler(Protocol):
    """A worker's rules: the outcome of each event, in order, applied through the unit of work.

    Applying a batch has the same effect as applying its events one by one (batches of one). A
    handler may declare `TYPES`, the event types it can act on: the runtime answers the others
    `ignored` itself, with no tracking row and, for a batch of only those, no transaction (an
    event that changes nothing needs no record of having been seen)."""

    def apply(self, events: list[Event], uow: UnitOfWork) -> list[Outcome]: ...


@dataclass
class Tally:
    """Outcomes so far, by name: applied, stale, ignored, pending, duplicate, dead_lettered."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1


_CLAIM = insert(processed_events).on_conflict_do_nothing().returning(processed_events.c.event_id)


def _claim(conn: Connection, consumer: str, event_id: str) -> bool:
    """Record that this consumer processed the event; False if it already had."""
    return conn.execute(_CLAIM, {"consumer": consumer, "event_id": event_id}).first() is not None


# the batch's ids as one array parameter: an executemany binding two values per event was a fifth
# of the conflict worker's interpreter time under a drain
_CLAIM_ALL = text(
    "INSERT INTO processed_events (consumer, event_id) SELECT :consumer, unnest(CAST(:ids AS uuid[])) "
    "ON CONFLICT DO NOTHING RETURNING event_id::text"
)


def _claim_all(conn: Connection, consumer: str, event_ids: list[str]) -> set[str]:
    """Claim many events in one statement; returns those not processed before."""
    ids = list(dict.fromkeys(event_ids))
    return set(conn.execute(_CLAIM_ALL, {"consumer": consumer, "ids": ids}).scalars()) if ids else set()


def _dead_letter(conn: Connection, consumer: str, record: Any, error: str, topic: str, org_id: str | None = None) -> None:
    """Keep the record and why it failed, and stage it for the dead-letter topic (when one is
    configured) in the same transaction; counted when the batch commits."""
    error = error[:2000]
    dead_letter_id = conn.execute(
        dead_letters.insert()
        .values(
            consumer=consumer,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key.decode(errors="replace") if record.key else None,
            value=record.value,
            error=error,
        )
        .returning(dead_letters.c.id)
    ).scalar_one()
    if topic:  # an empty topic setting keeps dead letters in PostgreSQL only
        event_id, key, payload = dead_letter.build(consumer, record, error, dead_letter_id, org_id)
        outbox.add_payload(conn, event_id, topic, key, payload)


def _record(consumer: str, event_type: str, outcome: str, tally: Tally) -> None:
    tally.add(outcome)
    metrics.EVENTS_CONSUMED.labels(consumer, event_type, outcome).inc()
    if outcome == Outcome.DEAD_LETTERED:
        metrics.DEAD_LETTERS.labels(consumer).inc()


class _BatchFailed(Exception):
    """A handler failed while the batch ran without savepoints: run it again, one savepoint each."""


def apply_records(
    engine: Engine, topics: dict[str, str], consumer: str, handler: Handler, records: list[Any], tally: Tally
) -> None:
    """Apply a batch of Kafka records in one transaction; `topics` maps topic roles to names.

    The batch first runs without savepoints; if any handler fails, it is rolled back and run
    again with a savepoint per record, so the failing record alone is dead-lettered.
    """
    try:
        _apply(engine, topics, consumer, handler, records, tally, isolate=False)
    except _BatchFailed:
        _apply(engine, topics, consumer, handler, records, tally, isolate=True)


def _apply(
    engine: Engine, topics: dict[str, str], consumer: str, handler: Handler, records: list[Any], tally: Tally, *, isolate: bool
) -> None:
    applied: list[Event] = []
    outcomes: list[tuple[str, str]] = []
    started = time.perf_counter()
    decoded: list[tuple[Any, Event]] = []
    undecodable: list[tuple[Any, str]] = []
    for record in records:
        try:
            decoded.append((record, decode(record.value)))
        except EnvelopeError as exc:
            undecodable.append((record, str(exc)))
    wanted: frozenset[str] | None = getattr(handler, "TYPES", None)
    if wanted is not None:
        outcomes += [(event.type, Outcome.IGNORED) for _, event in decoded if event.type not in wanted]
        decoded = [(record, event) for record, event in decoded if event.type in wanted]
    staged: list[str] = []
    if decoded or undecodable:
        staged = _in_transaction(engine, topics, consumer, handler, decoded, undecodable, outcomes, applied, isolate)
    # counted only once the batch committed: a rolled-back attempt counts nothing
    metrics.BILLING_FIRST_LOGINS.inc(staged.count(c.BILLING_FIRST_LOGIN.type))
    for event_type, outcome in outcomes:
        _record(consumer, event_type, outcome, tally)
    now = datetime.now(UTC)
    metrics.BATCH_DURATION.labels(consumer).observe(time.perf_counter() - started)
    for event in applied:
        metrics.COMMIT_TO_APPLIED.labels(consumer).observe(max(0.0, (now - event.time).total_seconds()))
    log.info(
        "batch applied",
        extra={
            "consumer": consumer,
            "records": len(records),
            "applied": len(applied),
            "correlation_ids": sorted({e.correlation_id for e in applied if e.correlation_id})[:20],
        },
    )


def _in_transaction(
    engine: Engine, topics: dict[str, str], consumer: str, handler: Handler, decoded: list[tuple[Any, Event]],
    undecodable: list[tuple[Any, str]], outcomes: list[tuple[str, str]], applied: list[Event], isolate: bool,
) -> list[str]:
    """The batch's effects, tracking rows and dead letters in one transaction; the event types it staged."""
    topic = topics.get(c.TopicRole.DEAD_LETTER, "")
    with SqlUnitOfWork.begin(engine, topics) as uow:
        conn = uow.conn
        outbox.track_staged(conn)
        try:
            for record, error in undecodable:
                _dead_letter(conn, consumer, record, error, topic)
                outcomes.append(("undecodable", Outcome.DEAD_LETTERED))
            if isolate:
                by_event = _apply_one_by_one(uow, consumer, handler, decoded, topic)
            else:
                by_event = _apply_at_once(uow, consumer, handler, [event for _, event in decoded])
            for event, outcome in by_event:
                outcomes.append((event.type, outcome))
                if outcome == Outcome.APPLIED:
                    applied.append(event)
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("event %s", outcome, extra={**_context(event), "outcome": outcome, "consumer": consumer})
            return outbox.staged_types(conn)
        finally:
            outbox.staged_types(conn)  # a batch that raised stops the tracking too


def _apply_at_once(uow: SqlUnitOfWork, consumer: str, handler: Handler, events: list[Event]) -> list[tuple[Event, str]]:
    """One claim for the batch, then the handler on the new events."""
    started = time.perf_counter()
    new = _claim_all(uow.conn, consumer, [e.id for e in events])
    fresh: list[Event] = []
    done: list[tuple[Event, str]] = []
    for event in events:
        if event.id in new:
            new.discard(event.id)  # the same event twice in one batch: the second is a duplicate
            fresh.append(event)
        else:
            done.append((event, Outcome.DUPLICATE))
    try:
        results: list[str] = list(handler.apply(fresh, uow)) if fresh else []
    except (OperationalError, InterfaceError):
        raise  # the database is unavailable: crash, restart, and get the batch again
    except Exception as exc:  # find the failing record: run again one by one, with savepoints
        raise _BatchFailed from exc
    if fresh:
        per_event = (time.perf_counter() - started) / len(fresh)
        for _ in fresh:
            metrics.HANDLER_DURATION.labels(consumer).observe(per_event)
    return done + list(zip(fresh, results, strict=True))


def _apply_one_by_one(
    uow: SqlUnitOfWork, consumer: str, handler: Handler, decoded: list[tuple[Any, Event]], topic: str
) -> list[tuple[Event, str]]:
    """Each event in a savepoint: a failing handler dead-letters its record alone."""
    conn = uow.conn
    done: list[tuple[Event, str]] = []
    for record, event in decoded:
        handled = time.perf_counter()
        try:
            with conn.begin_nested():
                if not _claim(conn, consumer, event.id):
                    done.append((event, Outcome.DUPLICATE))
                    continue
                (outcome,) = handler.apply([event], uow)
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:  # a handler bug must not block other orgs: dead-letter it
            log.exception("handler failed", extra=_context(event))
            _dead_letter(conn, consumer, record, f"{type(exc).__name__}: {exc}", topic, event.org_id)
            done.append((event, Outcome.DEAD_LETTERED))
            continue
        metrics.HANDLER_DURATION.labels(consumer).observe(time.perf_counter() - handled)
        done.append((event, outcome))
    return done


def _context(event: Event) -> dict[str, Any]:
    return {"org": event.org_id, "event_id": event.id, "event_type": event.type, "correlation_id": event.correlation_id}


class GroupListener(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python is untyped
    """Counts rebalances, drops lag series of revoked partitions, remembers joining the group."""

    def __init__(self, group: str):
        self.group = group
        self.joined = False

    def on_partitions_revoked(self, revoked: Any) -> None:
        """Partitions another member now owns stop being reported by this one."""
        for tp in revoked:
            try:
                metrics.CONSUMER_LAG.remove(self.group, tp.topic, str(tp.partition))
            except KeyError:
                pass

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.joined = True
        metrics.REBALANCES.labels(self.group).inc()


def _update_lag(kafka: GroupConsumer, group: str) -> None:
    """Lag per assigned partition: the high watermark the fetches saw, minus our position."""
    for tp in kafka.assignment():
        high = kafka.highwater(tp)
        if high is None:
            continue
        try:
            position = kafka.position(tp, timeout_ms=100)
        except KafkaError:
            continue
        if position is not None:
            metrics.CONSUMER_LAG.labels(group, tp.topic, str(tp.partition)).set(max(0, high - position))


def run(
    engine: Engine,
    kafka: GroupConsumer,
    consumer: str,
    handler: Handler,
    should_run: Callable[[], bool],
    *,
    group: str = "",
    every_few_seconds: Callable[[], None] | None = None,
    topics: dict[str, str],
) -> Tally:
    """Consume until should_run() is false; commits offsets after each applied batch."""
    tally = Tally()
    last_gauges = 0.0
    while should_run():
        try:
            batches = kafka.poll(timeout_ms=500)
        except FencedInstanceIdError:
            # another process joined with this static member id (consumer_group_instance_id): exit, never retry
            log.error("fenced: another member of %s uses this group instance id; give each replica its own", group or consumer)
            raise
        except KafkaError as exc:  # the broker is restarting: the client reconnects on the next poll
            log.warning("poll failed (%s); retrying", exc)
            time.sleep(1.0)
            continue
        records = [r for batch in batches.values() for r in batch]
        if records:
            apply_records(engine, topics, consumer, handler, records, tally)
            try:
                kafka.commit()
            except FencedInstanceIdError:
                log.error("fenced: another member of %s uses this group instance id", group or consumer)
                raise
            except KafkaError as exc:
                # e.g. the coordinator moved or the broker restarts: the batch is in PostgreSQL with
                # its tracking rows, so a redelivery is harmless; the next commit covers it.
                log.warning("offset commit failed (%s); the batch will be redelivered and skipped", exc)
        if time.monotonic() - last_gauges >= 2.0:
            last_gauges = time.monotonic()
            _update_lag(kafka, group or consumer)
            if every_few_seconds is not None:
                try:
                    every_few_seconds()
                except Exception:  # a gauge query must never stop consumption
                    log.exception("gauge refresh failed")
    return tally
