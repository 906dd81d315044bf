"""The transactional outbox: events are rows written in the same transaction as their cause, and
the relay that publishes them to Kafka.

No NOTIFY: PostgreSQL serialises the commits of every transaction that notifies (a
database-wide lock held through the commit's WAL flush), which capped SCIM writes at about
one commit per disk flush. The relay polls instead (see docs/decisions.md).

The relay publishes committed outbox rows in id order, then deletes them.

Rows are deleted only after Kafka acknowledged them (acks=all, idempotent producer). A crash
between the acknowledgement and the delete would re-publish the batch, so before publishing
anything a new leader (and a relay recovering from a publish error) reads the tail of each
partition it is about to write to and drops the outbox rows whose event ids are already there:
no duplicates on the topics from relay crashes. Consumers dedupe by event id anyway.
One relay is active at a time (a PostgreSQL advisory lock), so per-key order holds; extra
replicas wait as hot standbys. It polls the outbox (`relay_poll_seconds`, 20 ms by default: an
index-only probe of a small table).

No Kafka call waits for ever: a flush that has not completed within `relay_kafka_timeout_seconds`
(a producer wedged after a broker restart, which kafka-python can be) ends the process, to be
restarted with a fresh client, and a loop that makes no progress for `relay_stall_seconds` for any
other reason is ended by `watch` (the supervisor or the orchestrator starts it again).
"""

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError
from sqlalchemy import Connection, Engine, text
from sqlalchemy.dialects.postgresql import insert

from core import metrics
from core.db import recordset_insert
from core.settings import Settings
from core.tables import outbox
from events import catalogue as c
from events import kafka
from events.envelope import Event

_STAGED = "outbox.staged_types"
# CloudEvents' Kafka protocol binding: a structured-mode record says so in its content-type header
STRUCTURED = [("content-type", b"application/cloudevents+json")]
_INSERT = insert(outbox).on_conflict_do_nothing(index_elements=["event_id"])
# a batch of events as one JSON array (core/db.py): the workers stage thousands per transaction
_INSERT_MANY = recordset_insert(outbox, ("event_id", "topic", "key", "payload"), on_conflict="ON CONFLICT (event_id) DO NOTHING")


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
    _INSERT_MANY(conn, rows)
    staged = conn.info.get(_STAGED)
    if staged is not None:  # someone asked (`track_staged`)
        staged.extend(e.type for e in events)
    return len(rows)


def add_payload(conn: Connection, event_id: str, topic: str, key: str, payload: dict[str, object]) -> None:
    """Stage a record that is not one of the catalogue's events (the dead-letter topic's)."""
    conn.execute(_INSERT, {"event_id": event_id, "topic": topic, "key": key, "payload": payload})


def track_staged(conn: Connection) -> None:
    """Keep the types of the events this connection stages from now, until `staged_types`. Only
    then: a pooled connection's `info` outlives its checkouts, so an untracked list would grow
    with every event ingest stages."""
    conn.info[_STAGED] = []


def staged_types(conn: Connection) -> list[str]:
    """The types of the events this connection staged since `track_staged` (for metrics); tracking stops."""
    staged: list[str] = conn.info.pop(_STAGED, [])
    return staged


log = logging.getLogger("provisioner.relay")

_LOCK_KEY = 0x70726F76  # "prov": the relay's advisory lock


def published_ids(settings: Settings, topics: list[str], depth: int) -> set[str]:
    """Event ids among the last `depth` records of every partition of these topics."""
    ids: set[str] = set()
    for value in kafka.read_to_end(settings, topics, depth=depth, timeout=settings.relay_kafka_timeout_seconds):
        try:
            ids.add(str(orjson.loads(value)["id"]))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
    return ids


# The record's value is the stored JSON as PostgreSQL writes it out (`payload::text`): parsing it
# into Python and dumping it again was a fifth of the relay's interpreter time. The fields the
# metrics need come as columns of their own.
_BATCH = text(
    "SELECT id, topic, key, payload::text AS body, payload->>'time' AS time, payload->>'type' AS type, "
    "payload->'data'->>'first_login_at' AS first_login_at FROM outbox ORDER BY id LIMIT :n"
)


def _observe_published(rows: Sequence[Any]) -> None:
    now = datetime.now(UTC)
    for r in rows:
        metrics.RELAY_PUBLISHED.labels(r.topic).inc()
        try:
            committed = datetime.fromisoformat(r.time.replace("Z", "+00:00"))
            metrics.PUBLISH_DELAY.labels(r.topic).observe(max(0.0, (now - committed).total_seconds()))
            if r.type == c.BILLING_FIRST_LOGIN.type:
                first_login = datetime.fromisoformat(r.first_login_at)
                metrics.COMMIT_TO_BILLING.observe(max(0.0, (now - first_login).total_seconds()))
        except (AttributeError, TypeError, ValueError):
            continue


class RelayStalled(RuntimeError):
    """The Kafka client did not complete a flush in time: only a new process recovers from that."""


def close(producer: KafkaProducer) -> None:
    """Close a producer, waiting a little for what it still holds; a wedged one means a new process."""
    try:
        producer.close(timeout=5)
    except KafkaTimeoutError as exc:  # its flush did not complete: the sender thread is still running
        raise RelayStalled(f"closing the producer: {exc}") from exc


class Relay:
    def __init__(self, settings: Settings, engine: Engine, make_producer: Callable[[], KafkaProducer]):
        self.settings = settings
        self.engine = engine
        self.make_producer = make_producer
        self.producer = make_producer()
        self.running = True
        self.published = 0
        self.skipped = 0
        self.progressed_at = time.monotonic()  # the publishing loop's last completed step

    def stalled_for(self) -> float:
        """Seconds since the publishing loop last completed a step."""
        return time.monotonic() - self.progressed_at

    def watch(self, exit_process: Callable[[int], None] = os._exit) -> threading.Thread:
        """Start a thread that ends the process once the loop has made no progress for `relay_stall_seconds`."""

        def check() -> None:
            limit = self.settings.relay_stall_seconds
            while self.running:
                if self.stalled_for() > limit:
                    log.critical("relay made no progress for %.0f s; exiting to be restarted", self.stalled_for())
                    exit_process(70)
                    return
                time.sleep(min(1.0, limit / 4))

        thread = threading.Thread(target=check, name="relay-watchdog", daemon=True)
        thread.start()
        return thread

    def recover(self) -> int:
        """Drop the outbox rows a previous attempt already published; returns how many."""
        with self.engine.begin() as conn:
            rows = conn.execute(
                text("SELECT id, topic, event_id FROM outbox ORDER BY id LIMIT :n"), {"n": self.settings.relay_batch_size}
            ).all()
            if not rows:
                return 0
            seen = published_ids(self.settings, sorted({r.topic for r in rows}), self.settings.relay_batch_size)
            done = [r.id for r in rows if str(r.event_id) in seen]
            if done:
                conn.execute(text("DELETE FROM outbox WHERE id = ANY(:ids)"), {"ids": done})
        self.skipped += len(done)
        metrics.RELAY_RECOVERED.inc(len(done))
        if done:
            log.warning("relay recovery: %d outbox rows were already on Kafka; not re-published", len(done))
        return len(done)

    def publish_batch(self) -> int:
        """Publish one batch of committed rows; returns how many were published."""
        with self.engine.begin() as conn:
            rows = conn.execute(_BATCH, {"n": self.settings.relay_batch_size}).all()
            if not rows:
                return 0
            futures = [
                self.producer.send(r.topic, key=r.key.encode(), value=r.body.encode(), headers=STRUCTURED) for r in rows
            ]
            try:
                self.producer.flush(timeout=self.settings.relay_kafka_timeout_seconds + 5)
            except KafkaTimeoutError as exc:  # past the delivery timeout: this client is wedged
                raise RelayStalled(f"flush did not complete: {exc}") from exc
            for future in futures:
                future.get(timeout=0)  # raises if Kafka refused it: rows stay for the next try
            conn.execute(text("DELETE FROM outbox WHERE id = ANY(:ids)"), {"ids": [r.id for r in rows]})
        self.published += len(rows)
        _observe_published(rows)
        return len(rows)

    def refresh_gauges(self) -> None:
        """Outbox depth and the age of its oldest row (what the outbox-age alert watches)."""
        with self.engine.connect() as conn:
            pending, oldest = conn.execute(text("SELECT count(*), EXTRACT(EPOCH FROM now() - min(created_at)) FROM outbox")).one()
        metrics.OUTBOX_PENDING.set(pending)
        metrics.OUTBOX_OLDEST_AGE.set(float(oldest or 0.0))

    def _publish_or_recover(self) -> int:
        """Publish a batch; after a Kafka error, start a fresh producer and recover first."""
        try:
            return self.publish_batch()
        except KafkaError as exc:
            metrics.RELAY_ERRORS.inc()
            log.warning("publish failed (%s); recovering with a new producer", exc)
            close(self.producer)
            while self.running:
                time.sleep(1.0)
                self.progressed_at = time.monotonic()
                try:
                    self.producer = self.make_producer()
                    self.recover()
                    return 0
                except KafkaError as again:
                    log.warning("Kafka still unavailable (%s); retrying", again)
            return 0

    def run(self) -> None:
        """Hold the leader lock, then drain the outbox, polling it while it is empty."""
        raw = self.engine.raw_connection()
        try:
            raw.set_isolation_level(0)  # autocommit: the session lock lives outside transactions
            cur = raw.cursor()
            while self.running:
                self.progressed_at = time.monotonic()  # a standby waiting for the lock is not stalled
                cur.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_KEY,))
                locked = cur.fetchone()
                if locked and locked[0]:
                    break
                time.sleep(1.0)
            log.info("relay is the active publisher")
            metrics.RELAY_LEADER.set(1)
            self.recover()
            last_gauges = 0.0
            while self.running:
                self.progressed_at = time.monotonic()
                published = self._publish_or_recover()
                if time.monotonic() - last_gauges >= 2.0:
                    last_gauges = time.monotonic()
                    self.refresh_gauges()
                    cur.execute("SELECT 1")  # the session holding the lock is alive (else: exit, restart)
                if published < self.settings.relay_batch_size:
                    time.sleep(self.settings.relay_poll_seconds)
        finally:
            metrics.RELAY_LEADER.set(0)
            raw.close()
