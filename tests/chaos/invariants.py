"""Invariants after a fault run: the IdP's acknowledged writes against PostgreSQL and Kafka.

1. SCIM state: every acknowledged write is in PostgreSQL (ARCHITECTURE §3.1): each user exists
   or not, is active or not, has the display name and the group memberships the IdP was last
   told it has.
2. Memberships: the membership worker applied it: each SCIM user's member status follows the
   SCIM resource (provisioned or active / deactivated / removed) and its group links equal the
   SCIM group members.
3. Outbox to Kafka: every event ever staged in the outbox (recorded by an audit trigger the
   harness installs, in the writing transaction) is on its topic, and the outbox is empty (§3.2).
4. Tracking rows: each worker has exactly one tracking row per event on the topics it consumes
   (none missing, none for an event that is not on Kafka); no dead letters. The primary key
   (consumer, event_id) makes a second application of one event impossible to commit; effects
   counted twice would show in 2 and 5.
5. Billing: `billing verify` is clean and the first-login facts are exactly the people with an
   acknowledged login, one each (§3.4).
"""

from collections import Counter
from dataclasses import dataclass, field

import orjson
from sqlalchemy import Engine, text

from core.settings import Settings
from events.kafka import read_to_end
from tests.chaos.idp import OrgLedger
from workers.billing.verify import verify
from workers.main import WORKERS

AUDIT_DDL = """
CREATE TABLE IF NOT EXISTS chaos_outbox_audit (event_id uuid PRIMARY KEY, topic text NOT NULL, type text,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE INDEX IF NOT EXISTS chaos_outbox_audit_created ON chaos_outbox_audit (created_at);
CREATE OR REPLACE FUNCTION chaos_outbox_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chaos_outbox_audit (event_id, topic, type) VALUES (NEW.event_id, NEW.topic, NEW.payload->>'type')
    ON CONFLICT DO NOTHING;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS chaos_outbox_audit ON outbox;
CREATE TRIGGER chaos_outbox_audit AFTER INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION chaos_outbox_audit();
"""


@dataclass
class Check:
    name: str
    ok: bool
    figures: dict[str, object] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def install_audit(engine: Engine) -> None:
    """Record every outbox row's event id as it is committed (test databases only)."""
    with engine.begin() as conn:
        conn.exec_driver_sql(AUDIT_DDL)


def read_topic_ids(settings: Settings, topic: str) -> Counter[str]:
    """Event ids on a topic, from the beginning to the current end (read_committed, no group)."""
    ids: Counter[str] = Counter()
    for value in read_to_end(settings, [topic]):
        try:
            ids[str(orjson.loads(value)["id"])] += 1
        except (orjson.JSONDecodeError, KeyError, TypeError):
            ids["<undecodable>"] += 1
    return ids


def _sample(items: object, n: int = 5) -> list[str]:
    return [str(i) for i in sorted(items)[:n]]  # type: ignore[call-overload]


def check_scim_state(engine: Engine, orgs: list[OrgLedger]) -> Check:
    check = Check("acknowledged SCIM writes are in PostgreSQL", True)
    users = memberships = 0
    with engine.connect() as conn:
        for org in orgs:
            rows = {r.id: r for r in conn.execute(
                text("SELECT id, data FROM scim_resources WHERE org_id = :o AND resource_type = 'User'"), {"o": org.id})}
            links = {(r.group_id, r.member_id) for r in conn.execute(
                text("SELECT group_id, member_id FROM scim_group_members WHERE org_id = :o"), {"o": org.id})}
            expected_links = set()
            for user in org.users.values():
                users += 1
                row = rows.get(user.id)
                if user.deleted:
                    if row is not None:
                        check.problems.append(f"{user.user_name}: deleted (acknowledged) but still stored")
                    continue
                if row is None:
                    check.problems.append(f"{user.user_name}: acknowledged but not stored")
                    continue
                data = row.data
                if (data.get("active") is not False) != user.active:
                    check.problems.append(f"{user.user_name}: active={data.get('active')}, IdP set {user.active}")
                if data.get("displayName") != user.display_name:
                    check.problems.append(
                        f"{user.user_name}: displayName {data.get('displayName')!r}, IdP set {user.display_name!r}"
                    )
                expected_links |= {(g, user.id) for g in user.groups}
            memberships += len(expected_links)
            for g, u in sorted(links ^ expected_links)[:10]:
                check.problems.append(f"group {g} member {u}: stored={((g, u) in links)}, IdP={((g, u) in expected_links)}")
            if links != expected_links:
                check.problems.append(f"{org.slug}: {len(links ^ expected_links)} group memberships differ")
    check.figures = {"users checked": users, "group memberships checked": memberships}
    check.ok = not check.problems
    return check


def _expected_status(data: dict[str, object] | None, logged_in: bool) -> set[str]:
    if data is None:
        return {"removed"}
    if data.get("active") is False:
        return {"deactivated"}
    return {"active"} if logged_in else {"provisioned"}


def check_memberships(engine: Engine, orgs: list[OrgLedger]) -> Check:
    check = Check("memberships equal the SCIM resources", True)
    members_checked = 0
    with engine.connect() as conn:
        for org in orgs:
            resources = {r.id: r.data for r in conn.execute(
                text("SELECT id, data FROM scim_resources WHERE org_id = :o AND resource_type = 'User'"), {"o": org.id})}
            members = {r.scim_user_id: r for r in conn.execute(
                text("SELECT scim_user_id, status, display_name FROM members WHERE org_id = :o AND scim_user_id IS NOT NULL"),
                {"o": org.id})}
            for user in org.users.values():
                members_checked += 1
                member = members.get(user.id)
                data = resources.get(user.id)
                if member is None:
                    check.problems.append(f"{user.user_name}: no member row")
                    continue
                wanted = _expected_status(data, org.logins[user.user_name] > 0)
                if member.status not in wanted:
                    check.problems.append(f"{user.user_name}: member {member.status}, SCIM says {'/'.join(sorted(wanted))}")
                if data is not None and member.display_name != data.get("displayName"):
                    check.problems.append(
                        f"{user.user_name}: member name {member.display_name!r}, SCIM {data.get('displayName')!r}"
                    )
            scim_links = {(r.group_id, r.member_id) for r in conn.execute(
                text("SELECT group_id, member_id FROM scim_group_members WHERE org_id = :o"), {"o": org.id})}
            applied = {(r.group_id, r.scim_user_id) for r in conn.execute(
                text("SELECT group_id, scim_user_id FROM member_group_links WHERE org_id = :o AND present"), {"o": org.id})}
            if scim_links != applied:
                check.problems.append(
                    f"{org.slug}: group links differ from SCIM: "
                    f"missing {_sample(scim_links - applied)}, extra {_sample(applied - scim_links)}")
    check.figures = {"members checked": members_checked}
    check.ok = not check.problems
    return check


def check_outbox_to_kafka(settings: Settings, engine: Engine, on_topics: dict[str, Counter[str]]) -> Check:
    check = Check("every outbox event is on its topic", True)
    with engine.connect() as conn:
        audited = conn.execute(text("SELECT topic, event_id::text AS id FROM chaos_outbox_audit")).all()
        left = conn.execute(text("SELECT count(*) FROM outbox")).scalar()
    by_topic: dict[str, set[str]] = {}
    for row in audited:
        by_topic.setdefault(row.topic, set()).add(row.id)
    duplicates = 0
    for topic, ids in by_topic.items():
        seen = on_topics.get(topic, Counter())
        missing = ids - set(seen)
        if missing:
            check.problems.append(f"{topic}: {len(missing)} of {len(ids)} events never reached Kafka, e.g. {_sample(missing)}")
        duplicates += sum(n - 1 for n in seen.values() if n > 1)
    if left:
        check.problems.append(f"{left} rows still in the outbox")
    check.figures = {"events staged": len(audited),
                     **{f"on {t}": sum(on_topics.get(t, Counter()).values()) for t in sorted(by_topic)},
                     "copies beyond the first (at-least-once duplicates)": duplicates}
    check.ok = not check.problems
    return check


def check_tracking(settings: Settings, engine: Engine, on_topics: dict[str, Counter[str]]) -> Check:
    check = Check("one tracking row per consumed event; no dead letters", True)
    topics = settings.topics()
    with engine.connect() as conn:
        tracked: dict[str, set[str]] = {}
        for r in conn.execute(text("SELECT consumer, event_id::text AS id FROM processed_events")):
            tracked.setdefault(r.consumer, set()).add(r.id)
        types = dict(conn.execute(text("SELECT event_id::text, type FROM chaos_outbox_audit")).all())
        dead = conn.execute(text("SELECT consumer, left(error, 160) AS error FROM dead_letters")).all()
    for consumer_name, factory, roles, _port in WORKERS.values():
        expected = set().union(*(set(on_topics.get(topics[role], Counter())) for role in roles))
        # the types the handler declares it acts on are tracked; the runtime answers the others itself
        wanted = getattr(factory(settings), "TYPES", None)
        if wanted is not None:
            expected = {i for i in expected if types.get(i) in wanted}
        mine = tracked.get(consumer_name, set())
        missing, unknown = expected - mine, mine - expected
        check.figures[f"{consumer_name}: events / tracking rows"] = f"{len(expected)} / {len(mine)}"
        if missing:
            check.problems.append(f"{consumer_name}: {len(missing)} events without a tracking row, e.g. {_sample(missing)}")
        if unknown:
            check.problems.append(
                f"{consumer_name}: {len(unknown)} tracking rows for events not on Kafka, e.g. {_sample(unknown)}"
            )
    check.figures["dead letters"] = len(dead)
    for d in dead[:5]:
        check.problems.append(f"dead letter of {d.consumer}: {d.error}")
    check.ok = not check.problems
    return check


def check_billing(settings: Settings, engine: Engine, orgs: list[OrgLedger]) -> Check:
    report = verify(settings, engine, [o.id for o in orgs])
    check = Check("billing verify clean; one first login per person who logged in", report.clean and not report.pending)
    check.figures = {"first-login facts": report.facts, "first-login events": report.first_login_events,
                     "billing events": report.events, "pending": len(report.pending),
                     "people with an acknowledged login": sum(len(o.logins) for o in orgs),
                     "acknowledged logins": sum(sum(o.logins.values()) for o in orgs)}
    if not check.ok:
        check.problems.append(f"billing verify: {report.as_dict()}")
    with engine.connect() as conn:
        for org in orgs:
            billed = {
                r[0]
                for r in conn.execute(
                    text("SELECT m.email_ci FROM seats s JOIN members m ON m.id = s.member_id WHERE s.org_id = :o"), {"o": org.id}
                )
            }
            logged = {e.lower() for e in org.logins}
            if billed != logged:
                check.ok = False
                check.problems.append(
                    f"{org.slug}: billed {len(billed)}, logged in {len(logged)}; "
                    f"unbilled {_sample(logged - billed)}, billed without login {_sample(billed - logged)}")
    return check


def check_all(settings: Settings, engine: Engine, orgs: list[OrgLedger]) -> list[Check]:
    on_topics = {t: read_topic_ids(settings, t) for t in settings.topics().values()}
    return [
        check_scim_state(engine, orgs),
        check_memberships(engine, orgs),
        check_outbox_to_kafka(settings, engine, on_topics),
        check_tracking(settings, engine, on_topics),
        check_billing(settings, engine, orgs),
    ]
