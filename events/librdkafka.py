"""The relay's producer on librdkafka (confluent-kafka), behind the part of kafka-python's
`KafkaProducer` the relay uses: `send` returning a future, `flush` raising `KafkaTimeoutError` when
records are still undelivered at its timeout, `close`.

kafka-python's per-record `send` (its accumulator, a future and a callback chain in Python) was
about 45% of the relay's interpreter time in a drain; librdkafka takes a record in C. The
settings are the same as kafka-python's producer (`events/kafka.py:producer`): idempotent,
`acks=all`, 5 ms linger, Kafka's murmur2 placement of keys (`murmur2_random`: a keyed record goes
where the Java client and kafka-python put it, so switching clients keeps every key's partition).
"""

from typing import Any

import confluent_kafka
from kafka.errors import KafkaError, KafkaTimeoutError


class _Delivery:
    """A record's future: `get` raises the delivery error librdkafka reported, if any (after a flush)."""

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: Any = None

    def __call__(self, error: Any, _message: Any) -> None:
        self.error = error

    def get(self, timeout: float = 0) -> None:
        if self.error is not None:
            raise KafkaError(f"delivery failed: {self.error}")


class Producer:
    def __init__(self, config: dict[str, Any]):
        self._producer = confluent_kafka.Producer(config)

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None,
             headers: list[tuple[str, str | bytes | None]] | None = None) -> _Delivery:
        delivery = _Delivery()
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=delivery)
                return delivery
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.05)
            except confluent_kafka.KafkaException as exc:
                raise KafkaError(str(exc)) from exc

    def flush(self, timeout: float | None = None) -> None:
        left = self._producer.flush(-1 if timeout is None else timeout)
        if left:
            raise KafkaTimeoutError(f"{left} records not delivered within {timeout} s")

    def close(self, timeout: float | None = None) -> None:
        self.flush(5.0 if timeout is None else timeout)


def config(bootstrap_servers: str, *, reconnect_backoff_max_ms: int, delivery_timeout_ms: int = 30000,
           **overrides: Any) -> dict[str, Any]:
    """librdkafka's names for `events/kafka.py:producer`'s settings."""
    return {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "batch.size": 256 * 1024,
        "compression.type": "none",
        "request.timeout.ms": 15000,
        "delivery.timeout.ms": delivery_timeout_ms,
        "client.id": "provisioner",
        "partitioner": "murmur2_random",
        "reconnect.backoff.max.ms": reconnect_backoff_max_ms,
        **overrides,
    }
