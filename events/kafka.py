"""Kafka clients and topics, configured in one place (kafka-python)."""

import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition, errors
from kafka.admin import ConfigResource, ConfigResourceType

from core.settings import Settings
from events.partitioner import Murmur2Partitioner

_APPLY_TIMEOUT_SECONDS = 15.0


def producer(settings: Settings, **overrides: object) -> Any:
    """An idempotent producer that waits for every in-sync replica (acks=all): kafka-python's, or
    librdkafka's behind the same `send`/`flush`/`close` (`relay_kafka_client`, events/librdkafka.py).
    `overrides` are kafka-python's names; librdkafka takes `delivery_timeout_ms` and needs no `max_block_ms`."""
    if settings.relay_kafka_client == "confluent-kafka":
        from events import librdkafka

        timeout = int(str(overrides.get("delivery_timeout_ms", 30000)))
        return librdkafka.Producer(librdkafka.config(
            settings.kafka_bootstrap_servers, reconnect_backoff_max_ms=settings.kafka_reconnect_backoff_max_ms,
            delivery_timeout_ms=timeout,
        ))  # fmt: skip
    config: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "compression_type": None,
        "request_timeout_ms": 15000,
        "delivery_timeout_ms": 30000,
        "client_id": "provisioner",
        "partitioner": Murmur2Partitioner(),  # Kafka's default placement, hashed in C
        # kafka-python backs off up to 30 s between reconnects: a restarted broker would wait that long
        "reconnect_backoff_max_ms": settings.kafka_reconnect_backoff_max_ms,
    }
    config.update(overrides)
    return KafkaProducer(**config)


class GroupConsumer(Protocol):
    """What the consume loop uses of a consumer: kafka-python's `KafkaConsumer`, or
    `events.librdkafka_consumer.Consumer` (`worker_kafka_client`)."""

    def poll(self, timeout_ms: int = 0) -> dict[Any, list[Any]]: ...

    def commit(self) -> None: ...

    def assignment(self) -> Any: ...

    def highwater(self, tp: Any) -> int | None: ...

    def position(self, tp: Any, timeout_ms: int = 5000) -> int | None: ...

    def close(self, autocommit: bool = False) -> None: ...


def consumer(
    settings: Settings, group_id: str, topics: list[str], listener: ConsumerRebalanceListener | None = None
) -> GroupConsumer:
    """A group member that commits offsets itself, after its database commit; on librdkafka or
    kafka-python (`worker_kafka_client`), with the same settings.

    A static member (`consumer_static_membership`, KIP-345) by default: restarted with the same
    `group_instance_id`, it gets its partitions back from the coordinator at once, where a new
    dynamic member waits for the dead one's session to expire and a rebalance to complete. A
    static member does not leave the group when it closes; its session timeout frees its
    partitions if it does not come back."""
    config: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_poll_records": settings.worker_batch_size,
        "fetch_min_bytes": settings.consumer_fetch_min_bytes,
        "fetch_max_wait_ms": settings.consumer_fetch_max_wait_ms,
        "session_timeout_ms": settings.consumer_session_timeout_ms,
        "heartbeat_interval_ms": max(1000, settings.consumer_session_timeout_ms // 5),
        "reconnect_backoff_max_ms": settings.kafka_reconnect_backoff_max_ms,
        "client_id": group_id,
    }
    instance = None
    if settings.consumer_static_membership:
        # the setting, or "<hostname>-<group>": the same for a worker restarted on this host
        instance = settings.consumer_group_instance_id or f"{socket.gethostname()}-{group_id}"
        instance = re.sub(r"[^A-Za-z0-9._-]", "_", instance)[:249]
        config["group_instance_id"] = instance
    if settings.worker_kafka_client == "confluent-kafka":
        from events import librdkafka_consumer

        rd = librdkafka_consumer.config(
            settings.kafka_bootstrap_servers, group_id, session_timeout_ms=settings.consumer_session_timeout_ms,
            reconnect_backoff_max_ms=settings.kafka_reconnect_backoff_max_ms, fetch_min_bytes=settings.consumer_fetch_min_bytes,
            fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms, instance_id=instance,
        )  # fmt: skip
        return librdkafka_consumer.Consumer(rd, topics, listener, max_records=settings.worker_batch_size)
    c: GroupConsumer = KafkaConsumer(**config)
    c.subscribe(topics, listener=listener)  # type: ignore[attr-defined]
    return c


def read_to_end(
    settings: Settings, topics: list[str], *, depth: int | None = None, timeout: float | None = None
) -> Iterator[bytes]:
    """The values of every committed record of these topics, from the beginning (or the last
    `depth` of each partition) to the end offsets seen when reading starts; no group, nothing committed.

    With `timeout` (seconds), a read that has not reached the end by then raises KafkaTimeoutError
    (a partition without a leader would otherwise keep it polling)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or [])]
        if not partitions:
            return
        consumer.assign(partitions)
        end = consumer.end_offsets(partitions)
        start = consumer.beginning_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, start[tp] if depth is None else max(start[tp], end[tp] - depth))
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            if deadline is not None and time.monotonic() > deadline:
                raise errors.KafkaTimeoutError(f"reading {', '.join(topics)} to the end took over {timeout} s")
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    yield record.value
    finally:
        consumer.close(autocommit=False)


def topic_names(settings: Settings) -> list[str]:
    return list(settings.topics().values())


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """The configuration each topic must have, by name: its retention (`topic_retention_ms_*`) and
    the in-sync replicas an acks=all write waits for."""
    retention = settings.topic_retention_ms()
    return {
        name: {"retention.ms": str(retention[role]), "min.insync.replicas": str(settings.min_insync_replicas())}
        for role, name in settings.topics().items()
    }


@dataclass(frozen=True)
class TopicsReport:
    """What `ensure_topics` did: topics created, and the settings it changed on existing ones
    (topic -> key -> (was, now)); the others were already as configured."""

    created: list[str]
    altered: dict[str, dict[str, tuple[str | None, str]]]
    unchanged: list[str]


def ensure_topics(settings: Settings) -> TopicsReport:
    """Create the missing topics with their configuration, and set it on existing topics where it
    differs, so running it again changes nothing. Partition counts and replication of existing
    topics are left alone (changing them moves data: an operator's decision)."""
    wanted = topic_configs(settings)
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers.split(","), client_id="provisioner-admin")
    try:
        existing = set(admin.list_topics())
        created = _create(admin, settings, {name: configs for name, configs in wanted.items() if name not in existing})
        present = {name: configs for name, configs in wanted.items() if name not in created}
        altered = _align(admin, present)
        return TopicsReport(created, altered, [name for name in present if name not in altered])
    finally:
        admin.close()


def _create(admin: KafkaAdminClient, settings: Settings, topics: dict[str, dict[str, str]]) -> list[str]:
    """Create these topics; returns those created here (another process may create one first)."""
    if not topics:
        return []
    options = {
        name: {"num_partitions": settings.topic_partitions, "replication_factor": settings.topic_replication, "configs": configs}
        for name, configs in topics.items()
    }
    result = admin.create_topics(options, raise_errors=False)
    created = []
    for topic in result["topics"]:
        error = errors.for_code(topic["error_code"])
        if error is errors.NoError:
            created.append(topic["name"])
        elif error is not errors.TopicAlreadyExistsError:
            raise error(f"creating topic {topic['name']}: {topic.get('error_message') or error.__name__}")
    return created


def _align(admin: KafkaAdminClient, topics: dict[str, dict[str, str]]) -> dict[str, dict[str, tuple[str | None, str]]]:
    """Set the wanted configuration on existing topics where their effective value differs (only
    those keys: a topic's other settings are kept); returns what changed."""
    if not topics:
        return {}
    current = _effective(admin, topics)
    changes: dict[str, dict[str, tuple[str | None, str]]] = {}
    for name, configs in topics.items():
        changed = {key: (current[name].get(key), value) for key, value in configs.items() if current[name].get(key) != value}
        if changed:
            changes[name] = changed
    if not changes:
        return {}
    updates = [
        ConfigResource(ConfigResourceType.TOPIC, name, {key: now for key, (_, now) in changed.items()})
        for name, changed in changes.items()
    ]
    for name, outcome in admin.alter_configs(updates, raise_on_unknown=False, incremental=True)["topic"].items():
        if outcome != "OK":
            raise errors.KafkaError(f"setting the configuration of topic {name}: {outcome}")
    # The controller accepts the change before the brokers apply it: wait until they report it, so
    # the configuration is in force on return and a second run finds nothing to change.
    wanted = {name: {key: now for key, (_, now) in changed.items()} for name, changed in changes.items()}
    deadline = time.monotonic() + _APPLY_TIMEOUT_SECONDS
    while (current := _effective(admin, wanted)) != wanted:
        if time.monotonic() > deadline:
            raise errors.KafkaError(f"the brokers did not apply the topic configuration in time: {current} instead of {wanted}")
        time.sleep(0.1)
    return changes


def _effective(admin: KafkaAdminClient, topics: dict[str, dict[str, str]]) -> dict[str, dict[str, str | None]]:
    """The value in force of each of these keys on each topic, broker defaults included."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, name, list(configs)) for name, configs in topics.items()]
    found = admin.describe_configs(resources, config_filter="all")["topic"]
    return {name: {key: found.get(name, {}).get(key, {}).get("value") for key in configs} for name, configs in topics.items()}
