"""Worker processes' composition root: `run_worker(name, settings)`."""

import logging
import signal

from prometheus_client import start_http_server

from core.db import make_engine
from core.settings import Settings
from events import kafka
from workers import billing, conflicts, membership, runtime

log = logging.getLogger("provisioner.worker")

# name: (consumer name, handler factory, topic roles consumed, metrics port setting)
WORKERS = {
    "membership": (membership.CONSUMER, membership.Membership, ("lifecycle",), "metrics_port_membership"),
    "billing": (billing.CONSUMER, billing.Billing, ("members",), "metrics_port_billing"),
    "conflicts": (conflicts.CONSUMER, conflicts.Conflicts, ("members", "lifecycle"), "metrics_port_conflicts"),
}


def run_worker(name: str, settings: Settings) -> None:
    """Consume the worker's topic as a member of its consumer group until SIGTERM/SIGINT."""
    consumer_name, factory, roles, port_setting = WORKERS[name]
    topics = settings.topics()
    handler = factory(topics)
    engine = make_engine(settings, pool_size=2)
    state = {"running": True}

    def stop(*_: object) -> None:
        state["running"] = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    start_http_server(getattr(settings, port_setting), addr="127.0.0.1")
    group = f"{settings.consumer_group_prefix}-{consumer_name}"
    consumer = kafka.consumer(settings, group, [topics[role] for role in roles])
    log.info("worker %s consuming %s as group %s", name, ", ".join(topics[r] for r in roles), group)
    try:
        runtime.run(engine, consumer, consumer_name, handler, lambda: state["running"])
    finally:
        consumer.close(autocommit=False)
        engine.dispose()
