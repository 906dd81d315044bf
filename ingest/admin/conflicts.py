"""The admin API's conflict routes: email conflicts, and acquiring, dismissing or inviting one."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Query
from pydantic import BaseModel, Field

from core import cursors
from domain import admin
from domain.members import PAGE_MAX
from ingest.admin.deps import Admin, Api, Caller, Service, known_id, resource_router
from ingest.admin.errors import WITH_QUERY, documented
from ingest.admin.models import Conflict, ConflictPage, Resolution

router = resource_router("conflicts")


@router.get("/org/conflicts", response_model=ConflictPage, responses=WITH_QUERY)
def get_conflicts(
    who: Admin,
    api: Api,
    status: Annotated[Literal["open", "acquired", "dismissed", "all"], Query()] = "open",
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX, description="Conflicts per page.")] = 100,
    cursor: Annotated[
        str | None, Query(max_length=cursors.MAX_LENGTH, description="`next_cursor` of the previous page.")
    ] = None,
) -> ConflictPage:
    """Email conflicts, a page at a time, oldest first: a member whose email is an account outside this organisation."""
    with api.transaction(who) as (uow, org):
        try:
            found = admin.page_conflicts(uow.conn, org, None if status == "all" else status, limit=limit, after=cursor)
        except ValueError as exc:
            raise admin.AdminError(422, f"query.cursor: {exc}") from None
    return ConflictPage(conflicts=[Conflict(**c) for c in found.rows], next_cursor=found.next)


def _resolve(api: Service, conflict_id: str, who: Caller, *, acquire: bool) -> Resolution:
    key = known_id(conflict_id, "open conflict")
    with api.transaction(who) as (uow, org):
        return Resolution(**admin.resolve(uow, org, who.actor, key, acquire=acquire))


@router.post("/org/conflicts/{conflict_id}/acquire", response_model=Resolution, responses=documented(404, 409, 422))
def acquire_conflict(conflict_id: str, who: Admin, api: Api) -> Resolution:
    """Acquire the existing account into this organisation: it becomes the member. Only an account
    that belongs to no organisation, on an email domain this organisation has verified; otherwise
    409 (invite the person instead) and nothing changes."""
    return _resolve(api, conflict_id, who, acquire=True)


@router.post("/org/conflicts/{conflict_id}/dismiss", response_model=Resolution, responses=documented(404, 422))
def dismiss_conflict(conflict_id: str, who: Admin, api: Api) -> Resolution:
    """Dismiss the conflict: the member stays, unlinked from the account."""
    return _resolve(api, conflict_id, who, acquire=False)


class Invitation(BaseModel):
    """An invitation to the person behind the conflict's account; the app asks for their consent."""

    id: str
    status: Literal["pending", "accepted"]
    conflict_id: str
    member_id: str
    account_id: str
    created_at: datetime
    accepted_at: datetime | None = Field(description="When the person accepted: the account is the member since.")


@router.post("/org/conflicts/{conflict_id}/invite", response_model=Invitation, responses=documented(404, 422))
def invite_conflict(conflict_id: str, who: Admin, api: Api) -> Invitation:
    """Invite the person behind the existing account to join this organisation: once they accept
    (in the app), the account becomes the member. Inviting again answers the same invitation."""
    key = known_id(conflict_id, "open conflict")
    with api.transaction(who) as (uow, org):
        return Invitation(**admin.invite(uow, org, who.actor, key))
