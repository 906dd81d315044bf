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
from workers.dead_letters import list_dead_letters, redrive
from workers.runtime import Tally, apply_records

pytestmark = pytest.mark.integration


def test_a_dead_letter_is_redriven_once_the_handler_is_fixed(engine, settings, scim_org, monkeypatch):
    org = OrgRef(scim_org.id, scim_org.slug)
    (event,) = user_events(org, "dlq-user", None, {"userName": "dlq@example.test"}, 1)
    from types import SimpleNamespace

    record = SimpleNamespace(topic=settings.topic_lifecycle, partition=3, offset=41, key=event.key.encode(), value=encode(event))

    class Broken:
        def apply(self, events, uow):
            raise RuntimeError("handler bug")

    apply_records(engine, settings.topics(), "membership", Broken(), [record], Tally())
    mine = [d for d in list_dead_letters(engine, "membership") if d["offset"] == 41 and d["key"] == event.key]
    assert len(mine) == 1 and "handler bug" in mine[0]["error"]

    # still broken: it stays, with one row and the latest error
    # (a new SCIM user's member.created is announced through users.member_event)
    monkeypatch.setattr(users, "member_event", lambda *a, **k: (_ for _ in ()).throw(ValueError("still broken")))
    report = redrive(engine, settings, "membership", [mine[0]["id"]])
    assert report["failed"] == [mine[0]["id"]]
    again = [d for d in list_dead_letters(engine, "membership") if d["offset"] == 41 and d["key"] == event.key]
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
    assert not [d for d in list_dead_letters(engine, "membership") if d["id"] == mine[0]["id"]]


def test_dlq_cli(engine, settings):
    env = to_env(settings)
    out = subprocess.run(
        [sys.executable, "-m", "cli", "dlq", "list", "--json", "--all"], env=env, capture_output=True, text=True, check=True
    )
    assert isinstance(json.loads(out.stdout), list)
    bad = subprocess.run([sys.executable, "-m", "cli", "dlq", "redrive", "nosuch"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown consumer" in bad.stderr
