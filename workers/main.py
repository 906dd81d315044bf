"""Worker processes' composition root: `run_worker(name, settings)`."""

import logging
import signal
import threading
from collections.abc import Callable
from typing import NamedTuple

from sqlalchemy import Engine, text

from core import metrics, process_http
from core.db import make_engine
from core.settings import Settings
from events import kafka
from workers import billing, conflicts, membership, runtime, signals

log = logging.getLogger("provisioner.worker")

class Worker(NamedTuple):
    consumer: str
    handler: Callable[[Settings], runtime.Handler]
    roles: tuple[str, ...]  # topic roles consumed
    port_setting: str  # the Settings field of its metrics port


WORKERS = {
    "membership": Worker(membership.CONSUMER, lambda _: membership.Membership(), ("lifecycle",), "metrics_port_membership"),
    "billing": Worker(billing.CONSUMER, lambda _: billing.Billing(), ("members",), "metrics_port_billing"),
    "conflicts": Worker(conflicts.CONSUMER, lambda _: conflicts.Conflicts(), ("members", "lifecycle"), "metrics_port_conflicts"),
    # stages a session-revoked SET per deactivated or removed member, and pushes them (workers/signals)
    "signals": Worker(signals.CONSUMER, lambda s: signals.Signals(bool(s.caep_push_url)), ("members",), "metrics_port_signals"),
}


def _domain_gauges(name: str, engine: Engine) -> Callable[[], None]:
    """Gauges read from PostgreSQL every few seconds by the worker that owns the facts."""

    def refresh() -> None:
        with engine.connect() as conn:
            depth = conn.execute(
                text("SELECT count(*) FROM dead_letters WHERE consumer = :c AND redriven_at IS NULL"), {"c": name}
            ).scalar() or 0
            metrics.DEAD_LETTER_DEPTH.labels(name).set(depth)
            if name == conflicts.CONSUMER:
                open_conflicts = conn.execute(text("SELECT count(*) FROM conflicts WHERE status = 'open'")).scalar()
                metrics.OPEN_CONFLICTS.set(open_conflicts or 0)
            if name == signals.CONSUMER:
                pending, dead = conn.execute(text(
                    "SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'dead') "
                    "FROM security_events WHERE status IN ('pending', 'dead')"
                )).one()  # fmt: skip
                metrics.SECURITY_EVENTS_PENDING.set(pending)
                metrics.SECURITY_EVENTS_DEAD.set(dead)

    return refresh


def _verify_billing_periodically(settings: Settings, engine: Engine, stop: threading.Event) -> None:
    """The billing worker runs `billing verify` on a timer, for the mismatch alert."""
    from workers.billing.verify import verify

    while not stop.wait(settings.billing_verify_interval_seconds):
        try:
            report = verify(settings, engine)
            metrics.BILLING_VERIFY_MISMATCHES.set(len(report.missing) + len(report.unexpected) + len(report.duplicates))
        except Exception:
            log.exception("periodic billing verify failed")


def _reconcile_periodically(settings: Settings, engine: Engine, stop: threading.Event) -> None:
    """The billing worker reconciles every org on a timer (report only), for the drift gauge and alert."""
    from workers import reconcile

    delay = min(5.0, settings.reconcile_interval_seconds)  # a first pass soon after start, then every interval
    while not stop.wait(delay):
        delay = settings.reconcile_interval_seconds
        try:
            drifts = reconcile.find(settings, engine, None, min_age_seconds=settings.reconcile_min_age_seconds)
        except Exception:
            log.exception("periodic reconcile failed")
            continue
        found = reconcile.counts(drifts)
        for kind, count in found.items():
            metrics.RECONCILE_DRIFTS.labels(kind).set(count)
        if drifts:
            log.warning("reconcile found drifts", extra={"drifts": {k: n for k, n in found.items() if n},
                                                          "orgs": sorted({d.org_id for d in drifts})[:20]})


def run_worker(name: str, settings: Settings) -> None:
    """Consume the worker's topics as a member of its consumer group until SIGTERM/SIGINT."""
    consumer_name, factory, roles, port_setting = WORKERS[name]
    topics = settings.topics()
    handler = factory(settings)
    engine = make_engine(settings, pool_size=2)
    state = {"running": True}
    stop = threading.Event()

    def on_signal(*_: object) -> None:
        state["running"] = False
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    group = f"{settings.consumer_group_prefix}-{consumer_name}"
    listener = runtime.GroupListener(group)

    def ready() -> bool:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return listener.joined

    process_http.start(settings.metrics_host, getattr(settings, port_setting), ready)
    if name == "billing" and settings.billing_verify_interval_seconds > 0:
        threading.Thread(target=_verify_billing_periodically, args=(settings, engine, stop), daemon=True).start()
    if name == "billing" and settings.reconcile_interval_seconds > 0:
        threading.Thread(target=_reconcile_periodically, args=(settings, engine, stop), daemon=True).start()
    if name == "signals" and settings.caep_push_url:
        from workers.signals import delivery

        threading.Thread(target=delivery.run, args=(settings, make_engine(settings, pool_size=2), stop), daemon=True,
                         name="set-delivery").start()
    log.info("worker %s consuming %s as group %s (%s)", name, ", ".join(topics[r] for r in roles), group, settings.worker_runtime)
    if settings.worker_runtime == "faust":
        from workers import faust_runtime

        try:
            faust_runtime.run(
                settings,
                engine,
                consumer_name,
                handler,
                [topics[role] for role in roles],
                group=group,
                topics=topics,
                joined=lambda: setattr(listener, "joined", True),
                every_few_seconds=_domain_gauges(consumer_name, engine),
            )
        finally:
            stop.set()
            engine.dispose()
        return
    consumer = kafka.consumer(settings, group, [topics[role] for role in roles], listener)
    try:
        runtime.run(
            engine,
            consumer,
            consumer_name,
            handler,
            lambda: state["running"],
            group=group,
            every_few_seconds=_domain_gauges(consumer_name, engine),
            topics=topics,
        )
    finally:
        consumer.close(autocommit=False)
        engine.dispose()
