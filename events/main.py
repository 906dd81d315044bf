"""The relay process's composition root."""

import signal

from sqlalchemy import text

from core import process_http
from core.db import make_engine
from core.settings import Settings
from events import kafka
from events.outbox import Relay, close


def run_relay(settings: Settings) -> None:
    engine = make_engine(settings, pool_size=3)  # the leader lock, a batch, and /readyz never waits for either
    wait_ms = int(settings.relay_kafka_timeout_seconds * 1000)
    relay = Relay(settings, engine, lambda: kafka.producer(settings, max_block_ms=wait_ms, delivery_timeout_ms=wait_ms))

    def stop(*_: object) -> None:
        relay.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def ready() -> bool:
        if relay.stalled_for() > settings.relay_kafka_timeout_seconds + 10:
            return False
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True

    process_http.start(settings.metrics_host, settings.metrics_port_relay, ready)
    relay.watch()
    try:
        relay.run()
    finally:
        try:
            close(relay.producer)
        finally:
            engine.dispose()
