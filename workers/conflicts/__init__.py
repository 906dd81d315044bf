"""The conflict worker: flags members whose email belongs to an account outside their org.

It reacts to both orders of arrival: a member created (SCIM, manual or SSO) whose email is an
existing account's, and an account registered whose email is already some org's member. The
member gets an open conflict (shown as status `conflict` with a readable error) and a
`member.conflict.detected` event; nothing is merged until an admin acquires or dismisses it.
"""

import uuid

from domain.model import Account, Member, Outcome, is_outside_account
from domain.uow import UnitOfWork
from events import catalogue as c
from events.envelope import Event

CONSUMER = "conflicts"

ERROR = (
    "{email} already has an account that is not part of this organisation. "
    "Acquire the existing account to make it this member (its email domain must be verified by this "
    "organisation), invite the person to join with it, or dismiss the conflict."
)


class Conflicts:
    TYPES = frozenset(k.type for k in (c.MEMBER_CREATED, c.ACCOUNT_REGISTERED))

    def apply(self, events: list[Event], uow: UnitOfWork) -> list[Outcome]:
        """One query for the batch's emails: a new member whose email is nobody's account is the
        common case and costs nothing more; the others are looked at one by one."""
        emails = {(e.data.get("email") or "").lower() for e in events if e.kind is c.MEMBER_CREATED} - {""}
        taken = uow.accounts.taken(emails)
        return [
            Outcome.IGNORED if e.kind is c.MEMBER_CREATED and (e.data.get("email") or "").lower() not in taken else _one(e, uow)
            for e in events
        ]


def _one(event: Event, uow: UnitOfWork) -> Outcome:
    if event.kind is c.MEMBER_CREATED:
        email = (event.data.get("email") or "").lower()
        account = uow.accounts.by_email(email) if email else None
        member = uow.members.get(event.data["member_id"])
        if account is None or member is None:
            return Outcome.IGNORED
        return _flag(uow, event, member, account)
    if event.kind is c.ACCOUNT_REGISTERED:
        registered = uow.accounts.get(event.data["account_id"])
        if registered is None:
            return Outcome.IGNORED
        outcomes = [_flag(uow, event, member, registered) for member in uow.members.unowned_with_email(registered.email_ci)]
        return Outcome.APPLIED if Outcome.APPLIED in outcomes else Outcome.IGNORED
    return Outcome.IGNORED


def _flag(uow: UnitOfWork, cause: Event, member: Member, account: Account) -> Outcome:
    if not is_outside_account(member.org_id, member.account_id, member.status, account.id, account.org_id):
        return Outcome.IGNORED  # already the org's own account
    conflict_id = str(uuid.uuid4())
    email = member.email or account.email
    error = ERROR.format(email=email)
    opened = uow.conflicts.add_if_new(
        conflict_id=conflict_id,
        org_id=member.org_id,
        member_id=member.id,
        account_id=account.id,
        email_ci=account.email_ci,
        error=error,
    )
    if not opened:
        return Outcome.IGNORED  # this pair was flagged before (and maybe resolved): never re-open silently
    uow.members.set_conflict(member.id, conflict_id)
    payload = c.EmailConflictDetected(
        conflict_id=conflict_id, member_id=member.id, account_id=account.id, email=email, error=error
    )
    slug = cause.org_slug if cause.org_id == member.org_id else ""
    uow.stage(
        [
            Event.of(
                payload,
                org_id=member.org_id,
                org_slug=slug,
                version=cause.resource_version,
                occasion=None,
                correlation_id=cause.correlation_id,
            ).following(cause)
        ]
    )
    return Outcome.APPLIED
