"""The admin API's audit route: the org's SCIM audit trail, a page at a time."""

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import Query
from pydantic import AwareDatetime

from domain import admin
from ingest import audit
from ingest.admin.deps import Admin, Api, resource_router
from ingest.admin.errors import WITH_QUERY
from ingest.admin.models import AuditEntry, AuditPage

router = resource_router("audit")


def _utc(value: datetime | None, name: str) -> datetime | None:
    """A time in UTC: PostgreSQL takes offsets up to 15:59 only, ISO 8601 up to 23:59."""
    try:
        return value.astimezone(UTC) if value is not None else None
    except OverflowError:
        raise admin.AdminError(422, f"query.{name}: out of range") from None


@router.get("/org/scim-audit", response_model=AuditPage, responses=WITH_QUERY)
def get_scim_audit(
    who: Admin,
    api: Api,
    limit: Annotated[int, Query(ge=1, le=500, description="Entries per page.")] = 100,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page.")] = None,
    status: Annotated[
        str | None, Query(pattern=r"^[1-5](\d\d|xx)$", description="A status (`409`) or a class (`4xx`).")
    ] = None,
    method: Annotated[Literal["GET", "POST", "PUT", "PATCH", "DELETE"] | None, Query()] = None,
    since: Annotated[AwareDatetime | None, Query(description="Entries at or after this time (ISO 8601 with offset).")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Entries before this time (ISO 8601 with offset).")] = None,
) -> AuditPage:
    """Every SCIM request made with this organisation's credentials, served or refused, newest
    first; kept for the configured retention period."""
    try:
        after = audit.decode_cursor(cursor) if cursor is not None else None
    except ValueError as exc:
        raise admin.AdminError(422, f"query.cursor: {exc}") from None
    since, until = _utc(since, "since"), _utc(until, "until")
    with api.transaction(who) as (uow, org):
        entries, next_cursor = audit.list_entries(
            uow.conn, org.id, limit=limit, after=after, status=status, method=method, since=since, until=until
        )
    return AuditPage(entries=[AuditEntry(**e) for e in entries], next_cursor=next_cursor)
