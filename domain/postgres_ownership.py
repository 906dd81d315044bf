"""The ownership repositories on PostgreSQL: accounts, their conflicts with members, verified
domains and invitations (domain.uow's Accounts, Conflicts, Domains and Invitations).

Kept beside domain.postgres, whose unit of work holds them: the rules they serve are in
domain.ownership, domain.domains and domain.invitations.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from core.db import any_text, json_row
from core.tables import accounts, conflicts, invitations, org_domains
from domain.model import Account, Conflict, ConflictStatus
from domain.ownership import DomainMethod, Invitation, InvitationStatus, OrgDomain

_ACCOUNT_COLUMNS = (accounts.c.id, accounts.c.email, accounts.c.email_ci, accounts.c.org_id)
_TAKEN = select(accounts.c.email_ci).where(accounts.c.email_ci == any_text("emails"))
_ADD_CONFLICT = insert(conflicts).on_conflict_do_nothing(constraint="ux_conflicts_member_account").returning(conflicts.c.id)
_GET_DOMAIN = (
    select(org_domains)
    .where(org_domains.c.org_id == bindparam("org_id"), org_domains.c.domain == bindparam("domain"))
    .with_for_update()
)
_ADD_DOMAIN = insert(org_domains).on_conflict_do_nothing(index_elements=["org_id", "domain"])
_VERIFIER = select(org_domains.c.org_id).where(
    org_domains.c.domain == bindparam("domain"), org_domains.c.verified_at.is_not(None)
)
_MARK_VERIFIED = (
    update(org_domains)
    .where(org_domains.c.org_id == bindparam("o"), org_domains.c.domain == bindparam("d"), org_domains.c.verified_at.is_(None))
    .values(verified_at=bindparam("at"), method=bindparam("method"), verified_by=bindparam("actor"))
)
_INVITATION = select(invitations)
_ACCEPT = (
    update(invitations)
    .where(invitations.c.id == bindparam("i"), invitations.c.status == InvitationStatus.PENDING)
    .values(status=InvitationStatus.ACCEPTED, accepted_at=bindparam("at"))
)


def org_domain(row: Any) -> OrgDomain:
    """A row of org_domains as the value the rules work on."""
    return OrgDomain(
        org_id=row.org_id, domain=row.domain, challenge=row.challenge, verified_at=row.verified_at,
        method=DomainMethod(row.method) if row.method else None, verified_by=row.verified_by, created_at=row.created_at,
    )  # fmt: skip


def invitation(row: Any) -> Invitation:
    """A row of invitations as the value the rules work on."""
    return Invitation(
        id=row.id, org_id=row.org_id, conflict_id=row.conflict_id, member_id=row.member_id, account_id=row.account_id,
        status=InvitationStatus(row.status), created_at=row.created_at, accepted_at=row.accepted_at, actor=row.actor,
    )  # fmt: skip


class PgDomains:
    def __init__(self, conn: Connection):
        self.conn = conn

    def get(self, org_id: str, domain: str) -> OrgDomain | None:
        row = self.conn.execute(_GET_DOMAIN, {"org_id": org_id, "domain": domain}).first()
        return org_domain(row) if row else None

    def add_if_absent(self, org_id: str, domain: str, challenge: str) -> None:
        self.conn.execute(_ADD_DOMAIN, {"org_id": org_id, "domain": domain, "challenge": challenge})

    def verifier(self, domain: str) -> str | None:
        found: str | None = self.conn.execute(_VERIFIER, {"domain": domain}).scalar()
        return found

    def mark_verified(self, org_id: str, domain: str, *, method: str, actor: str, at: datetime) -> bool:
        # in a savepoint: when another org verified the domain meanwhile, the unique index refuses
        # this one and only the savepoint is rolled back, not the caller's transaction
        try:
            with self.conn.begin_nested():
                done = self.conn.execute(_MARK_VERIFIED, {"o": org_id, "d": domain, "at": at, "method": method, "actor": actor})
        except IntegrityError:
            return False
        return done.rowcount == 1


class PgInvitations:
    def __init__(self, conn: Connection):
        self.conn = conn

    def add(self, new: Invitation) -> None:
        self.conn.execute(invitations.insert().values(**vars(new)))

    def for_conflict(self, conflict_id: str) -> Invitation | None:
        row = self.conn.execute(_INVITATION.where(invitations.c.conflict_id == conflict_id)).first()
        return invitation(row) if row else None

    def lock(self, invitation_id: str) -> Invitation | None:
        row = self.conn.execute(_INVITATION.where(invitations.c.id == invitation_id).with_for_update()).first()
        return invitation(row) if row else None

    def accept(self, invitation_id: str, at: datetime) -> None:
        self.conn.execute(_ACCEPT, {"i": invitation_id, "at": at})


class PgAccounts:
    def __init__(self, conn: Connection):
        self.conn = conn

    def taken(self, emails: Iterable[str]) -> set[str]:
        wanted = sorted(set(emails))
        return set(self.conn.execute(_TAKEN, {"emails": wanted}).scalars()) if wanted else set()

    def by_email(self, email_ci: str) -> Account | None:
        row = self.conn.execute(select(*_ACCOUNT_COLUMNS).where(accounts.c.email_ci == email_ci)).first()
        return Account(row.id, row.email, row.email_ci, row.org_id) if row else None

    def get(self, account_id: str) -> Account | None:
        row = self.conn.execute(select(*_ACCOUNT_COLUMNS).where(accounts.c.id == account_id)).first()
        return Account(row.id, row.email, row.email_ci, row.org_id) if row else None

    def add(self, account_id: str, email: str, display_name: str | None) -> None:
        self.conn.execute(accounts.insert().values(id=account_id, email=email, email_ci=email.lower(), display_name=display_name))

    def view(self, email_ci: str) -> dict[str, Any] | None:
        row = self.conn.execute(select(accounts).where(accounts.c.email_ci == email_ci)).first()
        return json_row(row, "id", "email", "display_name", "org_id", "created_at") if row else None

    def set_org(self, account_id: str, org_id: str) -> None:
        self.conn.execute(update(accounts).where(accounts.c.id == account_id).values(org_id=org_id))

    def lock(self, account_id: str) -> Account | None:
        row = self.conn.execute(select(*_ACCOUNT_COLUMNS).where(accounts.c.id == account_id).with_for_update()).first()
        return Account(row.id, row.email, row.email_ci, row.org_id) if row else None


class PgConflicts:
    def __init__(self, conn: Connection):
        self.conn = conn

    def add_if_new(self, *, conflict_id: str, org_id: str, member_id: str, account_id: str, email_ci: str, error: str) -> bool:
        row = {
            "id": conflict_id, "org_id": org_id, "member_id": member_id, "account_id": account_id, "email_ci": email_ci,
            "status": ConflictStatus.OPEN, "error": error,
        }  # fmt: skip
        return self.conn.execute(_ADD_CONFLICT, row).first() is not None

    def open_one(self, org_id: str, *, conflict_id: str | None = None, email_ci: str | None = None) -> Conflict | None:
        query = select(conflicts).where(conflicts.c.org_id == org_id, conflicts.c.status == ConflictStatus.OPEN)
        query = query.where(conflicts.c.id == conflict_id) if conflict_id else query.where(conflicts.c.email_ci == email_ci)
        row = self.conn.execute(query.with_for_update()).first()
        if row is None:
            return None
        return Conflict(row.id, row.org_id, row.member_id, row.account_id, row.email_ci, ConflictStatus(row.status))

    def close(self, conflict_id: str, status: str, *, at: datetime, actor: str) -> None:
        self.conn.execute(
            update(conflicts).where(conflicts.c.id == conflict_id).values(status=status, resolved_at=at, resolved_by=actor)
        )
