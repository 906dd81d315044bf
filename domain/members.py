"""Read side of the org's membership, for the CLI and the admin API."""

from typing import Any

from sqlalchemy import Connection, select

from core.tables import conflicts, members
from domain.model import CONFLICT, MemberStatus


def list_members(
    conn: Connection, org_id: str, *, status: str | None = None, include_removed: bool = False
) -> list[dict[str, Any]]:
    query = (
        select(members, conflicts.c.error.label("conflict_error"))
        .outerjoin(conflicts, conflicts.c.id == members.c.conflict_id)
        .where(members.c.org_id == org_id)
        .order_by(members.c.created_at, members.c.id)
    )
    if status == CONFLICT:
        query = query.where(members.c.conflict_id.is_not(None))
    elif status:
        query = query.where(members.c.status == status, members.c.conflict_id.is_(None))
    elif not include_removed:
        query = query.where(members.c.status != MemberStatus.REMOVED)
    return [
        {
            "id": r.id,
            "email": r.email,
            "user_name": r.user_name,
            "display_name": r.display_name,
            "status": CONFLICT if r.conflict_id else r.status,
            "lifecycle_status": r.status,
            "error": r.conflict_error if r.conflict_id else None,
            "account_id": r.account_id,
            "conflict_id": r.conflict_id,
            "source": r.source,
            "scim_user_id": r.scim_user_id,
            "first_login_at": r.first_login_at.isoformat() if r.first_login_at else None,
            "created_at": r.created_at.isoformat(),
            "updated_at": r.updated_at.isoformat(),
        }
        for r in conn.execute(query)
    ]
