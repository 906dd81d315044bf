"""The relay process's composition root."""

import signal

from prometheus_client import start_http_server

from core.db import make_engine
from core.settings import Settings
from events import kafka
from events.relay import Relay


def run_relay(settings: Settings) -> None:
    engine = make_engine(settings, pool_size=2)
    relay = Relay(settings, engine, lambda: kafka.producer(settings))

    def stop(*_: object) -> None:
        relay.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    start_http_server(settings.metrics_port_relay, addr="127.0.0.1")
    try:
        relay.run()
    finally:
        relay.producer.close(timeout=10)
        engine.dispose()
