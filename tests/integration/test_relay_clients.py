"""The relay's two Kafka clients on the real broker: librdkafka (confluent-kafka) places every key
on the partition kafka-python (and the Java client) puts it on, delivers what it accepted with the
structured-mode header, and reports an undeliverable record through its future, as kafka-python does."""

import uuid

import pytest
from kafka.errors import KafkaError, KafkaTimeoutError

from events import kafka as kafka_clients
from events.kafka import ensure_topics, read_to_end
from events.outbox import STRUCTURED

pytestmark = pytest.mark.integration


def _placed(settings, topic, client):
    from kafka import KafkaConsumer, TopicPartition

    own = settings.model_copy(update={"relay_kafka_client": client})
    producer = kafka_clients.producer(own)
    keys = [f"{uuid.uuid4()}:{i}" for i in range(300)]
    for key in keys:
        producer.send(topic, key=key.encode(), value=b"{}", headers=STRUCTURED)
    producer.flush(timeout=30)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers.split(","), enable_auto_commit=False)
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    consumer.assign(parts)
    consumer.seek_to_beginning()
    placed, wanted = {}, set(keys)
    while wanted - placed.keys():
        for batch in consumer.poll(timeout_ms=2000).values():
            for record in batch:
                key = record.key.decode()
                if key in wanted:
                    placed[key] = record.partition
                    assert dict(record.headers) == dict(STRUCTURED)
    consumer.close()
    return [placed[k] for k in keys], keys


def test_both_clients_put_every_key_where_kafkas_murmur2_does(settings):
    topic = f"{settings.topic_lifecycle}.clients-{uuid.uuid4().hex[:6]}"
    own = settings.model_copy(update={"topic_lifecycle": topic})
    ensure_topics(own)
    from events.partitioner import partition_of

    for client in ("kafka-python", "confluent-kafka"):
        placed, keys = _placed(settings, topic, client)
        assert placed == [partition_of(k.encode(), settings.topic_partitions) for k in keys], client
    assert len(list(read_to_end(own, [topic]))) == 600


def test_an_undeliverable_record_fails_its_future_or_the_flush(settings):
    own = settings.model_copy(update={"relay_kafka_client": "confluent-kafka", "kafka_bootstrap_servers": "127.0.0.1:1"})
    producer = kafka_clients.producer(own, delivery_timeout_ms=1500)
    future = producer.send("nowhere", key=b"k", value=b"{}")
    with pytest.raises((KafkaError, KafkaTimeoutError)):
        producer.flush(timeout=5)
        future.get(timeout=0)
