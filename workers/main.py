"""Worker processes' composition root: `run_worker(name, settings)`."""

import logging
import signal

from prometheus_client import start_http_server

from core.db import make_engine
from core.settings import Settings
from events import kafka
from workers import membership, runtime

log = logging.getLogger("provisioner.worker")

WORKERS = {
    "membership": (membership.CONSUMER, membership.handle, "metrics_port_membership"),
}


def run_worker(name: str, settings: Settings) -> None:
    """Consume the lifecycle topic as member of the worker's consumer group until SIGTERM/SIGINT."""
    consumer_name, handler, port_setting = WORKERS[name]
    engine = make_engine(settings, pool_size=2)
    state = {"running": True}

    def stop(*_: object) -> None:
        state["running"] = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    start_http_server(getattr(settings, port_setting), addr="127.0.0.1")
    group = f"{settings.consumer_group_prefix}-{consumer_name}"
    consumer = kafka.consumer(settings, group, [settings.topic_lifecycle])
    log.info("worker %s consuming %s as group %s", name, settings.topic_lifecycle, group)
    try:
        runtime.run(engine, consumer, consumer_name, handler, lambda: state["running"])
    finally:
        consumer.close(autocommit=False)
        engine.dispose()
