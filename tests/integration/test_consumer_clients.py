"""The workers' two consumer clients on the real broker, through `events.kafka.consumer`: a
commit covers exactly what was polled (a new member of the group goes on from there, nothing
skipped, nothing repeated), the listener hears the assignment, the records carry their topic,
partition, offset, key, value and headers, and the lag reads zero once everything is consumed."""

import time
import uuid

import pytest

from events import kafka as kafka_clients
from events.kafka import ensure_topics
from events.outbox import STRUCTURED
from workers.runtime import GroupListener

pytestmark = pytest.mark.integration


def _records(consumer, wanted: int, timeout: float = 60.0) -> list:
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < wanted and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            got.extend(batch)
    return got


@pytest.mark.parametrize("client", ["confluent-kafka", "kafka-python"])
def test_a_commit_covers_what_was_polled_and_the_group_goes_on_from_there(settings, client):
    topic = f"{settings.topic_lifecycle}.consumers-{uuid.uuid4().hex[:6]}"
    own = settings.model_copy(update={"topic_lifecycle": topic, "worker_kafka_client": client, "worker_batch_size": 40,
                                      "consumer_static_membership": False})  # fmt: skip
    ensure_topics(own)
    producer = kafka_clients.producer(own)
    sent = {f"k{i}": f"v{i}".encode() for i in range(200)}
    for key, value in sent.items():
        producer.send(topic, key=key.encode(), value=value, headers=STRUCTURED)
    producer.flush(timeout=30)
    producer.close()
    group = f"consumers-{uuid.uuid4().hex[:6]}"
    listener = GroupListener(group)
    first = kafka_clients.consumer(own, group, [topic], listener)
    polled = _records(first, 1)
    while len(polled) < 60:
        polled += _records(first, 1)
    first.commit()
    assert listener.joined
    first.close(autocommit=False)
    second = kafka_clients.consumer(own, group, [topic], GroupListener(group))
    rest = _records(second, len(sent) - len(polled))
    seen = [(r.topic, r.partition, r.offset) for r in polled + rest]
    assert len(seen) == len(set(seen)) == len(sent)  # nothing skipped, nothing repeated
    assert {r.key.decode(): r.value for r in polled + rest} == sent
    assert all(r.topic == topic and dict(r.headers) == dict(STRUCTURED) for r in rest)
    second.commit()
    # the lag of each partition a fetch has told the high watermark of (not yet known: no lag reported)
    known = [(second.highwater(tp), second.position(tp, timeout_ms=10_000)) for tp in second.assignment()]
    known = [(high, position) for high, position in known if high is not None]
    assert known and all(high == position for high, position in known), known
    second.close(autocommit=False)
