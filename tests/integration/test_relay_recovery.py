"""The relay on the real Kafka: no re-publication after a crash between Kafka's ack and the delete.

It runs on the shared test stack, where no relay process runs (the pipeline tests have a database
and topics of their own), so no other relay can publish the rows it leaves in the outbox.
"""

import orjson
import pytest
from sqlalchemy import text

from core.db import make_engine
from events import kafka as kafka_clients
from events import outbox
from events.outbox import Relay
from ingest.scim.changes import OrgRef, user_events
from tests.conftest import topic_payloads

pytestmark = pytest.mark.integration


def _topic_ids(settings, topic):
    return [payload["id"] for payload in topic_payloads(settings, topic)]


def test_relay_after_a_crash_between_ack_and_delete_publishes_nothing_twice(settings, engine, scim_org):
    from events.kafka import ensure_topics

    topic = f"{settings.topic_lifecycle}.relay-test"
    own = settings.model_copy(update={"topic_lifecycle": topic})
    ensure_topics(own)
    org = OrgRef(scim_org.id, scim_org.slug)
    events = [e for i in range(20) for e in user_events(org, f"r{i}", None, {"userName": f"r{i}"}, 1)]
    relay_engine = make_engine(own, pool_size=2)
    relay = Relay(own, relay_engine, lambda: kafka_clients.producer(own))
    with relay_engine.begin() as conn:
        outbox.add(conn, events, own.topics())
        rows = conn.execute(
            text("SELECT id, topic, key, payload FROM outbox WHERE payload->>'orgid' = :o ORDER BY id"), {"o": org.id}
        ).all()
        # publish as the relay does, then "crash" before deleting: the rows stay in the outbox
        for r in rows:
            relay.producer.send(r.topic, key=r.key.encode(), value=orjson.dumps(r.payload))
        relay.producer.flush()
    assert sorted(_topic_ids(own, topic)) == sorted(e.id for e in events)
    assert relay.recover() == len(events)  # the new leader finds them on Kafka and drops them
    with engine.connect() as conn:
        left = conn.execute(text("SELECT count(*) FROM outbox WHERE payload->>'orgid' = :o"), {"o": org.id}).scalar()
    assert left == 0
    ids = _topic_ids(own, topic)
    assert len(ids) == len(set(ids)) == len(events)
    relay.producer.close()
    relay_engine.dispose()


class _WedgedProducer:
    """What a kafka-python producer stuck after a broker restart does: it takes records and never
    completes them, so its flush times out (as KafkaProducer.flush raises then)."""

    def __init__(self):
        self.sent = 0

    def send(self, *args, **kwargs):
        self.sent += 1
        return None

    def flush(self, timeout=None):
        from kafka.errors import KafkaTimeoutError

        raise KafkaTimeoutError(f"Failed to flush buffered records within {timeout} secs")

    def close(self, timeout=None):
        self.flush(timeout)


def test_a_wedged_producer_ends_the_relay_and_every_row_stays_in_the_outbox(settings, engine, scim_org):
    from events.outbox import RelayStalled, close

    own = settings.model_copy(update={"relay_kafka_timeout_seconds": 20.0})
    org = OrgRef(scim_org.id, scim_org.slug)
    events = [e for i in range(3) for e in user_events(org, f"w{i}", None, {"userName": f"w{i}"}, 1)]
    wedged = _WedgedProducer()
    relay_engine = make_engine(own, pool_size=2)
    relay = Relay(own, relay_engine, lambda: wedged)
    with relay_engine.begin() as conn:
        outbox.add(conn, events, own.topics())
    try:
        with pytest.raises(RelayStalled):
            while True:  # other tests' rows may come first in id order; ours are reached
                relay.publish_batch()
        assert wedged.sent > 0
        with engine.connect() as conn:
            left = conn.execute(text("SELECT count(*) FROM outbox WHERE payload->>'orgid' = :o"), {"o": org.id}).scalar()
        assert left == len(events)
        with pytest.raises(RelayStalled):
            close(wedged)
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM outbox WHERE payload->>'orgid' = :o"), {"o": org.id})
        relay_engine.dispose()


def test_the_watchdog_ends_a_relay_whose_loop_stopped_progressing(settings):
    import threading
    import time

    own = settings.model_copy(update={"relay_stall_seconds": 1.0})
    relay = Relay(own, engine=None, make_producer=_WedgedProducer)
    exited = threading.Event()
    codes = []
    thread = relay.watch(exit_process=lambda code: (codes.append(code), exited.set()))
    for _ in range(30):  # a loop that keeps progressing is left alone
        relay.progressed_at = time.monotonic()
        assert not exited.wait(0.05)
    assert exited.wait(10.0)  # then it stops
    assert codes == [70]
    thread.join(5.0)
    assert not thread.is_alive()


def test_reading_partition_tails_gives_up_at_its_timeout(settings, engine, scim_org):
    from kafka.errors import KafkaTimeoutError

    from events.kafka import ensure_topics

    topic = f"{settings.topic_lifecycle}.tail-timeout"
    own = settings.model_copy(update={"topic_lifecycle": topic})
    ensure_topics(own)
    producer = kafka_clients.producer(own)
    producer.send(topic, key=b"k", value=b'{"id": "x"}')
    producer.flush()
    producer.close()
    assert list(kafka_clients.read_to_end(own, [topic], timeout=30.0))  # in time: the records
    with pytest.raises(KafkaTimeoutError):
        list(kafka_clients.read_to_end(own, [topic], timeout=0.0))
