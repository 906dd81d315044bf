"""The membership worker applies a batch with the same effect as its events one by one.

Random sequences of user lifecycle, group member and sign-in events (stale versions, duplicate
deliveries, two people sharing an email, sign-ins before their member exists) are applied to
one org event by event (batches of one) and to another org in randomly cut batches (runs of one
family applied set-wise), both on the real PostgreSQL; the members, links, pending sign-ins, activity and the member
events announced must be the same.
"""

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from domain import orgs
from events import catalogue as c
from events.envelope import Event, encode
from workers.membership import Membership, apply_login
from workers.runtime import Tally, apply_records

pytestmark = pytest.mark.integration

# Topic names no relay publishes to: the rows these tests stage are compared, then deleted.
TOPICS = {"lifecycle": "t.lifecycle", "members": "t.members", "billing": "t.billing", "dead_letter": "t.dead-letter"}


@pytest.fixture(autouse=True)
def _no_staged_rows_left(engine):
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM outbox WHERE topic = ANY(:t)"), {"t": list(TOPICS.values())})


USERS = ["u0", "u1", "u2", "u3"]
EMAILS = ["ann@example.test", "bob@example.test", "Ann@Example.test"]
GROUPS = ["g0", "g1"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)

user_ops = st.tuples(
    st.just("user"),
    st.sampled_from([c.USER_CREATED, c.USER_UPDATED, c.USER_DEACTIVATED, c.USER_REACTIVATED, c.USER_DELETED]),
    st.sampled_from(USERS),
    st.integers(1, 6),
    st.sampled_from(EMAILS + [None]),
    st.booleans(),
)
link_ops = st.tuples(
    st.just("link"),
    st.sampled_from([c.GROUP_MEMBER_ADDED, c.GROUP_MEMBER_REMOVED]),
    st.sampled_from(GROUPS),
    st.sampled_from(USERS),
    st.integers(1, 6),
    st.sampled_from(["User", "User", "Group"]),
)
group_ops = st.tuples(
    st.just("group"), st.sampled_from([c.GROUP_CREATED, c.GROUP_DELETED]), st.sampled_from(GROUPS), st.integers(1, 6)
)
# (email, just in time, minutes, through the IdP: else the app's own, with a seat claim)
login_ops = st.tuples(st.just("login"), st.sampled_from(EMAILS), st.booleans(), st.integers(0, 50), st.booleans())
again_ops = st.tuples(st.just("again"), st.integers(0, 100))  # a redelivery of an earlier event

sequences = st.lists(st.one_of(user_ops, user_ops, link_ops, group_ops, login_ops, again_ops), min_size=1, max_size=40)


def _events(org_id: str, slug: str, ops: list[tuple[Any, ...]]) -> list[Event]:
    out: list[Event] = []
    for n, op in enumerate(ops):
        tag = op[0]
        if tag == "again":
            if out:
                out.append(out[op[1] % len(out)])
            continue
        if tag == "user":
            _, kind, user, version, email, active = op
            data = {"user_id": user, "user_name": email or f"{user}-name", "email": email, "display_name": user, "active": active}
            out.append(_event(kind, org_id, slug, f"Users/{user}", user, version, data, n))
        elif tag == "link":
            _, kind, group, user, version, member_type = op
            data = {"group_id": group, "display_name": group, "member_id": user, "member_type": member_type}
            out.append(_event(kind, org_id, slug, f"Groups/{group}/members/{user}", user, version, data, n))
        elif tag == "group":
            _, kind, group, version = op
            out.append(
                _event(kind, org_id, slug, f"Groups/{group}", group, version, {"group_id": group, "display_name": group}, n)
            )
        else:
            _, email, jit, minutes, sso = op
            at = (T0 + timedelta(minutes=minutes)).isoformat()
            if sso:
                data = {"email": email, "method": "oidc", "sso": True, "jit": jit, "idp": "idp", "subject": email,
                        "logged_in_at": at}  # fmt: skip
            else:  # as `POST /internal/v1/logins` stages it: no IdP, no subject, a seat claim
                data = {"email": email, "method": "password", "sso": False, "jit": False, "idp": None, "subject": None,
                        "logged_in_at": at, "sign_in_id": _sign_in_id(n)}  # fmt: skip
            out.append(_event(c.LOGIN_SUCCEEDED, org_id, slug, f"logins/{email.lower()}", email.lower(), 0, data, n))
    return out


def _sign_in_id(n: int) -> str:
    return str(uuid.UUID(int=n + 1))


def _claim_seats(engine, org_id: str, ops: list[tuple[Any, ...]]) -> None:
    """The seat claim ingest made for each of the app's sign-ins (the worker releases those it applies)."""
    ids = [_sign_in_id(n) for n, op in enumerate(ops) if op[0] == "login" and not op[4]]
    if ids:
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO seat_claims (org_id, sign_in_id) SELECT :o, unnest(CAST(:ids AS uuid[]))"),
                {"o": org_id, "ids": ids},
            )


def _event(
    kind: c.EventType, org_id: str, slug: str, subject: str, key: str, version: int, data: dict[str, Any], n: int
) -> Event:
    return Event(
        kind=kind,
        org_id=org_id,
        org_slug=slug,
        subject=subject,
        key=f"{org_id}:{key}",
        resource_version=version,
        data=data,
        id=str(uuid.uuid4()),
        correlation_id=f"op-{n}",
    )


def _records(events: list[Event]) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(topic="t.lifecycle", partition=0, offset=i, key=e.key.encode(), value=encode(e))
        for i, e in enumerate(events)
    ]


def _state(engine, org_id: str, events: list[Event]) -> dict[str, Any]:
    """What the worker left for the org, with generated ids replaced by natural keys."""
    position = {e.id: i for i, e in reversed(list(enumerate(events)))}
    with engine.connect() as conn:
        rows = (
            conn.execute(
                text(
                    "SELECT id::text AS id, source, scim_user_id, email_ci, created_at, user_name, email, display_name,"
                    " status, seq, version, first_login_at FROM members WHERE org_id = :o"
                ),
                {"o": org_id},
            )
            .mappings()
            .all()
        )
        natural = {r["id"]: (r["source"], r["scim_user_id"] or r["email_ci"], r["created_at"]) for r in rows}
        names = {
            k: (v[0], v[1], rank)
            for rank, (k, v) in enumerate(sorted(natural.items(), key=lambda kv: (kv[1][0], kv[1][1] or "", kv[1][2])))
        }
        members = sorted(
            (
                names[r["id"]],
                r["user_name"],
                r["email"],
                r["email_ci"],
                r["display_name"],
                r["status"],
                r["seq"],
                r["version"],
                r["first_login_at"],
            )
            for r in rows
        )
        links = sorted(
            tuple(r)
            for r in conn.execute(
                text("SELECT group_id, scim_user_id, present, seq FROM member_group_links WHERE org_id = :o"), {"o": org_id}
            )
        )
        pending = sorted(
            tuple(r)
            for r in conn.execute(
                text("SELECT email_ci, logged_in_at, method, sign_in_id::text FROM pending_logins WHERE org_id = :o"),
                {"o": org_id},
            )
        )
        activity = sorted(
            (names[r.member_id], position[r.event_id], r.type, r.source, str(sorted(r.summary.items())))
            for r in conn.execute(
                text("SELECT member_id::text, event_id::text, type, source, summary FROM member_activity WHERE org_id = :o"),
                {"o": org_id},
            )
        )
        announced = sorted(
            (
                position[p["data"]["cause_event_id"]],
                p["type"],
                names[p["data"]["member_id"]],
                int(p["resourceversion"]),
                p["data"]["status"],
                p["data"]["email"],
                p["data"]["first_login_at"],
            )
            for p in conn.execute(
                text("SELECT payload FROM outbox WHERE payload->>'orgid' = :o AND topic = 't.members'"), {"o": org_id}
            ).scalars()
        )
        claims = sorted(
            conn.execute(text("SELECT sign_in_id::text FROM seat_claims WHERE org_id = :o"), {"o": org_id}).scalars()
        )
    return {"members": members, "links": links, "pending": pending, "activity": activity, "announced": announced,
            "claims": claims}  # fmt: skip


class _OneByOne:
    """The membership handler fed one event at a time: no run is ever longer than one event."""

    def __init__(self, handler: Membership):
        self.handler = handler

    def apply(self, events: list[Event], uow: Any) -> list[str]:
        # a sign-in by the rule for one sign-in (`apply_login`), never by a run of the app's sign-ins
        return [
            outcome
            for event in events
            for outcome in ([apply_login(uow, event)] if event.kind is c.LOGIN_SUCCEEDED else self.handler.apply([event], uow))
        ]


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=sequences, cuts=st.lists(st.integers(1, 12), min_size=1, max_size=10))
@example(  # a link added and removed at the same version, in one batch: the later one wins
    ops=[("link", c.GROUP_MEMBER_ADDED, "g0", "u0", 3, "User"), ("link", c.GROUP_MEMBER_REMOVED, "g0", "u0", 3, "User")],
    cuts=[5],
)
@example(  # a deleted user's links go, then a sign-in before the person's member exists counts later
    ops=[
        ("link", c.GROUP_MEMBER_ADDED, "g0", "u1", 1, "User"),
        ("user", c.USER_CREATED, "u1", 1, EMAILS[1], True),
        ("user", c.USER_DELETED, "u1", 2, EMAILS[1], True),
        ("login", EMAILS[0], False, 3, True),
        ("user", c.USER_CREATED, "u2", 1, EMAILS[2], True),
        ("user", c.USER_DEACTIVATED, "u2", 2, EMAILS[2], False),
    ],
    cuts=[6],
)
@example(  # the app's sign-ins: before the member exists (twice, the later first), then twice after
    ops=[
        ("login", EMAILS[1], False, 9, False),
        ("login", EMAILS[1], False, 4, False),
        ("user", c.USER_CREATED, "u1", 1, EMAILS[1], True),
        ("login", EMAILS[1], False, 12, False),
        ("login", EMAILS[1], False, 11, False),
        ("user", c.USER_DEACTIVATED, "u1", 2, EMAILS[1], False),
        ("login", EMAILS[1], False, 13, False),
    ],
    cuts=[2, 1, 2],
)
def test_set_wise_equals_one_by_one(engine, ops, cuts):
    handler = Membership()
    one_org, _ = orgs.create(engine, "mb-one-" + uuid.uuid4().hex[:8])
    set_org, _ = orgs.create(engine, "mb-set-" + uuid.uuid4().hex[:8])
    one_events = _events(one_org.id, one_org.slug, ops)
    set_events = _events(set_org.id, set_org.slug, ops)
    _claim_seats(engine, one_org.id, ops)
    _claim_seats(engine, set_org.id, ops)
    # the same ids in both runs would collide in the outbox: the orgs' events differ only in org
    apply_records(engine, TOPICS, f"mb-one-{one_org.id}", _OneByOne(handler), _records(one_events), Tally())
    records, start, i = _records(set_events), 0, 0
    while start < len(records):
        size = cuts[i % len(cuts)]
        apply_records(engine, TOPICS, f"mb-set-{set_org.id}", handler, records[start : start + size], Tally())
        start, i = start + size, i + 1
    try:
        assert _state(engine, set_org.id, set_events) == _state(engine, one_org.id, one_events)
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM outbox WHERE topic = ANY(:t)"), {"t": list(TOPICS.values())})


def test_set_wise_path_writes_a_batch_in_few_statements(engine):
    """The point of the set-wise path: 200 new users cost a handful of statements, not ~9 each."""
    handler = Membership()
    org, _ = orgs.create(engine, "mb-few-" + uuid.uuid4().hex[:8])
    events = _events(org.id, org.slug, [("user", c.USER_CREATED, f"n{i}", 1, f"n{i}@example.test", True) for i in range(200)])
    statements: list[str] = []

    from sqlalchemy import event as sa_event

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        apply_records(engine, TOPICS, f"mb-few-{org.id}", handler, _records(events), Tally())
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    with engine.connect() as conn:
        members = conn.execute(
            text("SELECT count(*) FROM members WHERE org_id = :o AND status = 'provisioned'"), {"o": org.id}
        ).scalar()
        announced = conn.execute(
            text("SELECT count(*) FROM outbox WHERE payload->>'orgid' = :o AND topic = 't.members'"), {"o": org.id}
        ).scalar()
    assert members == 200 and announced == 200
    assert len(statements) < 15, statements


def test_the_apps_sign_ins_are_applied_in_few_statements(engine):
    """200 first logins through the app's own login API: a handful of statements, not ~6 each."""
    handler = Membership()
    org, _ = orgs.create(engine, "mb-logins-" + uuid.uuid4().hex[:8])
    people = [("user", c.USER_CREATED, f"n{i}", 1, f"n{i}@example.test", True) for i in range(200)]
    apply_records(engine, TOPICS, f"mb-logins-{org.id}", handler, _records(_events(org.id, org.slug, people)), Tally())
    logins = [("login", f"n{i}@example.test", False, i % 50, False) for i in range(200)]
    events = _events(org.id, org.slug, logins)
    statements: list[str] = []

    from sqlalchemy import event as sa_event

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        tally = Tally()
        apply_records(engine, TOPICS, f"mb-logins-{org.id}", handler, _records(events), tally)
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    with engine.connect() as conn:
        active = conn.execute(
            text("SELECT count(*) FROM members WHERE org_id = :o AND status = 'active' AND first_login_at IS NOT NULL"),
            {"o": org.id},
        ).scalar()
        firsts = conn.execute(
            text("SELECT count(*) FROM outbox WHERE payload->>'orgid' = :o AND payload->>'type' = :t"),
            {"o": org.id, "t": c.MEMBER_LOGGED_IN_FIRST_TIME.type},
        ).scalar()
    assert active == 200 and firsts == 200
    assert len(statements) < 15, statements

