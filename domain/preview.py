"""SCIM preview: an org's IdP pushes as usual and gets the same answers, its resources are stored,
but no member is created, nothing is billed and no event of the org is published, until an admin
goes live.

While the org is in `preview_orgs`, a trigger on `outbox` (migration 0016) keeps every outbox row
of the org in `held_events` instead, whatever staged it. `report` says what going live would do,
from the stored SCIM users and the held events: the members it would create, the email conflicts
it would flag, the seats that would be billed at first login under the org's seat limit. `go_live`
moves the held rows into the outbox in the order they were staged, in one transaction, so the
relay publishes them in order and the workers apply them as if they had come one by one.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from domain.admin import AdminError
from domain.orgs import Org


class PreviewError(AdminError):
    """Going live from no preview, or starting one twice: 409."""

    def __init__(self, message: str):
        super().__init__(409, message)


def _lock(conn: Connection, org_id: str) -> None:
    """Exclusive against the trigger's shared lock: every outbox row of the org staged before this
    is held (its transaction committed first), every one after sees the new state."""
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended('provisioner-preview:' || :o, 0))"), {"o": org_id})


def started(conn: Connection, org_id: str) -> tuple[datetime, str] | None:
    """When the org's preview began and who began it, or None when it is live."""
    row = conn.execute(text("SELECT started_at, started_by FROM preview_orgs WHERE org_id = :o"), {"o": org_id}).first()
    return (row.started_at, row.started_by) if row else None


def start(conn: Connection, org: Org, actor: str) -> None:
    """Put the org in preview: from this transaction's commit, its events are held."""
    _lock(conn, org.id)
    done = conn.execute(text(
        "INSERT INTO preview_orgs (org_id, started_by) VALUES (:o, :a) ON CONFLICT (org_id) DO NOTHING RETURNING org_id"
    ), {"o": org.id, "a": actor}).first()  # fmt: skip
    if done is None:
        raise PreviewError(f"org {org.slug} is in preview already")


@dataclass(frozen=True)
class Released:
    events: int
    by_type: dict[str, int]


def go_live(conn: Connection, org: Org) -> Released:
    """Apply the preview: the held events go to the outbox, in their order, and the org is live."""
    _lock(conn, org.id)
    if conn.execute(text("DELETE FROM preview_orgs WHERE org_id = :o RETURNING org_id"), {"o": org.id}).first() is None:
        raise PreviewError(f"org {org.slug} is not in preview")
    rows = conn.execute(text(
        "WITH moved AS (DELETE FROM held_events WHERE org_id = :o RETURNING id, event_id, topic, key, payload) "
        "INSERT INTO outbox (event_id, topic, key, payload) SELECT event_id, topic, key, payload FROM moved ORDER BY id "
        "ON CONFLICT (event_id) DO NOTHING RETURNING payload->>'type'"
    ), {"o": org.id}).scalars().all()  # fmt: skip
    by_type: dict[str, int] = {}
    for kind in rows:
        by_type[kind] = by_type.get(kind, 0) + 1
    return Released(len(rows), dict(sorted(by_type.items())))


_USERS = text("""
SELECT count(*) AS users,
       count(*) FILTER (WHERE r.data->>'active' IS DISTINCT FROM 'false') AS active,
       count(*) FILTER (WHERE NOT EXISTS (
         SELECT 1 FROM members m WHERE m.org_id = r.org_id AND m.scim_user_id = r.id AND m.status <> 'removed')) AS new,
       count(*) FILTER (WHERE r.data->>'active' IS DISTINCT FROM 'false' AND NOT EXISTS (
         SELECT 1 FROM members m WHERE m.org_id = r.org_id AND m.scim_user_id = r.id AND m.status <> 'removed')) AS new_active
FROM scim_resources r WHERE r.org_id = :o AND r.resource_type = 'User'""")
# an email of a SCIM user that is an account outside the org: flagged as a conflict when it becomes a member
_CONFLICTS = text("""
SELECT DISTINCT e AS email FROM scim_resources r, unnest(r.emails_ci) AS e
JOIN accounts a ON a.email_ci = e AND a.org_id IS DISTINCT FROM CAST(:o AS uuid)
WHERE r.org_id = :o AND r.resource_type = 'User'
  AND NOT EXISTS (SELECT 1 FROM members m WHERE m.org_id = r.org_id AND m.scim_user_id = r.id AND m.status <> 'removed')
ORDER BY e""")


def report(conn: Connection, org: Org, *, sample: int = 20) -> dict[str, Any]:
    """What going live would do now (the state of the stored SCIM users and the held events)."""
    since = started(conn, org.id)
    users = conn.execute(_USERS, {"o": org.id}).one()
    groups = conn.execute(text("SELECT count(*) FROM scim_resources WHERE org_id = :o AND resource_type = 'Group'"),
                          {"o": org.id}).scalar_one()
    links = conn.execute(text("SELECT count(*) FROM scim_group_members WHERE org_id = :o"), {"o": org.id}).scalar_one()
    conflicts = conn.execute(_CONFLICTS, {"o": org.id}).scalars().all()
    held: dict[str, int] = dict(conn.execute(text(
        "SELECT payload->>'type', count(*) FROM held_events WHERE org_id = :o GROUP BY 1 ORDER BY 1"
    ), {"o": org.id}).all())  # fmt: skip
    seats_held = conn.execute(text("SELECT count(*) FROM seats WHERE org_id = :o AND state = 'held'"),
                              {"o": org.id}).scalar_one()
    return {
        "preview": since is not None,
        "since": since[0].isoformat() if since else None,
        "started_by": since[1] if since else None,
        "scim_users": users.users,
        "scim_groups": groups,
        "group_memberships": links,
        "new_members": {"total": users.new, "provisioned": users.new_active, "deactivated": users.new - users.new_active},
        "email_conflicts": {"count": len(conflicts), "emails": list(conflicts[:sample])},
        "seats": _seats(org, users.new_active, seats_held),
        "held_events": {"total": sum(held.values()), "by_type": held},
    }


def _seats(org: Org, new_active: int, held: int) -> dict[str, Any]:
    """Seats the new members would take at their first login: none is billed before it. Under a
    limit, `refuse` turns away sign-ins past it and `allow` bills them as overage."""
    limit = org.seat_limit
    free = None if limit is None else max(0, limit - held)
    within = new_active if free is None else min(new_active, free)
    beyond = new_active - within
    return {
        "limit": limit, "policy": org.seat_policy, "held_now": held,
        "billable_at_first_login": within + (beyond if org.seat_policy == "allow" else 0),
        "beyond_limit": beyond,
        "beyond_limit_means": None if not beyond else ("billed as overage" if org.seat_policy == "allow" else "sign-in refused"),
    }  # fmt: skip
