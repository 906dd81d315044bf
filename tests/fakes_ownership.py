"""In-memory Domains and Invitations (domain.uow's ports), for tests/fakes.py's unit of work.

Rows live in the shared `tables` under the PostgreSQL tables' names (`org_domains`,
`invitations`); tests/contract holds them to domain.postgres_ownership's behaviour.
"""

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from domain.ownership import DomainMethod, Invitation, InvitationStatus, OrgDomain

Tables = dict[str, list[dict[str, Any]]]


class FakeDomains:
    def __init__(self, tables: Tables):
        self.rows = tables.setdefault("org_domains", [])

    def _row(self, org_id: str, domain: str) -> dict[str, Any] | None:
        return next((r for r in self.rows if (r["org_id"], r["domain"]) == (org_id, domain)), None)

    def get(self, org_id: str, domain: str) -> OrgDomain | None:
        row = self._row(org_id, domain)
        if row is None:
            return None
        return OrgDomain(**{**row, "method": DomainMethod(row["method"]) if row["method"] else None})

    def add_if_absent(self, org_id: str, domain: str, challenge: str) -> None:
        if self._row(org_id, domain) is None:
            self.rows.append({
                "org_id": org_id, "domain": domain, "challenge": challenge, "verified_at": None, "method": None,
                "verified_by": None, "created_at": datetime.now(UTC),
            })  # fmt: skip

    def verifier(self, domain: str) -> str | None:
        return next((r["org_id"] for r in self.rows if r["domain"] == domain and r["verified_at"] is not None), None)

    def mark_verified(self, org_id: str, domain: str, *, method: str, actor: str, at: datetime) -> bool:
        row = self._row(org_id, domain)
        if row is None or row["verified_at"] is not None or self.verifier(domain) not in (None, org_id):
            return False  # the partial unique index: a domain is verified by at most one org
        row.update(verified_at=at, method=method, verified_by=actor)
        return True


class FakeInvitations:
    def __init__(self, tables: Tables):
        self.rows = tables.setdefault("invitations", [])

    def _find(self, **where: str) -> Invitation | None:
        for row in self.rows:
            if all(row[k] == v for k, v in where.items()):
                return Invitation(**{**row, "status": InvitationStatus(row["status"])})
        return None

    def add(self, invitation: Invitation) -> None:
        assert self._find(conflict_id=invitation.conflict_id) is None, "invitations.conflict_id is unique"
        self.rows.append(asdict(invitation))

    def for_conflict(self, conflict_id: str) -> Invitation | None:
        return self._find(conflict_id=conflict_id)

    def lock(self, invitation_id: str) -> Invitation | None:
        return self._find(id=invitation_id)

    def accept(self, invitation_id: str, at: datetime) -> None:
        for row in self.rows:
            if row["id"] == invitation_id and row["status"] == InvitationStatus.PENDING:
                row.update(status=InvitationStatus.ACCEPTED, accepted_at=at)
