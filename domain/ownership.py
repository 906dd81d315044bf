"""Who may take an account into an org: verified email domains, invitations, and the acquisition rule.

An org acquires an account only when the account belongs to no org and the org has verified the
domain of the account's email; otherwise it can invite the person, whose consent (through the
app) makes the account the member. A refusal never says anything about another org.
"""

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import idna

CHALLENGE_PREFIX = "_provisioner-challenge."
CHALLENGE_VALUE = "provisioner-domain-verification={token}"
MAX_DOMAIN_LENGTH = 253  # RFC 1035's limit on a name in text form, without the trailing dot

# What an admin is told when acquiring is not allowed. NOT_VERIFIED is the answer whenever the
# org has not verified the domain, whether some other org owns the account or not, so a refusal
# cannot be used to learn where an account is.
NOT_VERIFIED = (
    "this organisation has not verified the email domain {domain}, so it cannot acquire this account. "
    "Verify the domain to acquire accounts on it, or invite the person: the account joins once they accept."
)
OWNED_ELSEWHERE = (
    "this account belongs to another organisation, so it cannot be acquired. "
    "Invite the person instead: the account can join once it has left the other organisation."
)
OWNED_HERE = "this account already belongs to this organisation (as another member); dismiss this conflict"


class DomainMethod(StrEnum):
    """How a domain was verified: its DNS TXT challenge was found, or support staff vouched for it."""

    DNS = "dns"
    SUPPORT = "support"


class InvitationStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"


@dataclass(frozen=True)
class OrgDomain:
    """An email domain an org claims; verified once `verified_at` is set."""

    org_id: str
    domain: str
    challenge: str
    verified_at: datetime | None
    method: DomainMethod | None
    verified_by: str | None
    created_at: datetime

    @property
    def record_name(self) -> str:
        return CHALLENGE_PREFIX + self.domain

    @property
    def record_value(self) -> str:
        return CHALLENGE_VALUE.format(token=self.challenge)


@dataclass(frozen=True)
class Invitation:
    """An org's invitation to the person behind an account, about one conflict."""

    id: str
    org_id: str
    conflict_id: str
    member_id: str
    account_id: str
    status: InvitationStatus
    created_at: datetime
    accepted_at: datetime | None
    actor: str


class DomainError(ValueError):
    """Not a domain name an org can verify."""


_NUMERIC_TLD = re.compile(r"^[0-9]+$")


def normalise_domain(value: str) -> str:
    """A hostname with at least one dot, lower-cased and in IDNA A-labels (`Bücher.Example` ->
    `xn--bcher-kva.example`), at most 253 characters; anything else is a DomainError."""
    name = (value or "").strip().removesuffix(".")
    if "." not in name:
        raise DomainError("a domain needs at least two labels, like example.com")
    try:
        ascii_name = idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise DomainError(f"not a valid domain name ({exc})") from None
    if len(ascii_name) > MAX_DOMAIN_LENGTH:
        raise DomainError(f"a domain name has at most {MAX_DOMAIN_LENGTH} characters")
    if _NUMERIC_TLD.match(ascii_name.rsplit(".", 1)[1]):
        raise DomainError("an IP address is not a domain name")
    return ascii_name


def email_domain(email: str) -> str | None:
    """The normalised domain of an email address, or None when it has no valid one."""
    _, at, domain = (email or "").rpartition("@")
    if not at:
        return None
    try:
        return normalise_domain(domain)
    except DomainError:
        return None


def acquisition_refusal(org_id: str, account_org_id: str | None, domain: str | None, verified_here: bool) -> str | None:
    """Why `org_id` may not acquire the account (None: it may). The domain check comes first, so
    an org that has not verified the domain gets the same answer whoever owns the account."""
    if not verified_here:
        return NOT_VERIFIED.format(domain=domain or "of this address")
    if account_org_id == org_id:
        return OWNED_HERE
    if account_org_id is not None:
        return OWNED_ELSEWHERE
    return None


def may_join(invitation_org_id: str, account_org_id: str | None) -> bool:
    """An invitation, once accepted, may take an account that belongs to no org (or already to the inviting one)."""
    return account_org_id is None or account_org_id == invitation_org_id
