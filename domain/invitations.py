"""The invited person's side (through the app): what they were invited to, and their consent, which
makes their account the member of the inviting org if the account belongs to no other org."""

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from core.tables import conflicts, invitations
from core.tables import orgs as orgs_table
from domain.model import ConflictStatus, MemberStatus
from domain.ownership import Invitation, InvitationStatus, may_join
from domain.uow import UnitOfWork
from events import catalogue as c

WITHDRAWN = "this invitation is no longer open: the organisation has resolved the conflict it was about"
# Said to the person about their own account; which org holds it is not said (the app knows).
ACCOUNT_TAKEN = (
    "this account belongs to another organisation, so it cannot join this one; it can once it has left the other organisation"
)


class InvitationError(ValueError):
    """An invitation that cannot be accepted; `status` is the HTTP status that says why. Nothing changed."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        return None


def accept(uow: UnitOfWork, invitation_id: str) -> dict[str, Any]:
    """The person consented: their account joins the org, the conflict closes as acquired and the
    member is the account. Accepting again answers the same; an account another org holds by
    now, or a conflict the org resolved meanwhile, is refused (409) and nothing changes."""
    wanted = _uuid(invitation_id)
    invitation = uow.invitations.lock(wanted) if wanted else None
    if invitation is None:
        raise InvitationError(404, "no such invitation")
    if invitation.status == InvitationStatus.ACCEPTED:
        return _view(uow, invitation)
    conflict = uow.conflicts.open_one(invitation.org_id, conflict_id=invitation.conflict_id)
    member = uow.members.get(invitation.member_id)
    if conflict is None or member is None or member.status == MemberStatus.REMOVED:
        raise InvitationError(409, WITHDRAWN)
    # locked to the end of the transaction, as an admin's acquire locks it: one of them wins
    account = uow.accounts.lock(invitation.account_id)
    if account is None:
        raise InvitationError(404, "no such invitation")  # the account is gone (erased)
    if not may_join(invitation.org_id, account.org_id):
        raise InvitationError(409, ACCOUNT_TAKEN)
    now = datetime.now(UTC)
    uow.accounts.set_org(account.id, invitation.org_id)
    uow.conflicts.close(conflict.id, ConflictStatus.ACQUIRED, at=now, actor=f"invitation:{invitation.id}")
    uow.members.close_conflict(conflict.member_id, account_id=account.id, at=now)
    uow.invitations.accept(invitation.id, now)
    org = uow.orgs.lock(invitation.org_id)
    accepted = c.InvitationAccepted(
        invitation_id=invitation.id, conflict_id=conflict.id, member_id=conflict.member_id, account_id=account.id
    )
    uow.stage_fact(accepted, org_id=org.id, org_slug=org.slug)
    done = uow.invitations.lock(invitation.id)
    assert done is not None
    return _view(uow, done)


def _view(uow: UnitOfWork, invitation: Invitation) -> dict[str, Any]:
    org = uow.orgs.lock(invitation.org_id)
    return {
        "id": invitation.id, "status": str(invitation.status), "org": {"id": org.id, "slug": org.slug, "name": org.name},
        "member_id": invitation.member_id, "account_id": invitation.account_id,
        "created_at": invitation.created_at.isoformat(),
        "accepted_at": invitation.accepted_at.isoformat() if invitation.accepted_at else None,
    }  # fmt: skip


def pending(conn: Connection, account_id: str) -> list[dict[str, Any]]:
    """The account's open invitations, oldest first, with the inviting org's name and slug (what the
    app shows the person); one whose conflict the org resolved otherwise is no longer open."""
    wanted = _uuid(account_id)
    if wanted is None:
        return []
    rows = conn.execute(
        select(invitations, orgs_table.c.slug, orgs_table.c.name)
        .join(orgs_table, orgs_table.c.id == invitations.c.org_id)
        .join(conflicts, conflicts.c.id == invitations.c.conflict_id)
        .where(
            invitations.c.account_id == wanted,
            invitations.c.status == InvitationStatus.PENDING,
            conflicts.c.status == ConflictStatus.OPEN,
        )
        .order_by(invitations.c.created_at, invitations.c.id)
    )
    return [
        {
            "id": r.id,
            "status": r.status,
            "org": {"id": r.org_id, "slug": r.slug, "name": r.name},
            "member_id": r.member_id,
            "account_id": r.account_id,
            "created_at": r.created_at.isoformat(),
            "accepted_at": None,
        }  # fmt: skip
        for r in rows
    ]
