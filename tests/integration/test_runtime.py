"""The worker runtime on the real PostgreSQL: one failing handler dead-letters one record only."""

from types import SimpleNamespace

import pytest
from sqlalchemy import text

from events.envelope import encode
from ingest.scim.changes import OrgRef, user_events
from workers.runtime import Tally, apply_records

pytestmark = pytest.mark.integration


def test_a_failing_handler_dead_letters_only_its_record(engine, settings, scim_org):
    org = OrgRef(scim_org.id, scim_org.slug)
    events = [user_events(org, f"rt{i}", None, {"userName": f"rt{i}"}, 1)[0] for i in range(5)]
    records = [
        SimpleNamespace(topic="t", partition=0, offset=i, key=e.key.encode(), value=encode(e)) for i, e in enumerate(events)
    ]
    seen = []

    class Handler:
        def apply(self, batch, uow):
            for event in batch:
                uow.conn.execute(text("SELECT 1"))
                if event.id == events[2].id:
                    raise ValueError("boom")
                seen.append(event.id)
            return ["applied"] * len(batch)

    handler = Handler()

    tally = Tally()
    consumer = f"runtime-test-{scim_org.slug}"
    apply_records(engine, settings.topics(), consumer, handler, records, tally)
    assert tally.counts == {"applied": 4, "dead_lettered": 1}
    with engine.connect() as conn:
        claimed = set(
            conn.execute(text("SELECT event_id::text FROM processed_events WHERE consumer = :c"), {"c": consumer}).scalars()
        )
        dead = conn.execute(text('SELECT "offset", error FROM dead_letters WHERE consumer = :c'), {"c": consumer}).all()
    assert claimed == {e.id for i, e in enumerate(events) if i != 2}
    assert [(d[0], d[1]) for d in dead] == [(2, "ValueError: boom")]
    # redelivery of the whole batch changes nothing
    again = Tally()
    apply_records(engine, settings.topics(), consumer, handler, records, again)
    assert again.counts == {"duplicate": 4, "dead_lettered": 1}
