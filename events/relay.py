"""The outbox relay: publishes committed outbox rows to Kafka, in id order, then deletes them.

At-least-once: rows are deleted only after Kafka acknowledged them (acks=all, idempotent
producer); a crash in between re-publishes, and consumers drop the duplicate by event id.
One relay is active at a time (a PostgreSQL advisory lock), so per-key order holds; extra
replicas wait as hot standbys. A NOTIFY on commit wakes it; a short poll is the fallback.
"""

import logging
import select as _select
import time

import orjson
from kafka import KafkaProducer
from sqlalchemy import Engine, text

from core.settings import Settings
from events.outbox import NOTIFY_CHANNEL

log = logging.getLogger("provisioner.relay")

_LOCK_KEY = 0x70726F76  # "prov": the relay's advisory lock


class Relay:
    def __init__(self, settings: Settings, engine: Engine, producer: KafkaProducer):
        self.settings = settings
        self.engine = engine
        self.producer = producer
        self.running = True
        self.published = 0

    def publish_batch(self) -> int:
        """Publish one batch of committed rows; returns how many were published."""
        with self.engine.begin() as conn:
            rows = conn.execute(
                text("SELECT id, topic, key, payload FROM outbox ORDER BY id LIMIT :n"),
                {"n": self.settings.relay_batch_size},
            ).all()
            if not rows:
                return 0
            futures = [
                self.producer.send(r.topic, key=r.key.encode(), value=orjson.dumps(r.payload)) for r in rows
            ]
            self.producer.flush()
            for future in futures:
                future.get(timeout=0)  # raises if Kafka refused it: rows stay for the next try
            conn.execute(text("DELETE FROM outbox WHERE id = ANY(:ids)"), {"ids": [r.id for r in rows]})
        self.published += len(rows)
        return len(rows)

    def run(self) -> None:
        """Hold the leader lock, then drain the outbox whenever it is notified or polled."""
        raw = self.engine.raw_connection()
        try:
            raw.set_isolation_level(0)  # autocommit: LISTEN and the session lock live outside transactions
            cur = raw.cursor()
            while self.running:
                cur.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_KEY,))
                if cur.fetchone()[0]:
                    break
                time.sleep(1.0)
            cur.execute(f"LISTEN {NOTIFY_CHANNEL}")
            log.info("relay is the active publisher")
            while self.running:
                while self.running and self.publish_batch() == self.settings.relay_batch_size:
                    pass
                ready, _, _ = _select.select([raw.connection], [], [], self.settings.relay_poll_seconds)
                if ready:
                    raw.connection.poll()
                    raw.connection.notifies.clear()
        finally:
            raw.close()
