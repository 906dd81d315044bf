"""The values the domain works on (statuses as enums, the rows its rules change) and its rules, once:
what a SCIM user event does to a member's status, which member event a status change announces,
where a billing seat goes, what counts as an email conflict (pure functions), and who a sign-in
is and whether it may take a seat (read through the unit of work's ports)."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import email_validator

from events import catalogue as c

if TYPE_CHECKING:  # the rules of sign-ins read through the unit of work's ports
    from domain.orgs import Org
    from domain.uow import UnitOfWork


class MemberStatus(StrEnum):
    """A member's lifecycle: pushed or added (`provisioned`), signed in (`active`), `deactivated`, `removed`."""

    PROVISIONED = "provisioned"
    ACTIVE = "active"
    DEACTIVATED = "deactivated"
    REMOVED = "removed"


CONFLICT = "conflict"  # shown instead of the status while an email conflict is open (never stored)


class Source(StrEnum):
    """How a member came to be, or where an activity came from."""

    SCIM = "scim"
    SSO = "sso"
    MANUAL = "manual"
    APP = "app"


class ConflictStatus(StrEnum):
    OPEN = "open"
    ACQUIRED = "acquired"
    DISMISSED = "dismissed"


class Outcome(StrEnum):
    """What applying one event did (a metric label and the runtime's tally)."""

    APPLIED = "applied"
    STALE = "stale"
    IGNORED = "ignored"
    PENDING = "pending"
    DUPLICATE = "duplicate"
    DEAD_LETTERED = "dead_lettered"


@dataclass
class Member:
    """A person's membership of one org; `seq` is the newest SCIM version applied, `version` counts
    the member events announced."""

    id: str
    org_id: str
    scim_user_id: str | None
    user_name: str | None
    email: str | None
    email_ci: str | None
    display_name: str | None
    status: MemberStatus
    source: Source
    seq: int = 0
    version: int = 0
    first_login_at: datetime | None = None
    account_id: str | None = None
    conflict_id: str | None = None
    external_id: str | None = None
    given_name: str | None = None
    family_name: str | None = None


class SeatState(StrEnum):
    """A billed member's seat: `held` (billed) or `released` (not billed until it is restored)."""

    HELD = "held"
    RELEASED = "released"


class SeatPolicy(StrEnum):
    """What a sign-in that would take a seat beyond the org's seat limit does."""

    REFUSE = "refuse"  # refused; the member stays provisioned
    ALLOW = "allow"  # billed, with a `billing.seat.overage`


@dataclass(frozen=True)
class Seat:
    """A member's line in the seat ledger: billed once, ever (version 1, the first login); then
    released and restored in turn, each move one version more."""

    org_id: str
    member_id: str
    state: SeatState
    version: int
    first_login_at: datetime
    first_login_event_id: str


@dataclass(frozen=True)
class SecurityEvent:
    """A signal for the operator's receiver (a CAEP `session-revoked`), staged for delivery."""

    jti: str
    org_id: str
    member_id: str
    event_type: str
    reason: str  # deactivated | removed
    occurred_at: datetime  # when the change that caused it was recorded


@dataclass(frozen=True)
class Account:
    """A SaaS account; `org_id` is the org that owns it, if any."""

    id: str
    email: str
    email_ci: str
    org_id: str | None


@dataclass(frozen=True)
class Conflict:
    """An email conflict: a member whose email is an account outside the org."""

    id: str
    org_id: str
    member_id: str
    account_id: str
    email_ci: str
    status: ConflictStatus


@dataclass(frozen=True)
class PendingLogin:
    """A sign-in that arrived before its member existed (SCIM create still in flight)."""

    org_id: str
    email_ci: str
    event_id: str
    logged_in_at: datetime
    method: str
    sign_in_id: str | None = None


@dataclass(frozen=True)
class Activity:
    """One line of a member's recent activity."""

    org_id: str
    member_id: str
    event_id: str
    type: str
    source: Source
    summary: dict[str, object]


@dataclass(frozen=True)
class Link:
    """Whether a SCIM user is in a group, as of group version `seq`."""

    org_id: str
    group_id: str
    scim_user_id: str
    present: bool
    seq: int


# -- rules ------------------------------------------------------------------------------------

S = MemberStatus

# The SCIM user events the membership worker applies to a member.
USER_EVENTS = frozenset({c.USER_CREATED, c.USER_UPDATED, c.USER_DEACTIVATED, c.USER_REACTIVATED, c.USER_DELETED})
LINK_EVENTS = frozenset({c.GROUP_MEMBER_ADDED, c.GROUP_MEMBER_REMOVED})
GROUP_EVENTS = frozenset({c.GROUP_CREATED, c.GROUP_RENAMED, c.GROUP_DELETED})

# status before -> status after: the member event the transition announces
_TRANSITIONS = {
    (S.PROVISIONED, S.DEACTIVATED): c.MEMBER_DEACTIVATED,
    (S.ACTIVE, S.DEACTIVATED): c.MEMBER_DEACTIVATED,
    (S.PROVISIONED, S.REMOVED): c.MEMBER_REMOVED,
    (S.ACTIVE, S.REMOVED): c.MEMBER_REMOVED,
    (S.DEACTIVATED, S.REMOVED): c.MEMBER_REMOVED,
    (S.DEACTIVATED, S.PROVISIONED): c.MEMBER_REACTIVATED,
    (S.REMOVED, S.PROVISIONED): c.MEMBER_REACTIVATED,  # re-created by the IdP, or back just in time
}

# the member events that move a billed seat: from which state, to which, and the reason billing
# systems see. A reactivated member's seat is restored at their next sign-in (`member.returned`),
# not at the reactivation: like a provisioned person, a reactivated one costs nothing until they
# use the product again.
SEAT_MOVES = {
    c.MEMBER_DEACTIVATED: (SeatState.HELD, SeatState.RELEASED, "deactivated"),
    c.MEMBER_REMOVED: (SeatState.HELD, SeatState.RELEASED, "removed"),
    c.MEMBER_RETURNED: (SeatState.RELEASED, SeatState.HELD, "reactivated"),
}


def email_of(user: dict[str, Any]) -> str | None:
    """A SCIM user event's email: its `email`, else its `user_name` when that is an address."""
    user_name = user.get("user_name") or ""
    return user.get("email") or (user_name if "@" in user_name else None)


def status_after(kind: c.EventType, active: bool, before: MemberStatus | None) -> MemberStatus:
    """The member status a SCIM user event leaves: a reactivated (or re-created) member is
    `provisioned` again until their next sign-in; an active one stays active."""
    if kind is c.USER_DELETED:
        return S.REMOVED
    if not active:
        return S.DEACTIVATED
    return S.ACTIVE if before == S.ACTIVE else S.PROVISIONED


def transition(before: MemberStatus | None, after: MemberStatus) -> c.EventType | None:
    """The member event announcing a status change, if the change is one billing cares about."""
    return _TRANSITIONS.get((before, after)) if before is not None else None


def sign_in_effect(status: MemberStatus, first_login_at: datetime | None) -> c.EventType | None:
    """What a sign-in means to billing: a provisioned member's first ever (`member.first_login`),
    or their first since a reactivation (`member.returned`); nothing for anyone else."""
    if status != S.PROVISIONED:
        return None
    return c.MEMBER_RETURNED if first_login_at else c.MEMBER_LOGGED_IN_FIRST_TIME


def takes_seat(member: "Member | None", *, jit: bool) -> bool:
    """Whether accepting a sign-in takes a seat: a provisioned member's, or a new member's (just in time)."""
    return member.status == S.PROVISIONED if member is not None else jit


def is_outside_account(
    member_org_id: str, member_account_id: str | None, member_status: MemberStatus, account_id: str, account_org_id: str | None
) -> bool:
    """An email conflict: the member's email is an account the org does not hold already."""
    if member_status == S.REMOVED or member_account_id == account_id:
        return False
    return account_org_id != member_org_id


def is_email(value: str) -> bool:
    """A syntactically valid address where one is required (RFC 5322/6531 as email-validator reads
    them: no quoted local parts, no IP-literal domains, a dotted domain; the `.test` domain allowed),
    at most 320 characters (RFC 5321); syntax only, no DNS. Emails are compared lower-cased."""
    if len(value) > 320:
        return False
    try:
        email_validator.validate_email(value, check_deliverability=False, test_environment=True)
    except email_validator.EmailNotValidError:
        return False
    return True


SIGN_IN_REFUSED = "SSO provisioning is off for this organisation and you are not a member yet; ask its admin to add you."


SEAT_LIMIT_REACHED = (
    "This organisation has no free seat: its plan's {limit} seats are all in use. "
    "Ask its admin to free a seat or raise the seat limit."
)


def accepts_sign_in(*, sso: bool, sso_provisioning: bool, known: bool) -> bool:
    """The app's own logins always count; an SSO sign-in counts for a member or SCIM user, or for
    anyone while the org provisions through SSO (just in time)."""
    return not sso or sso_provisioning or known


# -- who a sign-in is, and whether it may take a seat ------------------------------------------
#
# The rules ingest (answering the app) and the membership worker (applying the sign-in) share.
# Matching order, first match wins:
# 1. the IdP binding: the member bound to this (issuer, subject) at an earlier sign-in through that
#    IdP (OIDC `iss` + `sub`, SAML issuer + NameID), whatever their email is now;
# 2. the live member holding the email now (compared case-insensitively), unless that member is bound
#    to another subject of the same IdP (then the address was given to someone else at the IdP);
# 3. nobody: under just-in-time provisioning a new member is created (and bound); otherwise the
#    sign-in waits for its member (SCIM create still in flight) or is refused (SSO, not a member).

# A claim older than this belongs to a sign-in whose event was never applied (dead-lettered): it
# stops counting, so a lost event cannot hold a seat for ever.
CLAIM_MAX_AGE_SECONDS = 900.0


def resolve_sign_in(
    uow: "UnitOfWork", org_id: str, email_ci: str, issuer: str | None, subject: str | None, *, lock: bool = True
) -> Member | None:
    """The member a sign-in is (see the matching order above). A member bound to the subject is
    returned even when removed: the same person came back (just-in-time provisioning revives them)."""
    if issuer and subject:
        bound = uow.identities.member_of(org_id, issuer, subject)
        member = uow.members.get(bound) if bound else None
        if member is not None and member.org_id == org_id:
            return member
    member = uow.members.live_by_email(org_id, email_ci, lock=lock)
    if member is not None and issuer and subject:
        other = uow.identities.subject_of(member.id, issuer)
        if other is not None and other != subject:
            return None
    return member


def seats_in_use(uow: "UnitOfWork", org_id: str) -> int:
    """Active members, plus sign-ins accepted for a seat but not applied yet."""
    return uow.members.count_active(org_id) + uow.seat_claims.count(org_id, max_age_seconds=CLAIM_MAX_AGE_SECONDS)


def refuses_seat(uow: "UnitOfWork", org: "Org") -> bool:
    """Whether the org refuses one more seat: a seat limit, the `refuse` policy, and every seat in use.
    The caller holds the org's row lock, so two sign-ins cannot both take the last seat."""
    if org.seat_limit is None or org.seat_policy == SeatPolicy.ALLOW:
        return False
    return seats_in_use(uow, org.id) >= org.seat_limit


def is_live(member: Member | None) -> bool:
    return member is not None and member.status != MemberStatus.REMOVED
