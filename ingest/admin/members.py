"""The admin API's member routes: list members, add or remove one by hand, a member's recent activity."""

from typing import Annotated

from fastapi import Query

from core import cursors
from domain import admin
from domain.members import PAGE_MAX, SEARCH_MAX, count_members, page_members
from ingest.admin.deps import Admin, Api, known_id, resource_router
from ingest.admin.errors import WITH_BODY, WITH_QUERY, documented
from ingest.admin.models import (
    Activity,
    AddedMember,
    Member,
    MemberCounts,
    MemberPage,
    NewMember,
    RemovedMember,
    ShownStatus,
)  # fmt: skip

router = resource_router("members")


@router.get("/org/members", response_model=MemberPage, responses=WITH_QUERY)
def get_members(
    who: Admin,
    api: Api,
    status: Annotated[
        ShownStatus | None,
        Query(description="Only members with this status; without it, every member but the removed ones."),
    ] = None,
    q: Annotated[
        str | None,
        Query(max_length=SEARCH_MAX, description="Only members whose email, user name or name contains this (any case)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX, description="Members per page.")] = 100,
    cursor: Annotated[
        str | None, Query(max_length=cursors.MAX_LENGTH, description="`next_cursor` of the previous page.")
    ] = None,
    before: Annotated[
        str | None, Query(max_length=cursors.MAX_LENGTH, description="`previous_cursor` of the page after.")
    ] = None,
) -> MemberPage:
    """The org's members a page at a time, oldest first (keyset pages: a member added while
    paging appears on the last page, none is shown twice)."""
    if cursor is not None and before is not None:
        raise admin.AdminError(422, "query: give either cursor or before, not both")
    with api.transaction(who) as (uow, org):
        try:
            found = page_members(uow.conn, org.id, status=status, search=q, limit=limit, after=cursor, before=before)
        except ValueError as exc:
            raise admin.AdminError(422, f"query.{'before' if before else 'cursor'}: {exc}") from None
    return MemberPage(members=[Member(**m) for m in found.rows], next_cursor=found.next, previous_cursor=found.previous)


@router.get("/org/members/counts", response_model=MemberCounts, responses=documented())
def get_member_counts(who: Admin, api: Api) -> MemberCounts:
    """How many members the org has per status."""
    with api.transaction(who) as (uow, org):
        counts = count_members(uow.conn, org.id)
    return MemberCounts(**counts, total=sum(n for status, n in counts.items() if status != "removed"))


@router.post("/org/members", status_code=202, response_model=AddedMember, responses=documented(400, 403, 409, *WITH_BODY))
def add_member(new: NewMember, who: Admin, api: Api) -> AddedMember:
    """Add a person by hand (while `manual_provisioning` is on). Accepted: the member appears
    with source `manual` once the membership worker applies the event."""
    with api.transaction(who) as (uow, org):
        event = admin.add_member(uow, org, who.actor, new.email, new.display_name)
    return AddedMember(event_id=event.id, member_id=event.data["member_id"], email=new.email.strip())


@router.delete("/org/members/{member_id}", status_code=202, response_model=RemovedMember, responses=documented(404, 409, 422))
def remove_member(member_id: str, who: Admin, api: Api) -> RemovedMember:
    """Remove a member that no SCIM client manages (added by hand, or just in time by SSO); its
    seat, if billed, is released once the membership worker applies the removal. A SCIM user is
    removed at the identity provider instead (409)."""
    member_id = known_id(member_id, "member")
    with api.transaction(who) as (uow, org):
        event_id = admin.remove_member(uow, org, who.actor, member_id)
    return RemovedMember(event_id=event_id, member_id=member_id)


@router.get("/org/members/{member_id}/activity", response_model=list[Activity], responses=documented(404, 422))
def member_activity(member_id: str, who: Admin, api: Api) -> list[Activity]:
    """The member's recent provisioning activity, newest first (at most 50 entries)."""
    member_id = known_id(member_id, "member")
    with api.transaction(who) as (uow, org):
        return [Activity(**a) for a in admin.member_activity_of(uow.conn, org, member_id)]
