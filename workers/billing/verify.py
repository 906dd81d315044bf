"""`provisioner billing verify`: an independent check that first-login billing is exactly once.

It reads the whole `billing` topic as a consumer with `read_committed` (no group, nothing
committed) and the facts in PostgreSQL, and reports first-login facts without an event,
first-login events without a fact, and any event id seen more than once. Facts whose event is
still in the outbox (not yet relayed) are reported as pending, not missing.
"""

import time
from collections import Counter
from dataclasses import dataclass, field

import orjson
from sqlalchemy import Engine, text

from core.settings import Settings
from events import catalogue as c
from events import kafka


@dataclass
class Report:
    facts: int = 0
    events: int = 0
    first_login_events: int = 0
    pending: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=dict)
    undecodable: int = 0

    @property
    def clean(self) -> bool:
        return not (self.missing or self.unexpected or self.duplicates or self.undecodable)

    def as_dict(self) -> dict[str, object]:
        return {
            "clean": self.clean,
            "facts": self.facts,
            "events": self.events,
            "first_login_events": self.first_login_events,
            "pending": len(self.pending),
            "missing": self.missing,
            "unexpected": self.unexpected,
            "duplicates": self.duplicates,
            "undecodable": self.undecodable,
        }


def read_topic(settings: Settings) -> list[bytes]:
    """Every committed record of the billing topic, from the beginning to the current end."""
    return list(kafka.read_to_end(settings, [settings.topic_billing]))


def verify(settings: Settings, engine: Engine, org_ids: list[str] | None = None) -> Report:
    """Compare facts and the topic; `org_ids` narrows both to some orgs."""
    report = Report()
    scope = "" if org_ids is None else " AND org_id = ANY(CAST(:orgs AS uuid[]))"
    with engine.connect() as conn:
        facts = {
            str(r[0])
            for r in conn.execute(text("SELECT first_login_event_id FROM billing_accounts WHERE true" + scope), {"orgs": org_ids})
        }
        pending = {
            str(r[0])
            for r in conn.execute(
                text("SELECT event_id FROM outbox WHERE topic = :t" + scope.replace("org_id", "CAST(payload->>'orgid' AS uuid)")),
                {"t": settings.topic_billing, "orgs": org_ids},
            )
        }
    ids: Counter[str] = Counter()
    first_logins: set[str] = set()
    for raw in read_topic(settings):
        try:
            ce = orjson.loads(raw)
            event_id, kind = str(ce["id"]), ce["type"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            report.undecodable += 1
            continue
        if org_ids is not None and ce.get("orgid") not in org_ids:
            continue
        ids[event_id] += 1
        if kind == c.BILLING_FIRST_LOGIN.type:
            first_logins.add(event_id)
    report.facts = len(facts)
    report.events = sum(ids.values())
    report.first_login_events = len(first_logins)
    report.pending = sorted(facts & pending - first_logins)
    report.missing = sorted(facts - first_logins - pending)
    report.unexpected = sorted(first_logins - facts)
    report.duplicates = {i: n for i, n in ids.items() if n > 1}
    return report


def verify_until_settled(settings: Settings, engine: Engine, wait_seconds: float, org_ids: list[str] | None = None) -> Report:
    """Verify, re-checking while events are still pending in the outbox (up to wait_seconds)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        report = verify(settings, engine, org_ids)
        if not report.pending or time.monotonic() >= deadline:
            return report
        time.sleep(1.0)
