"""The relay process's composition root."""

import signal

from sqlalchemy import text

from core import process_http
from core.db import make_engine
from core.settings import Settings
from events import kafka
from events.outbox import Relay


def run_relay(settings: Settings) -> None:
    engine = make_engine(settings, pool_size=2)
    relay = Relay(settings, engine, lambda: kafka.producer(settings))

    def stop(*_: object) -> None:
        relay.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def ready() -> bool:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True

    process_http.start(settings.metrics_host, settings.metrics_port_relay, ready)
    try:
        relay.run()
    finally:
        relay.producer.close(timeout=10)
        engine.dispose()
