"""The workers' consumer on librdkafka (confluent-kafka), behind the part of kafka-python's
`KafkaConsumer` the consume loop uses (`workers/runtime.py:run`): `poll` returning records by
partition, `commit` of everything polled so far, `assignment`, `highwater`, `position`, `close`.

Under a steady load, kafka-python's fetching and record parsing in Python was most of a worker's
interpreter time, even for a worker that ignores what it reads (docs/benchmarks.md); librdkafka
fetches and parses in its own threads, in C. Same group semantics as `events/kafka.py:consumer`:
offsets committed only by `commit`, after the batch's database commit (offsets are stored as
records are handed out, so a commit covers exactly what was polled), read_committed, static
membership when configured, the same fetch size and wait. A fenced static member raises
kafka-python's `FencedInstanceIdError`; other client errors `KafkaError`.
"""

from typing import Any

import confluent_kafka
from confluent_kafka import KafkaError as RdKafkaError
from kafka.errors import FencedInstanceIdError, KafkaError


class Record:
    """A consumed record, with kafka-python's attribute names."""

    __slots__ = ("topic", "partition", "offset", "key", "value", "headers")

    def __init__(self, message: Any):
        self.topic: str = message.topic()
        self.partition: int = message.partition()
        self.offset: int = message.offset()
        self.key: bytes | None = message.key()
        self.value: bytes | None = message.value()
        self.headers: list[tuple[str, bytes]] = message.headers() or []


class Partition:
    """A topic partition as kafka-python's `TopicPartition` is used: hashable, `.topic`, `.partition`."""

    __slots__ = ("topic", "partition")

    def __init__(self, topic: str, partition: int):
        self.topic, self.partition = topic, partition

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Partition) and (self.topic, self.partition) == (other.topic, other.partition)

    def __hash__(self) -> int:
        return hash((self.topic, self.partition))


def _fenced(error: Any) -> bool:
    return bool(error.code() == RdKafkaError.FENCED_INSTANCE_ID or (error.fatal() and "fenced" in error.str().lower()))


class Consumer:
    def __init__(self, config: dict[str, Any], topics: list[str], listener: Any = None, max_records: int = 500):
        self._consumer = confluent_kafka.Consumer(config)
        self._max = max_records
        self._listener = listener

        def assigned(_consumer: Any, partitions: list[Any]) -> None:
            if self._listener is not None:
                self._listener.on_partitions_assigned([Partition(p.topic, p.partition) for p in partitions])

        def revoked(_consumer: Any, partitions: list[Any]) -> None:
            if self._listener is not None:
                self._listener.on_partitions_revoked([Partition(p.topic, p.partition) for p in partitions])

        self._consumer.subscribe(topics, on_assign=assigned, on_revoke=revoked, on_lost=revoked)

    def poll(self, timeout_ms: int = 0) -> dict[Partition, list[Record]]:
        try:
            # what has arrived, up to max_records, at once; else wait for the first record only
            # (`consume` alone would wait for max_records or the whole timeout)
            messages = self._consumer.consume(num_messages=self._max, timeout=0)
            if not messages:
                first = self._consumer.poll(timeout_ms / 1000)
                if first is not None:
                    more = self._consumer.consume(num_messages=self._max - 1, timeout=0) if self._max > 1 else []
                    messages = [first, *more]
        except confluent_kafka.KafkaException as exc:
            raise self._error(exc.args[0]) from exc
        batches: dict[Partition, list[Record]] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                if _fenced(error) or error.fatal():
                    raise self._error(error)
                continue  # transient (a broker restarting, an end of partition): librdkafka retries
            record = Record(message)
            batches.setdefault(Partition(record.topic, record.partition), []).append(record)
        return batches

    def commit(self) -> None:
        try:
            self._consumer.commit(asynchronous=False)
        except confluent_kafka.KafkaException as exc:
            if exc.args[0].code() == RdKafkaError._NO_OFFSET:
                return  # nothing polled since the last commit
            raise self._error(exc.args[0]) from exc

    def assignment(self) -> list[Partition]:
        return [Partition(p.topic, p.partition) for p in self._consumer.assignment()]

    def highwater(self, tp: Partition) -> int | None:
        try:
            got = self._consumer.get_watermark_offsets(confluent_kafka.TopicPartition(tp.topic, tp.partition), cached=True)
        except confluent_kafka.KafkaException:
            return None
        return int(got[1]) if got is not None and got[1] >= 0 else None

    def position(self, tp: Partition, timeout_ms: int = 5000) -> int | None:
        """The next offset to hand out: the last handed out + 1, else (nothing handed out yet) the
        group's committed offset, asked of the coordinator within `timeout_ms`, as kafka-python's
        `position` answers; None if it cannot tell in time."""
        partition = [confluent_kafka.TopicPartition(tp.topic, tp.partition)]
        (found,) = self._consumer.position(partition)
        if found.offset < 0:
            try:
                (found,) = self._consumer.committed(partition, timeout=max(timeout_ms, 1) / 1000)
            except confluent_kafka.KafkaException:
                return None
        return int(found.offset) if found.offset >= 0 else None

    def close(self, autocommit: bool = False) -> None:
        """Leave (a static member keeps its place until its session ends); nothing is committed."""
        self._consumer.close()

    @staticmethod
    def _error(error: Any) -> KafkaError:
        if _fenced(error):
            return FencedInstanceIdError(error.str())
        return KafkaError(error.str())


def config(
    bootstrap_servers: str, group_id: str, *, session_timeout_ms: int, reconnect_backoff_max_ms: int,
    fetch_min_bytes: int, fetch_max_wait_ms: int, instance_id: str | None,
) -> dict[str, Any]:
    """librdkafka's names for `events/kafka.py:consumer`'s settings."""
    settings: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "client.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": True,  # stored as handed out: `commit` covers what was polled
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "session.timeout.ms": session_timeout_ms,
        "heartbeat.interval.ms": max(1000, session_timeout_ms // 5),
        "reconnect.backoff.max.ms": reconnect_backoff_max_ms,
        "fetch.min.bytes": fetch_min_bytes,
        "fetch.wait.max.ms": fetch_max_wait_ms,
        "partition.assignment.strategy": "range",  # kafka-python's default: the same placement either way
    }
    if instance_id:
        settings["group.instance.id"] = instance_id
    return settings
