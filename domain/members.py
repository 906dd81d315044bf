"""Read side of the org's membership, for the console, the admin API and the CLI: pages in
(created_at, id) order, a search over email, user name and names, and counts per status."""

from typing import Any

from sqlalchemy import Connection, Select, func, literal, select

from core import cursors
from core.tables import conflicts, member_counts, members
from domain.model import CONFLICT, MemberStatus

PAGE_MAX = 1000
SEARCH_MAX = 200  # characters of a search term
SHOWN_STATUSES = (*(s.value for s in MemberStatus), CONFLICT)

_m = members.c
# what a search matches, case-insensitively: the same expression as the trigram index
# `ix_members_search` (migration 0011), so PostgreSQL can answer a search from it
SEARCHED = func.lower(
    func.coalesce(_m.email_ci, "") + " " + func.coalesce(_m.display_name, "") + " " + func.coalesce(_m.given_name, "")
    + " " + func.coalesce(_m.family_name, "") + " " + func.coalesce(_m.user_name, "")
)  # fmt: skip


def _query(org_id: str, status: str | None, search: str | None, include_removed: bool) -> Select[Any]:
    query = (
        select(members, conflicts.c.error.label("conflict_error"))
        .outerjoin(conflicts, conflicts.c.id == _m.conflict_id)
        .where(_m.org_id == org_id)
    )
    if status == CONFLICT:
        query = query.where(_m.conflict_id.is_not(None))
    elif status:
        query = query.where(_m.status == status, _m.conflict_id.is_(None))
    elif not include_removed:
        query = query.where(_m.status != MemberStatus.REMOVED)
    if search:
        needle = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(SEARCHED.like(func.lower(literal(needle))))  # one lower(), PostgreSQL's, on both sides
    return query


def check_search(search: str | None) -> str | None:
    """The search term as used (trimmed; None when blank); ValueError when it is too long."""
    search = (search or "").strip()
    if len(search) > SEARCH_MAX:
        raise ValueError(f"a search term is at most {SEARCH_MAX} characters")
    return search or None


def page_members(
    conn: Connection,
    org_id: str,
    *,
    status: str | None = None,
    search: str | None = None,
    include_removed: bool = False,
    limit: int = 100,
    after: str | None = None,
    before: str | None = None,
) -> cursors.Page:
    """One page of the org's members, oldest first; without a status, every member but the
    removed ones (unless `include_removed`). ValueError for a cursor this API did not issue."""
    query = _query(org_id, status, check_search(search), include_removed)
    found = cursors.page(conn, query, _m.created_at, _m.id, limit=min(limit, PAGE_MAX), after=after, before=before)
    return cursors.Page([_shown(r) for r in found.rows], found.next, found.previous)


def list_members(
    conn: Connection, org_id: str, *, status: str | None = None, include_removed: bool = False
) -> list[dict[str, Any]]:
    """Every member at once (for tests and small orgs): the pages of `page_members`, joined."""
    rows = conn.execute(_query(org_id, status, None, include_removed).order_by(_m.created_at, _m.id)).mappings()
    return [_shown(r) for r in rows]


def get_member(conn: Connection, org_id: str, member_id: str) -> dict[str, Any] | None:
    row = conn.execute(_query(org_id, None, None, True).where(_m.id == member_id)).mappings().first()
    return _shown(row) if row else None


def count_members(conn: Connection, org_id: str) -> dict[str, int]:
    """Members per shown status (an open conflict shows instead of the lifecycle status), as the
    triggers on `members` keep them: one index lookup, whatever the org's size."""
    rows = conn.execute(select(member_counts.c.shown, member_counts.c.tally).where(member_counts.c.org_id == org_id)).all()
    counts = dict.fromkeys(SHOWN_STATUSES, 0)
    counts.update({shown: int(n) for shown, n in rows if shown in counts})
    return counts


def _shown(r: Any) -> dict[str, Any]:
    return {
        "id": r["id"],
        "email": r["email"],
        "user_name": r["user_name"],
        "display_name": r["display_name"],
        "given_name": r["given_name"],
        "family_name": r["family_name"],
        "status": CONFLICT if r["conflict_id"] else r["status"],
        "lifecycle_status": r["status"],
        "error": r["conflict_error"] if r["conflict_id"] else None,
        "account_id": r["account_id"],
        "conflict_id": r["conflict_id"],
        "source": r["source"],
        "scim_user_id": r["scim_user_id"],
        "first_login_at": r["first_login_at"].isoformat() if r["first_login_at"] else None,
        "created_at": r["created_at"].isoformat(),
        "updated_at": r["updated_at"].isoformat(),
    }
