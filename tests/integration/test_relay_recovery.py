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
