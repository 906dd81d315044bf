"""Kafka clients and topics, configured in one place (kafka-python)."""

from collections.abc import Iterator

from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from core.settings import Settings


def producer(settings: Settings, **overrides: object) -> KafkaProducer:
    """An idempotent producer that waits for every in-sync replica (acks=all)."""
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
    }
    config.update(overrides)
    return KafkaProducer(**config)


def consumer(
    settings: Settings, group_id: str, topics: list[str], listener: ConsumerRebalanceListener | None = None, **overrides: object
) -> KafkaConsumer:
    """A group member that commits offsets itself, after its database commit."""
    config: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_poll_records": settings.worker_batch_size,
        "session_timeout_ms": settings.consumer_session_timeout_ms,
        "heartbeat_interval_ms": max(1000, settings.consumer_session_timeout_ms // 5),
        "client_id": group_id,
    }
    config.update(overrides)
    c = KafkaConsumer(**config)
    c.subscribe(topics, listener=listener)
    return c


def read_to_end(settings: Settings, topics: list[str], *, depth: int | None = None) -> Iterator[bytes]:
    """The values of every committed record of these topics, from the beginning (or the last
    `depth` of each partition) to the end offsets seen when reading starts; no group, nothing committed."""
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
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    yield record.value
    finally:
        consumer.close(autocommit=False)


def topic_names(settings: Settings) -> list[str]:
    return list(settings.topics().values())


def ensure_topics(settings: Settings) -> list[str]:
    """Create the topics that are missing; returns the names created."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers.split(","), client_id="provisioner-admin")
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(
                name=name,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication,
                topic_configs={
                    "min.insync.replicas": str(settings.min_insync_replicas()),
                    # billing is a ledger: `billing verify` reads it from the beginning, so it never ages out
                    **({"retention.ms": "-1"} if name == settings.topic_billing else {}),
                    # dead letters wait for a fix and a redrive: a month rather than the broker's week
                    **({"retention.ms": str(30 * 24 * 3600 * 1000)} if name == settings.topic_dead_letter else {}),
                },
            )
            for name in topic_names(settings)
            if name not in existing
        ]
        if wanted:
            try:
                admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass
        return [t.name for t in wanted]
    finally:
        admin.close()
