"""SCIM tokens with a lifetime, and the one warning before each ends.

A SCIM token may be issued with a lifetime (`expires_in_days` on a rotation, from the CLI, the admin
API or the console); without one it lasts until a rotation replaces it or an admin revokes it. Some
days before a token with a lifetime expires (`PROVISIONER_SCIM_TOKEN_WARNING_DAYS`), the org gets one
`credential.expiring` event: every ingest process's audit writer calls `warn_expiring` now and then,
and its `UPDATE ... RETURNING` on `expiry_notice_at` lets exactly one of them stage each warning. A
token a rotation replaced is noticed already (the rotation set its end): it gets none. The console's
Connection section and `GET /admin/v1/org/health` show each token's end, and when it is near.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, update

from core.tables import orgs, scim_tokens
from domain import token_facts

MAX_DAYS = 3650  # ten years: beyond that, "no expiry" says it better


def lifetime(days: int | None) -> timedelta | None:
    """A token lifetime from whole days (None: no expiry); ValueError outside 1..MAX_DAYS."""
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise ValueError(f"expires_in_days must be a whole number of days from 1 to {MAX_DAYS}")
    return timedelta(days=days)


def soon(expires_at: datetime | None, now: datetime, within: timedelta) -> bool:
    """Whether a token's end is near enough to warn about (or past)."""
    return expires_at is not None and expires_at <= now + within


def warn_expiring(engine: Engine, topics: dict[str, str], now: datetime, within: timedelta) -> int:
    """Stage `credential.expiring` for each live SCIM token that ends within `within` and was never
    noticed; returns how many. Safe to run in every process at once."""
    with engine.begin() as conn:
        noticed = conn.execute(
            update(scim_tokens)
            .where(scim_tokens.c.expiry_notice_at.is_(None), scim_tokens.c.revoked_at.is_(None))
            .where(scim_tokens.c.expires_at.is_not(None), scim_tokens.c.expires_at > now)
            .where(scim_tokens.c.expires_at <= now + within)
            .values(expiry_notice_at=now)
            .returning(scim_tokens.c.id, scim_tokens.c.prefix, scim_tokens.c.org_id, scim_tokens.c.expires_at)
        ).all()
        _stage(conn, topics, noticed)
    return len(noticed)


def _stage(conn: Connection, topics: dict[str, str], noticed: Sequence[Row[Any]]) -> None:
    if not noticed:
        return
    slugs = dict(conn.execute(orgs.select().with_only_columns(orgs.c.id, orgs.c.slug)
                              .where(orgs.c.id.in_({row.org_id for row in noticed}))).all())  # fmt: skip
    facts = token_facts.ConnectionFacts(conn, topics)
    for row in noticed:
        fact = token_facts.expiring_fact(str(row.id), row.prefix, row.expires_at)
        facts.stage_fact(fact, org_id=row.org_id, org_slug=slugs[row.org_id])
