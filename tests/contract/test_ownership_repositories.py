"""The contract of the verified-domain and invitation repositories (and the account lock), on the
in-memory fakes and on PostgreSQL, with tests/contract/test_repositories.py's backends."""

import uuid
from datetime import UTC, datetime

import pytest

from domain.ownership import Invitation, InvitationStatus
from tests.contract import test_repositories

pytestmark = pytest.mark.contract

backend = test_repositories.backend  # the same two backends (a pytest fixture)
Backend = test_repositories.Backend
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def test_a_locked_account_reads_as_it_is_now(backend: Backend):
    account_id, org = str(uuid.uuid4()), backend.add_org()
    backend.add_account(account_id, "Lock@x.test")
    locked = backend.uow.accounts.lock(account_id)
    assert locked is not None and (locked.email, locked.email_ci, locked.org_id) == ("Lock@x.test", "lock@x.test", None)
    backend.uow.accounts.set_org(account_id, org)
    assert backend.uow.accounts.lock(account_id).org_id == org  # type: ignore[union-attr]
    assert backend.uow.accounts.lock(str(uuid.uuid4())) is None


def test_a_domain_is_claimed_once_per_org_and_verified_by_one_org_only(backend: Backend):
    repo, a, b = backend.uow.domains, backend.add_org(), backend.add_org()
    repo.add_if_absent(a, "x.test", "first")
    repo.add_if_absent(a, "x.test", "second")  # the claim keeps its challenge
    repo.add_if_absent(b, "x.test", "bee")
    claim = repo.get(a, "x.test")
    assert claim is not None and (claim.challenge, claim.verified_at, claim.method) == ("first", None, None)
    assert repo.get(a, "y.test") is None and repo.verifier("x.test") is None

    assert repo.mark_verified(a, "x.test", method="dns", actor="cli", at=T0)
    assert repo.verifier("x.test") == a
    verified = repo.get(a, "x.test")
    assert verified is not None and (verified.verified_at, verified.method, verified.verified_by) == (T0, "dns", "cli")
    assert not repo.mark_verified(a, "x.test", method="support", actor="again", at=T0)  # verified already: unchanged
    assert repo.get(a, "x.test") == verified
    # another org's claim can no longer be verified, and the unit of work goes on
    assert not repo.mark_verified(b, "x.test", method="support", actor="support:z", at=T0)
    assert repo.get(b, "x.test").verified_at is None  # type: ignore[union-attr]
    assert repo.verifier("x.test") == a
    assert not repo.mark_verified(b, "never-claimed.test", method="dns", actor="cli", at=T0)


def test_an_invitation_is_found_by_conflict_and_accepted_once(backend: Backend):
    uow, org = backend.uow, backend.add_org()
    member = test_repositories._member(org, scim="u1", email="inv@x.test")
    uow.members.add([member])
    account_id, conflict_id = str(uuid.uuid4()), str(uuid.uuid4())
    backend.add_account(account_id, "inv@x.test")
    uow.conflicts.add_if_new(
        conflict_id=conflict_id, org_id=org, member_id=member.id, account_id=account_id, email_ci="inv@x.test", error="taken"
    )
    invitation = Invitation(
        id=str(uuid.uuid4()), org_id=org, conflict_id=conflict_id, member_id=member.id, account_id=account_id,
        status=InvitationStatus.PENDING, created_at=T0, accepted_at=None, actor="cli",
    )  # fmt: skip
    assert uow.invitations.for_conflict(conflict_id) is None
    uow.invitations.add(invitation)
    assert uow.invitations.for_conflict(conflict_id) == invitation == uow.invitations.lock(invitation.id)
    assert uow.invitations.lock(str(uuid.uuid4())) is None
    later = datetime(2026, 3, 2, tzinfo=UTC)
    uow.invitations.accept(invitation.id, later)
    uow.invitations.accept(invitation.id, datetime(2026, 3, 3, tzinfo=UTC))  # accepted already: unchanged
    accepted = uow.invitations.lock(invitation.id)
    assert accepted is not None and (accepted.status, accepted.accepted_at) == (InvitationStatus.ACCEPTED, later)
