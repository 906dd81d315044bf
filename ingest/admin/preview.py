"""The admin API's SCIM preview routes: start a preview, see what going live would do, go live."""

from typing import Literal

from pydantic import BaseModel, Field

from domain import preview
from ingest.admin.deps import Admin, Api, resource_router
from ingest.admin.errors import ERRORS, documented

router = resource_router("preview")


class NewMembers(BaseModel):
    total: int = Field(description="SCIM users without a member: each becomes one at go-live.")
    provisioned: int = Field(description="Active ones: members that cost nothing until their first login.")
    deactivated: int = Field(description="Inactive ones: members created deactivated.")


class EmailConflicts(BaseModel):
    count: int = Field(description="Emails of new members that belong to an account outside the organisation.")
    emails: list[str] = Field(description="The first 20 of them.")


class SeatProjection(BaseModel):
    limit: int | None = Field(description="The organisation's seat limit; null: none.")
    policy: Literal["refuse", "allow"]
    held_now: int = Field(description="Seats billed already.")
    billable_at_first_login: int = Field(description="New members' seats that would be billed, each at its first login.")
    beyond_limit: int = Field(description="New active members past the limit.")
    beyond_limit_means: Literal["sign-in refused", "billed as overage"] | None


class HeldEvents(BaseModel):
    total: int
    by_type: dict[str, int] = Field(description="Held events by CloudEvents type, published in their order at go-live.")


class Preview(BaseModel):
    """What going live would do, from the stored SCIM users and the held events."""

    preview: bool = Field(description="Whether the organisation is in preview now.")
    since: str | None
    started_by: str | None
    scim_users: int
    scim_groups: int
    group_memberships: int
    new_members: NewMembers
    email_conflicts: EmailConflicts
    seats: SeatProjection
    held_events: HeldEvents


class Released(BaseModel):
    events: int = Field(description="Held events moved to the outbox, in order, for the relay to publish.")
    by_type: dict[str, int]


@router.get("/org/scim/preview", response_model=Preview, responses=ERRORS)
def get_preview(who: Admin, api: Api) -> Preview:
    """What switching SCIM live would do now: new members, email conflicts, seats billed at first
    login under the seat limit, and the events held back."""
    with api.transaction(who) as (uow, org):
        return Preview(**preview.report(uow.conn, org))


@router.post("/org/scim/preview", response_model=Preview, responses=documented(409))
def start_preview(who: Admin, api: Api) -> Preview:
    """Put SCIM in preview: the IdP pushes and is answered as usual, resources are stored, but no
    member is created and no event is published until go-live. 409 if in preview already."""
    with api.transaction(who, lock=True) as (uow, org):
        preview.start(uow.conn, org, who.actor)
        return Preview(**preview.report(uow.conn, org))


@router.post("/org/scim/go-live", response_model=Released, responses=documented(409))
def go_live(who: Admin, api: Api) -> Released:
    """Apply the preview: its held events are published in their order and the workers create the
    members, flag the conflicts and later bill first logins. 409 if not in preview."""
    with api.transaction(who, lock=True) as (uow, org):
        released = preview.go_live(uow.conn, org)
        return Released(events=released.events, by_type=released.by_type)
