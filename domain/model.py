"""The values the domain works on (statuses as enums, the rows its rules change) and its rules, once, as
pure functions: what a SCIM user event does to a member's status, which member event a status change
announces, where a billing seat goes, and what counts as an email conflict."""

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from events import catalogue as c


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


@dataclass
class Seat:
    """The billing fact of a person in an org: first billed once, ever; the seat can be released and restored."""

    org_id: str
    email_ci: str
    member_id: str
    first_login_at: datetime
    first_login_event_id: str
    seat_active: bool


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
    (S.DEACTIVATED, S.ACTIVE): c.MEMBER_REACTIVATED,
}

# the member events that move a billed seat, and the reason billing systems see
SEAT_MOVES = {
    c.MEMBER_DEACTIVATED: (False, "deactivated"),
    c.MEMBER_REMOVED: (False, "removed"),
    c.MEMBER_REACTIVATED: (True, "reactivated"),
}


def email_of(user: dict[str, Any]) -> str | None:
    """A SCIM user event's email: its `email`, else its `user_name` when that is an address."""
    user_name = user.get("user_name") or ""
    return user.get("email") or (user_name if "@" in user_name else None)


def status_after(kind: c.EventType, active: bool, first_login_at: datetime | None) -> MemberStatus:
    """The member status a SCIM user event leaves."""
    if kind is c.USER_DELETED:
        return S.REMOVED
    if not active:
        return S.DEACTIVATED
    return S.ACTIVE if first_login_at else S.PROVISIONED


def transition(before: MemberStatus | None, after: MemberStatus) -> c.EventType | None:
    """The member event announcing a status change, if the change is one billing cares about."""
    return _TRANSITIONS.get((before, after)) if before is not None else None


def counts_as_first_login(status: MemberStatus, first_login_at: datetime | None) -> bool:
    """A sign-in is a member's first while they never signed in and are not deactivated or removed."""
    return first_login_at is None and status in (S.PROVISIONED, S.ACTIVE)


def is_outside_account(
    member_org_id: str, member_account_id: str | None, member_status: MemberStatus, account_id: str, account_org_id: str | None
) -> bool:
    """An email conflict: the member's email is an account the org does not hold already."""
    if member_status == S.REMOVED or member_account_id == account_id:
        return False
    return account_org_id != member_org_id


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def is_email(value: str) -> bool:
    """A plausible email address (RFC 5321 caps it at 320 characters); emails are compared lower-cased."""
    return bool(_EMAIL.match(value)) and len(value) <= 320


SIGN_IN_REFUSED = "SSO provisioning is off for this organisation and you are not a member yet; ask its admin to add you."


def accepts_sign_in(*, sso: bool, sso_provisioning: bool, known: bool) -> bool:
    """The app's own logins always count; an SSO sign-in counts for a member or SCIM user, or for
    anyone while the org provisions through SSO (just in time)."""
    return not sso or sso_provisioning or known
