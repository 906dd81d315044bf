"""Every kind of bearer token (admin, service, SCIM) listed and revoked the same way, and its last use
recorded cheaply: a token's row is written at most once a minute, never once per request."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, func, select, update

from core import credentials
from core.tables import admin_tokens, console_sessions, scim_tokens, service_tokens

KINDS: dict[str, Table] = {"admin": admin_tokens, "scim": scim_tokens, "service": service_tokens}


class TokenError(ValueError):
    """A token request that cannot be honoured; `status` is the HTTP status that says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def is_live(row: Any, now: datetime | None = None) -> bool:
    """A token works until it is revoked, or (SCIM, after a rotation) its overlap ends."""
    now = now or datetime.now(UTC)
    if row.revoked_at is not None:
        return False
    expires_at = getattr(row, "expires_at", None)
    return expires_at is None or expires_at > now


def touch(conn: Connection, table: Table, row: Any) -> None:
    """Record that a token was used, when its `last_used_at` is over a minute old (the caller commits).
    The condition is repeated in SQL, so several processes write it at most once a minute between them."""
    every = timedelta(seconds=credentials.LAST_USED_EVERY_SECONDS)
    if row.last_used_at is not None and row.last_used_at > datetime.now(UTC) - every:
        return
    conn.execute(
        update(table)
        .where(table.c.id == row.id)
        .where(table.c.last_used_at.is_(None) | (table.c.last_used_at < func.now() - every))
        .values(last_used_at=func.now())
    )


def _view(kind: str, row: Any) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    view = {
        "id": str(row.id), "kind": kind, "prefix": row.prefix, "name": getattr(row, "name", None) or kind,
        "created_at": iso(row.created_at), "last_used_at": iso(row.last_used_at), "revoked_at": iso(row.revoked_at),
        "expires_at": iso(getattr(row, "expires_at", None)), "live": is_live(row),
    }  # fmt: skip
    if kind == "service":
        view["org_ids"] = list(row.org_ids) if row.org_ids is not None else None
    return view


def listing(conn: Connection, kind: str, org_id: str | None = None) -> list[dict[str, Any]]:
    """The tokens of a kind (of one org, for admin and SCIM tokens when `org_id` is given), oldest first;
    never a secret or a hash."""
    table = KINDS[kind]
    query = select(table).order_by(table.c.created_at, table.c.id)
    if org_id is not None and "org_id" in table.c:
        query = query.where(table.c.org_id == org_id)
    return [_view(kind, row) for row in conn.execute(query)]


def find(conn: Connection, token_id: str, kinds: tuple[str, ...], org_id: str | None = None) -> tuple[str, Any]:
    """The token with this id among `kinds` (of the org, when given), as (kind, row); else 404."""
    try:
        token_id = str(uuid.UUID(token_id))
    except (ValueError, TypeError, AttributeError):
        raise TokenError(404, "no such token") from None
    for kind in kinds:
        table = KINDS[kind]
        query = select(table).where(table.c.id == token_id)
        if org_id is not None:
            query = query.where(table.c.org_id == org_id)
        row = conn.execute(query.with_for_update()).first()
        if row is not None:
            return kind, row
    raise TokenError(404, "no such token")


def revoke(conn: Connection, kind: str, row: Any) -> bool:
    """Revoke a token now (it stops working within the auth cache's seconds); an admin token's console
    sessions end with it. False when it was revoked already (nothing changes)."""
    if row.revoked_at is not None:
        return False
    table = KINDS[kind]
    conn.execute(update(table).where(table.c.id == row.id).values(revoked_at=func.now()))
    if kind == "admin":
        conn.execute(
            update(console_sessions)
            .where(console_sessions.c.admin_token_id == row.id, console_sessions.c.ended_at.is_(None))
            .values(ended_at=func.now())
        )
    return True
