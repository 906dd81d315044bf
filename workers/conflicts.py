"""The conflict worker: flags members whose email belongs to an account outside their org.

It reacts to both orders of arrival: a member created (SCIM, manual or SSO) whose email is an
existing account's, and an account registered whose email is already some org's member. The
member gets an open conflict (shown as status `conflict` with a readable error) and an
`member.conflict.detected` event; nothing is merged until an admin acquires or dismisses it.
"""

import uuid
from typing import Any

from sqlalchemy import Connection, Text, bindparam, cast, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY, insert

from core.tables import accounts, conflicts, members
from events import catalogue as c
from events import outbox
from events.envelope import Event, deterministic_id

CONSUMER = "conflicts"

ERROR = (
    "{email} already has an account that is not part of this organisation. "
    "Acquire the existing account to make it this member, or dismiss the conflict."
)

_ACCOUNT_EMAILS = select(accounts.c.email_ci).where(accounts.c.email_ci == func.any(cast(bindparam("emails"), ARRAY(Text))))


class Conflicts:
    def __init__(self, topics: dict[str, str]):
        self.topics = topics

    def apply_batch(self, events: list[Event], conn: Connection) -> list[str]:
        """One query for the batch's emails: a new member whose email is nobody's account is
        the common case and costs nothing more; the others go through the handler."""
        emails = sorted({(e.data.get("email") or "").lower() for e in events if e.kind is c.MEMBER_CREATED} - {""})
        taken = set(conn.execute(_ACCOUNT_EMAILS, {"emails": emails}).scalars()) if emails else set()
        return [
            "ignored" if e.kind is c.MEMBER_CREATED and (e.data.get("email") or "").lower() not in taken else self(e, conn)
            for e in events
        ]

    def __call__(self, event: Event, conn: Connection) -> str:
        if event.kind is c.MEMBER_CREATED:
            email = (event.data.get("email") or "").lower()
            account = conn.execute(select(accounts).where(accounts.c.email_ci == email)).first() if email else None
            member = conn.execute(select(members).where(members.c.id == event.data["member_id"])).first()
            if account is None or member is None:
                return "ignored"
            return self._flag(conn, event, member, account)
        if event.kind is c.ACCOUNT_REGISTERED:
            account = conn.execute(select(accounts).where(accounts.c.id == event.data["account_id"])).first()
            if account is None:
                return "ignored"
            found = conn.execute(
                select(members).where(
                    members.c.email_ci == account.email_ci, members.c.status != "removed", members.c.account_id.is_(None)
                )
            ).all()
            outcomes = [self._flag(conn, event, member, account) for member in found]
            return "applied" if "applied" in outcomes else "ignored"
        return "ignored"

    def _flag(self, conn: Connection, cause: Event, member: Any, account: Any) -> str:
        if account.org_id == member.org_id or member.account_id == account.id or member.status == "removed":
            return "ignored"  # already the org's own account
        conflict_id = str(uuid.uuid4())
        created = conn.execute(
            insert(conflicts)
            .values(
                id=conflict_id, org_id=member.org_id, member_id=member.id, account_id=account.id, email_ci=account.email_ci,
                status="open", error=ERROR.format(email=member.email or account.email),
            )
            .on_conflict_do_nothing(constraint="ux_conflicts_member_account")
            .returning(conflicts.c.id)
        ).first()
        if created is None:
            return "ignored"  # this pair was flagged before (and maybe resolved): never re-open silently
        conn.execute(update(members).where(members.c.id == member.id).values(conflict_id=conflict_id))
        slug = cause.org_slug if cause.org_id == member.org_id else ""
        event = Event(
            kind=c.EMAIL_CONFLICT_DETECTED,
            org_id=member.org_id,
            org_slug=slug,
            subject=f"members/{member.id}",
            key=f"{member.org_id}:{member.id}",
            resource_version=cause.resource_version,
            data={
                "conflict_id": conflict_id,
                "member_id": member.id,
                "account_id": account.id,
                "email": member.email or account.email,
                "error": ERROR.format(email=member.email or account.email),
            },
            id=deterministic_id(c.EMAIL_CONFLICT_DETECTED.type, member.id, account.id),
            correlation_id=cause.correlation_id,
        )
        outbox.add(conn, [event], self.topics)
        return "applied"
