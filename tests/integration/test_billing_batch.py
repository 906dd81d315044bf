"""The billing worker bills a batch as it bills its events one by one.

Random sequences of first logins (redelivered, or a second first login of one member), seat
releases and restores are applied to one org event by event and to another in randomly cut
batches (runs of first logins billed set-wise), on the real PostgreSQL, with and without an
overage-billing seat limit; the seat ledger and the billing events staged must be the same.
"""

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from domain import orgs
from events import catalogue as c
from events.envelope import Event, encode
from workers.billing import Billing
from workers.runtime import Tally, apply_records

pytestmark = pytest.mark.integration

TOPICS = {"lifecycle": "tb.lifecycle", "members": "tb.members", "billing": "tb.billing", "dead_letter": "tb.dead-letter"}
MEMBERS = [str(uuid.UUID(int=i + 1)) for i in range(4)]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
KINDS = [c.MEMBER_LOGGED_IN_FIRST_TIME, c.MEMBER_LOGGED_IN_FIRST_TIME, c.MEMBER_DEACTIVATED, c.MEMBER_RETURNED]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("event"), st.sampled_from(KINDS), st.integers(0, 3), st.integers(0, 30)),
        st.tuples(st.just("again"), st.integers(0, 100)),  # a redelivery of an earlier event
    ),
    min_size=1,
    max_size=30,
)


@pytest.fixture(autouse=True)
def _no_staged_rows_left(engine):
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM outbox WHERE topic = ANY(:t)"), {"t": list(TOPICS.values())})


def _events(org_id: str, slug: str, sequence: list[tuple[Any, ...]]) -> list[Event]:
    out: list[Event] = []
    for n, op in enumerate(sequence):
        if op[0] == "again":
            if out:
                out.append(out[op[1] % len(out)])
            continue
        _, kind, who, minutes = op
        at = (T0 + timedelta(minutes=minutes)).isoformat()
        data = {"member_id": MEMBERS[who], "email": f"m{who}@example.test", "source": "scim", "status": "active",
                "first_login_at": at, "cause_event_id": str(uuid.uuid4())}  # fmt: skip
        out.append(Event(kind=kind, org_id=org_id, org_slug=slug, subject=f"members/{MEMBERS[who]}",
                         key=f"{org_id}:{MEMBERS[who]}", resource_version=n + 1, data=data, id=str(uuid.uuid4()),
                         correlation_id=f"op-{n}"))  # fmt: skip
    return out


def _records(events: list[Event]) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(topic="tb.members", partition=0, offset=i, key=e.key.encode(), value=encode(e))
        for i, e in enumerate(events)
    ]


def _state(engine, org_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        seats = sorted(
            tuple(r)
            for r in conn.execute(
                text("SELECT member_id::text, state, version, first_login_at FROM seats WHERE org_id = :o"), {"o": org_id}
            )
        )
        staged = sorted(
            (p["type"], p["data"]["member_id"], int(p["resourceversion"]), p["data"].get("first_login_at"),
             p["data"].get("reason"), p["data"].get("seats_held"))
            for p in conn.execute(
                text("SELECT payload FROM outbox WHERE payload->>'orgid' = :o AND topic = 'tb.billing'"), {"o": org_id}
            ).scalars()
        )  # fmt: skip
    return {"seats": seats, "staged": staged}


class _OneByOne:
    """Each event billed alone, by the per-event rules (`Billing._one`), never by a run."""

    def __init__(self, handler: Billing):
        self.handler = handler

    def apply(self, events: list[Event], uow: Any) -> list[str]:
        return [self.handler._one(event, uow) for event in events]


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=ops, cuts=st.lists(st.integers(1, 10), min_size=1, max_size=8), overage=st.booleans())
def test_set_wise_billing_equals_one_by_one(engine, sequence, cuts, overage):
    handler = Billing()
    one_org, _ = orgs.create(engine, "bb-one-" + uuid.uuid4().hex[:8])
    set_org, _ = orgs.create(engine, "bb-set-" + uuid.uuid4().hex[:8])
    if overage:  # a limit of one seat, billed past it: every first login but one stages an overage too
        with engine.begin() as conn:
            conn.execute(text("UPDATE orgs SET seat_limit = 1, seat_policy = 'allow' WHERE id = ANY(CAST(:ids AS uuid[]))"),
                         {"ids": [one_org.id, set_org.id]})  # fmt: skip
    one_events, set_events = _events(one_org.id, one_org.slug, sequence), _events(set_org.id, set_org.slug, sequence)
    one_tally, set_tally = Tally(), Tally()
    apply_records(engine, TOPICS, f"bb-one-{one_org.id}", _OneByOne(handler), _records(one_events), one_tally)
    records, start, i = _records(set_events), 0, 0
    while start < len(records):
        size = cuts[i % len(cuts)]
        apply_records(engine, TOPICS, f"bb-set-{set_org.id}", handler, records[start : start + size], set_tally)
        start, i = start + size, i + 1
    assert _state(engine, set_org.id) == _state(engine, one_org.id)
    assert set_tally.counts == one_tally.counts


def test_a_run_of_first_logins_is_billed_in_few_statements(engine):
    handler = Billing()
    org, _ = orgs.create(engine, "bb-few-" + uuid.uuid4().hex[:8])
    members = [str(uuid.uuid4()) for _ in range(200)]
    events = [
        Event(kind=c.MEMBER_LOGGED_IN_FIRST_TIME, org_id=org.id, org_slug=org.slug, subject=f"members/{m}", key=f"{org.id}:{m}",
              resource_version=1, id=str(uuid.uuid4()),
              data={"member_id": m, "email": f"{i}@example.test", "source": "app", "status": "active",
                    "first_login_at": T0.isoformat(), "cause_event_id": str(uuid.uuid4())})
        for i, m in enumerate(members)
    ]  # fmt: skip
    statements: list[str] = []

    from sqlalchemy import event as sa_event

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        apply_records(engine, TOPICS, f"bb-few-{org.id}", handler, _records(events + events[:50]), Tally())
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    with engine.connect() as conn:
        held = conn.execute(text("SELECT count(*) FROM seats WHERE org_id = :o AND state = 'held'"), {"o": org.id}).scalar()
        billed = conn.execute(
            text("SELECT count(*) FROM outbox WHERE payload->>'orgid' = :o AND topic = 'tb.billing'"), {"o": org.id}
        ).scalar()
    assert held == 200 and billed == 200
    assert len(statements) < 12, statements
