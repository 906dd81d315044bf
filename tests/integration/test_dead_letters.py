"""Dead letters on the real PostgreSQL: listed, redriven after a fix, kept when they fail again."""

import json
import subprocess
import sys

import pytest
from sqlalchemy import text

import workers.membership as users
from core.settings import to_env
from events.envelope import encode
from ingest.scim.changes import OrgRef, user_events
from workers.dead_letters import page_dead_letters, redrive
from workers.runtime import Tally, apply_records

pytestmark = pytest.mark.integration


def _letters(engine, consumer):
    """Every page of the consumer's dead letters, joined (other tests leave theirs too)."""
    rows, after = [], None
    with engine.connect() as conn:
        while True:
            page = page_dead_letters(conn, consumer, limit=50, after=after)
            rows += page.rows
            if page.next is None:
                return rows
            after = page.next


def test_a_dead_letter_is_redriven_once_the_handler_is_fixed(engine, settings, scim_org, monkeypatch):
    org = OrgRef(scim_org.id, scim_org.slug)
    (event,) = user_events(org, "dlq-user", None, {"userName": "dlq@example.test"}, 1)
    from types import SimpleNamespace

    record = SimpleNamespace(topic=settings.topic_lifecycle, partition=3, offset=41, key=event.key.encode(), value=encode(event))

    class Broken:
        def apply(self, events, uow):
            raise RuntimeError("handler bug")

    apply_records(engine, settings.topics(), "membership", Broken(), [record], Tally())
    mine = [d for d in _letters(engine, "membership") if d["offset"] == 41 and d["key"] == event.key]
    assert len(mine) == 1 and "handler bug" in mine[0]["error"]

    # still broken: it stays, with one row and the latest error
    # (a new SCIM user's member.created is announced through users.member_event)
    monkeypatch.setattr(users, "member_event", lambda *a, **k: (_ for _ in ()).throw(ValueError("still broken")))
    report = redrive(engine, settings, "membership", [mine[0]["id"]])
    assert report["failed"] == [mine[0]["id"]]
    again = [d for d in _letters(engine, "membership") if d["offset"] == 41 and d["key"] == event.key]
    assert len(again) == 1 and "still broken" in again[0]["error"]

    # fixed: the real handler applies it, and it is marked
    monkeypatch.undo()
    report = redrive(engine, settings, "membership", [mine[0]["id"]])
    assert report["redriven"] == [mine[0]["id"]]
    with engine.connect() as conn:
        status = conn.execute(
            text("SELECT status FROM members WHERE org_id = :o AND scim_user_id = 'dlq-user'"), {"o": scim_org.id}
        ).scalar()
    assert status == "provisioned"
    assert not [d for d in _letters(engine, "membership") if d["id"] == mine[0]["id"]]


def test_dlq_cli(engine, settings):
    env = to_env(settings)

    def dlq(*args):
        return subprocess.run([sys.executable, "-m", "cli", "dlq", *args], env=env, capture_output=True, text=True)

    everything = [json.loads(line) for line in dlq("list", "--all", "--include-redriven").stdout.splitlines()]
    assert everything == _letters_with_redriven(engine)
    page = dlq("list", "--json", "--include-redriven", "--limit", "1")
    assert page.returncode == 0 and json.loads(page.stdout) == everything[:1]
    assert ("more: --cursor " in page.stderr) == (len(everything) > 1)
    bad_cursor = dlq("list", "--cursor", "not-a-cursor")
    assert bad_cursor.returncode == 2 and "--cursor" in bad_cursor.stderr
    bad = dlq("redrive", "nosuch")
    assert bad.returncode == 2 and "unknown consumer" in bad.stderr


def _letters_with_redriven(engine):
    with engine.connect() as conn:
        page = page_dead_letters(conn, None, True, limit=1000)
    assert page.next is None, "more than a page of dead letters in the test database"
    return page.rows
