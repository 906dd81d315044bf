"""The consume loop on faust-streaming (aiokafka), behind the same handlers and guarantees as `runtime.run`.

Each worker is one Faust app (its id is the consumer group) with one agent over its topics. The
agent takes the stream in batches (`take_events`: up to `worker_batch_size` events, or what came
in `worker_batch_wait_seconds`) and applies each with `runtime.apply_records` in a thread, since
SQLAlchemy is synchronous: one transaction with the batch's tracking rows, dead letters as
before. `take_events` acks a batch's events only once the loop body returns, and Faust commits
only acked offsets (on its timer, and when partitions are revoked), so an offset is committed
only after its batch's database commit, as in the kafka-python loop.

The one path where Faust would ack without our commit is a body that raises: the generator's
cleanup acks the batch. So a batch that fails to apply ends the process at once, without
acking, the way the kafka-python loop crashes on a lost database; Kafka re-delivers from the
last committed offset and the tracking rows skip what was applied. A stop (SIGTERM) in the
middle of a batch waits for its transaction before the events are acked.
"""

import asyncio
import logging
import os
import socket
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust
from sqlalchemy import Engine

from core import metrics
from core.settings import Settings
from workers import runtime

log = logging.getLogger("provisioner.worker")


def _broker_url(settings: Settings) -> str:
    return ";".join(f"kafka://{server.strip()}" for server in settings.kafka_bootstrap_servers.split(","))


def app_for(settings: Settings, group: str) -> faust.App:
    """A Faust app that only consumes: no web server, no tables, no leader topic, no topic creation."""
    instance = ""
    if settings.consumer_static_membership:
        instance = settings.consumer_group_instance_id or f"{socket.gethostname()}-{group}"
    # Faust makes its data directory even with tables in memory, but not the parents of it: keep
    # it under the temp dir, out of the working directory
    datadir = os.path.join(tempfile.gettempdir(), "provisioner-faust", group)
    os.makedirs(datadir, exist_ok=True)
    return faust.App(
        group,
        broker=_broker_url(settings),
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        topic_disable_leader=True,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        consumer_group_instance_id=instance,
        broker_session_timeout=settings.consumer_session_timeout_ms / 1000,
        broker_heartbeat_interval=max(1.0, settings.consumer_session_timeout_ms / 5000),
        broker_max_poll_records=settings.worker_batch_size,
        broker_commit_interval=1.0,
        store="memory://",
        datadir=datadir,
    )


class _Lag:
    """Lag per partition from what the batches applied: the high watermark minus the next offset."""

    def __init__(self, group: str):
        self.group = group
        self.next_offset: dict[Any, int] = {}

    def applied(self, records: list[Any]) -> None:
        for record in records:
            tp = record.tp
            self.next_offset[tp] = max(self.next_offset.get(tp, 0), record.offset + 1)

    def update(self, app: faust.App) -> None:
        consumer = app.consumer
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            position = self.next_offset.get(tp)
            if high is not None and position is not None:
                metrics.CONSUMER_LAG.labels(self.group, tp.topic, str(tp.partition)).set(max(0, high - position))

    def revoked(self, revoked: set[Any]) -> None:
        for tp in revoked:
            self.next_offset.pop(tp, None)
            try:
                metrics.CONSUMER_LAG.remove(self.group, tp.topic, str(tp.partition))
            except KeyError:
                pass


class _Agent:
    """The agent, the partition signals and the gauge timer of one worker's Faust app."""

    def __init__(self, settings: Settings, engine: Engine, consumer: str, handler: runtime.Handler, group: str,
                 topics: dict[str, str], joined: Callable[[], None], every_few_seconds: Callable[[], None] | None):
        self.settings, self.engine, self.consumer, self.handler = settings, engine, consumer, handler
        self.topics, self.joined, self.every_few_seconds = topics, joined, every_few_seconds
        self.group = group
        self.tally = runtime.Tally()
        self.lag = _Lag(group)
        # one thread: batches apply one after another, in stream order, as in the kafka-python loop
        self.apply_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{consumer}-apply")
        self.gauge_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{consumer}-gauges")

    def _apply(self, records: list[Any]) -> None:
        runtime.apply_records(self.engine, self.topics, self.consumer, self.handler, records, self.tally)

    async def consume(self, stream: Any) -> None:
        batch, wait = self.settings.worker_batch_size, self.settings.worker_batch_wait_seconds
        async for events in stream.take_events(batch, within=wait):
            records = [event.message for event in events]
            future = self.apply_thread.submit(self._apply, records)
            try:
                await asyncio.wrap_future(future)
            except asyncio.CancelledError:
                # stopping mid-batch: the events are acked on the way out, so their transaction must be done first
                _finished_or_exit(future)
                raise
            except BaseException:
                log.exception("batch failed; exiting without acking it, to have it again after a restart")
                os._exit(1)
            self.lag.applied(records)

    async def on_assigned(self, sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        self.joined()
        metrics.REBALANCES.labels(self.group).inc()

    async def on_revoked(self, sender: Any, revoked: set[Any], *args: Any, signal: Any = None, **kwargs: Any) -> None:
        self.lag.revoked(revoked)

    async def gauges(self, app: faust.App) -> None:
        self.lag.update(app)
        if self.every_few_seconds is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(self.gauge_thread, self.every_few_seconds)
            except Exception:  # a gauge query must never stop consumption
                log.exception("gauge refresh failed")


def run(
    settings: Settings,
    engine: Engine,
    consumer: str,
    handler: runtime.Handler,
    topic_names: list[str],
    *,
    group: str,
    topics: dict[str, str],
    joined: Callable[[], None],
    every_few_seconds: Callable[[], None] | None = None,
) -> runtime.Tally:
    """Consume until SIGTERM/SIGINT (Faust's worker handles the signals)."""
    app = app_for(settings, group)
    agent = _Agent(settings, engine, consumer, handler, group, topics, joined, every_few_seconds)
    app.agent(app.topic(*topic_names), concurrency=1)(agent.consume)
    app.on_partitions_assigned.connect(agent.on_assigned)  # type: ignore[arg-type]  # mode types the receiver oddly
    app.on_partitions_revoked.connect(agent.on_revoked)  # type: ignore[arg-type]
    app.timer(2.0)(agent.gauges)
    worker = faust.Worker(app, loglevel=settings.log_level, override_logging=False, quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:  # the worker exits the interpreter when it stops; a clean stop is not an error
        if exc.code not in (0, None):
            raise
    finally:
        agent.apply_thread.shutdown(wait=True)
        agent.gauge_thread.shutdown(wait=False)
    return agent.tally


def _finished_or_exit(future: Any) -> None:
    try:
        future.result()
    except BaseException:
        log.exception("batch failed while stopping; exiting without acking it")
        os._exit(1)
