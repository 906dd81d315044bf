"""What an outside consumer sees: every record the relay publishes, read with another Kafka client
(confluent-kafka, on librdkafka) and parsed by the CloudEvents SDK's Kafka binding from its headers.

A SCIM user, their first sign-in and a poison record put a record on each of the four topics
(lifecycle, members, billing, dead letters); each of this test's records carries
`content-type: application/cloudevents+json` (structured mode) and parses to the same attributes
as its JSON value, and no key or header holds an email.
"""

import uuid

import httpx
import orjson
import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from confluent_kafka import Consumer, TopicPartition
from kafka import KafkaProducer

from domain import service_tokens
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
STRUCTURED = "application/cloudevents+json"


def _read_all(settings, topic: str) -> list[tuple[dict[str, bytes], bytes | None, bytes]]:
    """(headers, key, value) of every record of the topic, from the beginning to its current end."""
    consumer = Consumer({
        "bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": f"outside-{uuid.uuid4().hex}",
        "enable.auto.commit": False, "isolation.level": "read_committed",
    })  # fmt: skip
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        parts = [TopicPartition(topic, p, 0) for p in sorted(metadata.partitions)]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
        consumer.assign(parts)
        out, positions = [], {p: 0 for p in ends}
        while any(positions[p] < ends[p] for p in ends):
            message = consumer.poll(5)
            assert message is not None, f"stopped reading {topic} at {positions} of {ends}"
            assert message.error() is None, message.error()
            positions[message.partition()] = message.offset() + 1
            out.append((dict(message.headers() or []), message.key(), message.value()))
        return out
    finally:
        consumer.close()


def test_every_topic_parses_with_the_cloudevents_sdk_on_another_client(pipeline, scim_org, settings, engine):
    email = f"outside-{uuid.uuid4().hex[:8]}@example.test"
    assert scim_org.client.post("/Users", json={"schemas": [USER], "userName": email}).status_code == 201
    token = service_tokens.create(engine, "outside-reader")
    signed_in = httpx.post(
        f"{settings.public_url}/internal/v1/logins", headers={"Authorization": f"Bearer {token}"},
        json={"org": scim_org.slug, "email": email, "method": "password"}, timeout=10,
    )  # fmt: skip
    assert signed_in.status_code == 202
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers.split(","))
    poison = producer.send(settings.topic_lifecycle, key=b"poison", value=b"not a CloudEvent").get(timeout=10)
    producer.close()
    dead_subject = f"{poison.topic}/{poison.partition}/{poison.offset}"

    def ours(topic: str) -> list[tuple[dict[str, bytes], bytes | None, bytes]]:
        found = []
        for headers, key, value in _read_all(settings, topic):
            try:
                ce = orjson.loads(value)
            except orjson.JSONDecodeError:
                continue  # records other tests produced raw, not through the relay
            if ce.get("orgid") == scim_org.id or ce.get("subject") == dead_subject:
                found.append((headers, key, value))
        return found

    topics = (settings.topic_lifecycle, settings.topic_members, settings.topic_billing, settings.topic_dead_letter)
    records = wait_for(
        lambda: (found := {t: ours(t) for t in topics}) and all(found.values()) and found,
        timeout=40, interval=1.0, message="a record of this test on every topic",
    )  # fmt: skip
    for topic, found in records.items():
        for headers, key, value in found:
            assert headers.get("content-type") == STRUCTURED.encode(), (topic, headers)
            message = ce_kafka.KafkaMessage(headers=headers, key=key, value=value)
            event = ce_kafka.from_kafka(message, JSONFormat())
            sent = orjson.loads(value)
            attributes = event.get_attributes()
            for name in ("id", "source", "type", "subject", "specversion", "dataschema"):
                assert attributes[name] == sent[name], (topic, name)
            assert event.get_data() == sent["data"]
            if sent["type"] != "io.provisioner.dead_letter":
                assert key == sent["partitionkey"].encode()
            # no personal data outside the value: keys and headers carry ids only
            assert b"@" not in (key or b"") and not any(b"@" in v for v in headers.values()), (topic, key, headers)
