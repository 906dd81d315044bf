"""Who a sign-in is, and whether it may take a seat: the rules ingest (answering the app) and the
membership worker (applying the sign-in) share.

Matching order, first match wins:
1. the IdP binding: the member bound to this (issuer, subject) at an earlier sign-in through that
   IdP (OIDC `iss` + `sub`, SAML issuer + NameID), whatever their email is now;
2. the live member holding the email now (compared case-insensitively), unless that member is bound
   to another subject of the same IdP (then the address was given to someone else at the IdP);
3. nobody: under just-in-time provisioning a new member is created (and bound); otherwise the
   sign-in waits for its member (SCIM create still in flight) or is refused (SSO, not a member).
"""

from domain.model import Member, MemberStatus, SeatPolicy
from domain.orgs import Org
from domain.uow import UnitOfWork

# A claim older than this belongs to a sign-in whose event was never applied (dead-lettered): it
# stops counting, so a lost event cannot hold a seat for ever.
CLAIM_MAX_AGE_SECONDS = 900.0


def resolve(uow: UnitOfWork, org_id: str, email_ci: str, issuer: str | None, subject: str | None) -> Member | None:
    """The member a sign-in is (see the matching order above). A member bound to the subject is
    returned even when removed: the same person came back (just-in-time provisioning revives them)."""
    if issuer and subject:
        bound = uow.identities.member_of(org_id, issuer, subject)
        member = uow.members.get(bound) if bound else None
        if member is not None and member.org_id == org_id:
            return member
    member = uow.members.live_by_email(org_id, email_ci)
    if member is not None and issuer and subject:
        other = uow.identities.subject_of(member.id, issuer)
        if other is not None and other != subject:
            return None
    return member


def seats_in_use(uow: UnitOfWork, org_id: str) -> int:
    """Active members, plus sign-ins accepted for a seat but not applied yet."""
    return uow.members.count_active(org_id) + uow.seat_claims.count(org_id, max_age_seconds=CLAIM_MAX_AGE_SECONDS)


def refuses_seat(uow: UnitOfWork, org: Org) -> bool:
    """Whether the org refuses one more seat: a seat limit, the `refuse` policy, and every seat in use.
    The caller holds the org's row lock, so two sign-ins cannot both take the last seat."""
    if org.seat_limit is None or org.seat_policy == SeatPolicy.ALLOW:
        return False
    return seats_in_use(uow, org.id) >= org.seat_limit


def is_live(member: Member | None) -> bool:
    return member is not None and member.status != MemberStatus.REMOVED
