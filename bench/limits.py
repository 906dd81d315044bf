"""The box's own limits, measured in the same run as the system (make bench's section 6): Kafka's
raw rates through both clients the system uses, and PostgreSQL's single-row commits.

Kafka's raw rate is what the broker and a client do for a bare 600-byte message (about the size
of a lifecycle event) with nothing else to do: produced (idempotent, acks=all), consumed
(read_committed), and both at once (a producer process while a consumer reads). librdkafka's is
measured with the best settings found (docs/decisions.md "The box's raw Kafka rate"); kafka-python's
with the ones its producer runs.
"""

import multiprocessing
import time
import uuid
from typing import Any

from sqlalchemy import Engine, text

from core.settings import Settings

MESSAGE = b"x" * 600
# Tried on this box (linger ms, batch bytes, compression; bench/notes.md): 5/256 KiB/none was the
# fastest produce and produce+consume; 20/1 MB and 50/1 MB were slower, lz4 halved produce+consume.
LIBRDKAFKA_PRODUCER = {"linger.ms": 5, "batch.size": 256 * 1024, "compression.type": "none",
                       "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1_048_576}
LIBRDKAFKA_CONSUMER = {"fetch.min.bytes": 1 << 20, "fetch.wait.max.ms": 100, "isolation.level": "read_committed",
                       "enable.auto.commit": False, "auto.offset.reset": "earliest"}


def _topic(settings: Settings) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"{settings.topic_lifecycle}.raw-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    admin.create_topics([NewTopic(name, settings.topic_partitions, 1)])[name].result(30)
    return name


def _drop(settings: Settings, *names: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    for future in admin.delete_topics(list(names)).values():
        future.result(30)


def _produce(bootstrap: str, topic: str, messages: int, first_sent: Any = None) -> float:
    """Messages/s produced; `first_sent` (a shared double) gets the clock of the first send."""
    from confluent_kafka import Producer

    from events import librdkafka

    producer = Producer(librdkafka.config(bootstrap, reconnect_backoff_max_ms=1000, **LIBRDKAFKA_PRODUCER))
    t0 = time.monotonic()
    if first_sent is not None:
        first_sent.value = t0
    for i in range(messages):
        while True:
            try:
                producer.produce(topic, MESSAGE, str(i % 1000).encode())
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.005)
    left = producer.flush(60)
    if left:
        raise RuntimeError(f"{left} raw messages undelivered after 60 s")
    return messages / (time.monotonic() - t0)


def _consume(bootstrap: str, topic: str, messages: int, first_sent: Any = None) -> float:
    """Messages/s until `messages` are read: from the first one read, or from the first one sent."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "raw-" + uuid.uuid4().hex[:6], **LIBRDKAFKA_CONSUMER})
    consumer.subscribe([topic])
    got, deadline, started = 0, time.monotonic() + 120, None
    try:
        while got < messages and time.monotonic() < deadline:
            batch = consumer.consume(10_000, 1.0)
            if batch and started is None:
                started = time.monotonic()
            got += sum(1 for m in batch if m.error() is None)
    finally:
        consumer.close()
    if got < messages or started is None:
        raise RuntimeError(f"read {got} of {messages} raw messages in 120 s")
    if first_sent is not None:  # CLOCK_MONOTONIC: the same clock in both processes
        started = first_sent.value
    return messages / (time.monotonic() - started)


def librdkafka_rates(settings: Settings, messages: int) -> dict[str, float]:
    bootstrap = settings.kafka_bootstrap_servers
    first, second = _topic(settings), _topic(settings)
    try:
        produce = _produce(bootstrap, first, messages)
        consume = _consume(bootstrap, first, messages)
        spawn = multiprocessing.get_context("spawn")
        first_sent = spawn.Value("d", 0.0)
        producer = spawn.Process(target=_produce, args=(bootstrap, second, messages, first_sent))
        producer.start()
        together = _consume(bootstrap, second, messages, first_sent)
        producer.join(60)
    finally:
        _drop(settings, first, second)
    return {"produce_per_second": round(produce, 1), "consume_per_second": round(consume, 1),
            "produce_and_consume_per_second": round(together, 1)}  # fmt: skip


def kafka_python_rates(settings: Settings, messages: int) -> dict[str, float]:
    topic = _topic(settings)
    try:
        return _kafka_python_rates(settings, topic, messages)
    finally:
        _drop(settings, topic)


def _kafka_python_rates(settings: Settings, topic: str, messages: int) -> dict[str, float]:
    from kafka import KafkaConsumer, KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers.split(","), acks="all", enable_idempotence=True, linger_ms=5
    )
    t0 = time.monotonic()
    for i in range(messages):
        producer.send(topic, key=str(i % 1000).encode(), value=MESSAGE)
    producer.flush()
    produce = messages / (time.monotonic() - t0)
    producer.close()
    consumer = KafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap_servers.split(","), group_id=None,
        auto_offset_reset="earliest", max_poll_records=2000,
    )  # fmt: skip
    got, t0 = 0, time.monotonic()
    while got < messages and time.monotonic() - t0 < 60:
        got += sum(len(b) for b in consumer.poll(timeout_ms=500).values())
    consume = got / (time.monotonic() - t0)
    consumer.close()
    return {"produce_per_second": round(produce, 1), "consume_per_second": round(consume, 1)}


def box_limits(settings: Settings, engine: Engine, messages: int) -> dict[str, Any]:
    rd = librdkafka_rates(settings, messages * 3)  # ~10x faster: three times the messages for a steady figure
    kp = kafka_python_rates(settings, messages)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_commits (id bigserial primary key, v text)"))
    raw = engine.raw_connection()
    cur = raw.cursor()
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < 5:
        cur.execute("INSERT INTO bench_commits (v) VALUES ('x')")
        raw.commit()
        n += 1
    raw.close()
    return {
        "kafka_produce_per_second": kp["produce_per_second"],
        "kafka_consume_per_second": kp["consume_per_second"],
        "kafka_message_bytes": len(MESSAGE),
        "kafka_client": "kafka-python, acks=all, idempotent, linger 5 ms",
        "librdkafka": {**rd, "producer": {k: v for k, v in LIBRDKAFKA_PRODUCER.items() if not k.startswith("queue.")},
                       "consumer": {k: LIBRDKAFKA_CONSUMER[k] for k in ("fetch.min.bytes", "fetch.wait.max.ms")}},
        "postgres_single_row_commits_per_second": round(n / 5, 1),
    }
