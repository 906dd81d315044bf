"""Every event type: its CloudEvents `type`, the topic it travels on, its JSON Schema in
`schemas/events/`, and the frozen payload class that builds it.

Types are past-tense facts. Topic names are settings, so an event type names the *role* of its
topic (`TopicRole`). A payload class declares what every producer used to invent by hand: the
event's subject, its partition key (always prefixed by the org id, so one person's or group's
events stay in order), and the parts its deterministic id is derived from, so re-emitting the
same fact is the same event (consumers dedupe by id).
"""

from dataclasses import dataclass
from enum import StrEnum

from events.credential_payloads import CredentialExpiringFact, CredentialFact, SsoConfiguredFact
from events.envelope import Payload as Payload  # re-exported: c.Payload
from events.envelope import kind_of

PREFIX = "io.provisioner"


class TopicRole(StrEnum):
    LIFECYCLE = "lifecycle"
    MEMBERS = "members"
    BILLING = "billing"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class EventType:
    name: str
    type: str
    topic_role: TopicRole
    schema: str


def _t(name: str, suffix: str, topic_role: TopicRole = TopicRole.LIFECYCLE) -> EventType:
    return EventType(name, f"{PREFIX}.{suffix}", topic_role, f"{suffix}.json")


# SCIM writes (ingest), keyed by the user or group they are about.
USER_CREATED = _t("UserCreated", "user.created")
USER_UPDATED = _t("UserUpdated", "user.updated")
USER_DEACTIVATED = _t("UserDeactivated", "user.deactivated")
USER_REACTIVATED = _t("UserReactivated", "user.reactivated")
USER_DELETED = _t("UserDeleted", "user.deleted")
GROUP_CREATED = _t("GroupCreated", "group.created")
GROUP_RENAMED = _t("GroupRenamed", "group.renamed")
GROUP_DELETED = _t("GroupDeleted", "group.deleted")
GROUP_MEMBER_ADDED = _t("GroupMemberAdded", "group.member.added")
GROUP_MEMBER_REMOVED = _t("GroupMemberRemoved", "group.member.removed")

# Sign-ins, from SSO or the app's own login (keyed by the member they resolved to at ingest, else by
# the sign-in's own id: never by an email).
LOGIN_SUCCEEDED = _t("LoginSucceeded", "login.succeeded")
LOGIN_REFUSED = _t("LoginRefused", "login.refused")

# Member-level facts the membership worker emits (keyed by member) for the billing worker.
MEMBER_LOGGED_IN_FIRST_TIME = _t("MemberLoggedInFirstTime", "member.first_login", TopicRole.MEMBERS)
MEMBER_DEACTIVATED = _t("MemberDeactivated", "member.deactivated", TopicRole.MEMBERS)
MEMBER_REACTIVATED = _t("MemberReactivated", "member.reactivated", TopicRole.MEMBERS)
MEMBER_REMOVED = _t("MemberRemoved", "member.removed", TopicRole.MEMBERS)
MEMBER_RETURNED = _t("MemberReturned", "member.returned", TopicRole.MEMBERS)
MEMBER_ERASED = _t("MemberErased", "member.erased", TopicRole.MEMBERS)

# Org admins' actions and the app's accounts (written by ingest).
ORG_SETTINGS_CHANGED = _t("OrgSettingsChanged", "org.settings.changed")
MEMBER_MANUALLY_ADDED = _t("MemberManuallyAdded", "member.manually_added")
MEMBER_MANUALLY_REMOVED = _t("MemberManuallyRemoved", "member.manually_removed")
DOMAIN_VERIFIED = _t("DomainVerified", "org.domain.verified")
ACCOUNT_INVITED = _t("AccountInvited", "account.invited")
INVITATION_ACCEPTED = _t("InvitationAccepted", "account.invitation.accepted")
ACCOUNT_REGISTERED = _t("AccountRegistered", "account.registered")
ACCOUNT_ACQUIRED = _t("AccountAcquired", "account.acquired")
CONFLICT_DISMISSED = _t("EmailConflictDismissed", "member.conflict.dismissed")
CREDENTIAL_ISSUED = _t("CredentialIssued", "credential.issued")
CREDENTIAL_REVOKED = _t("CredentialRevoked", "credential.revoked")
CREDENTIAL_EXPIRING = _t("CredentialExpiring", "credential.expiring")
ORG_SSO_CONFIGURED = _t("OrgSsoConfigured", "org.sso.configured")

# Membership and conflict workers' facts about members.
MEMBER_CREATED = _t("MemberCreated", "member.created", TopicRole.MEMBERS)
EMAIL_CONFLICT_DETECTED = _t("EmailConflictDetected", "member.conflict.detected", TopicRole.MEMBERS)

# What billing systems consume, on the `billing` topic.
BILLING_FIRST_LOGIN = _t("BillingFirstLogin", "billing.member.first_login", TopicRole.BILLING)
BILLING_SEAT_RELEASED = _t("BillingSeatReleased", "billing.seat.released", TopicRole.BILLING)
BILLING_SEAT_RESTORED = _t("BillingSeatRestored", "billing.seat.restored", TopicRole.BILLING)
BILLING_SEAT_OVERAGE = _t("BillingSeatOverage", "billing.seat.overage", TopicRole.BILLING)
BILLING_MEMBER_ERASED = _t("BillingMemberErased", "billing.member.erased", TopicRole.BILLING)


@dataclass(frozen=True)
class _User(Payload):
    SUBJECT = "Users/{user_id}"
    KEY = "{user_id}"
    user_id: str
    user_name: str | None
    external_id: str | None
    display_name: str | None
    given_name: str | None
    family_name: str | None
    email: str | None
    active: bool


UserCreated = kind_of(_User, USER_CREATED)
UserUpdated = kind_of(_User, USER_UPDATED)
UserDeactivated = kind_of(_User, USER_DEACTIVATED)
UserReactivated = kind_of(_User, USER_REACTIVATED)
UserDeleted = kind_of(_User, USER_DELETED)


@dataclass(frozen=True)
class _Group(Payload):
    SUBJECT = "Groups/{group_id}"
    KEY = "{group_id}"
    group_id: str
    display_name: str | None
    external_id: str | None


GroupCreated = kind_of(_Group, GROUP_CREATED)
GroupDeleted = kind_of(_Group, GROUP_DELETED)


@dataclass(frozen=True)
class GroupRenamed(_Group):
    KIND = GROUP_RENAMED
    previous_display_name: str | None


@dataclass(frozen=True)
class _GroupMember(_Group):
    """Keyed by the member, so a membership change stays in order with that user's lifecycle."""

    SUBJECT = "Groups/{group_id}/members/{member_id}"
    KEY = "{member_id}"
    member_id: str
    member_type: str


GroupMemberAdded = kind_of(_GroupMember, GROUP_MEMBER_ADDED)
GroupMemberRemoved = kind_of(_GroupMember, GROUP_MEMBER_REMOVED)


@dataclass(frozen=True)
class _Login(Payload):
    """Keyed by the member the sign-in resolved to at ingest (so one member's sign-ins stay in
    order), else by the sign-in's own id; the email is data only."""

    SUBJECT = "members/{member_id}"
    KEY = "{member_id}"
    sign_in_id: str
    member_id: str | None  # the member it resolved to at ingest, if any (the worker resolves again)
    email: str
    method: str
    sso: bool
    jit: bool
    idp: str | None
    subject: str | None  # the IdP's stable id for the person
    logged_in_at: str

    def address(self, org_id: str) -> tuple[str, str]:
        if self.member_id:
            return super().address(org_id)
        return f"sign-ins/{self.sign_in_id}", self.sign_in_id


LoginSucceeded = kind_of(_Login, LOGIN_SUCCEEDED)


@dataclass(frozen=True)
class LoginRefused(_Login):
    KIND = LOGIN_REFUSED
    reason: str


@dataclass(frozen=True)
class _MemberFact(Payload):
    """A member's fact, caused by another event: its id derives from that cause."""

    SUBJECT = "members/{member_id}"
    KEY = "{member_id}"
    member_id: str
    email: str | None
    source: str
    status: str
    first_login_at: str | None
    cause_event_id: str

    def identity(self, org_id: str, subject: str, occasion: object) -> tuple[object, ...]:
        return (self.KIND.type, self.cause_event_id, self.member_id)


MemberCreated = kind_of(_MemberFact, MEMBER_CREATED)
MemberLoggedInFirstTime = kind_of(_MemberFact, MEMBER_LOGGED_IN_FIRST_TIME)
MemberDeactivated = kind_of(_MemberFact, MEMBER_DEACTIVATED)
MemberReactivated = kind_of(_MemberFact, MEMBER_REACTIVATED)
MemberRemoved = kind_of(_MemberFact, MEMBER_REMOVED)
MemberReturned = kind_of(_MemberFact, MEMBER_RETURNED)  # first sign-in since a reactivation


@dataclass(frozen=True)
class EmailConflictDetected(Payload):
    """Once per (member, account) pair, ever."""

    KIND = EMAIL_CONFLICT_DETECTED
    SUBJECT = "members/{member_id}"
    KEY = "{member_id}"
    conflict_id: str
    member_id: str
    account_id: str
    email: str | None
    error: str

    def identity(self, org_id: str, subject: str, occasion: object) -> tuple[object, ...]:
        return (self.KIND.type, self.member_id, self.account_id)


@dataclass(frozen=True)
class OrgSettingsChanged(Payload):
    KIND = ORG_SETTINGS_CHANGED
    SUBJECT = "orgs/{org_id}"
    KEY = "{org_id}"
    before: dict[str, bool]
    after: dict[str, bool]
    actor: str


@dataclass(frozen=True)
class MemberManuallyAdded(Payload):
    """The member id is assigned by the admin's request, so the event is keyed by it."""

    KIND = MEMBER_MANUALLY_ADDED
    SUBJECT = "members/{member_id}"
    KEY = "{member_id}"
    member_id: str
    email: str
    display_name: str | None
    actor: str


@dataclass(frozen=True)
class MemberManuallyRemoved(Payload):
    """An admin removed a member that no SCIM client manages (added by hand or just in time by SSO)."""

    KIND = MEMBER_MANUALLY_REMOVED
    SUBJECT = "members/{member_id}"
    KEY = "{member_id}"
    member_id: str
    actor: str


@dataclass(frozen=True)
class DomainVerified(Payload):
    """An email domain the org proved it controls (`dns`) or support vouched for (`support`)."""

    KIND = DOMAIN_VERIFIED
    SUBJECT = "orgs/{org_id}/domains/{domain}"
    KEY = "{org_id}"
    domain: str
    method: str
    actor: str


@dataclass(frozen=True)
class _Invitation(Payload):
    SUBJECT = "members/{member_id}"
    KEY = "{member_id}"
    invitation_id: str
    conflict_id: str
    member_id: str
    account_id: str


# the person consented (through the app): their account is the member now
InvitationAccepted = kind_of(_Invitation, INVITATION_ACCEPTED)


@dataclass(frozen=True)
class AccountInvited(_Invitation):
    """An org invited the person behind an account it may not acquire; the app asks them to consent."""

    KIND = ACCOUNT_INVITED
    actor: str


@dataclass(frozen=True)
class MemberErased(Payload):
    """A person's personal data was erased from the provisioner; consumers erase what they hold."""

    KIND = MEMBER_ERASED
    SUBJECT = "members/{member_id}"
    KEY = "{member_id}"
    member_id: str
    actor: str

    def identity(self, org_id: str, subject: str, occasion: object) -> tuple[object, ...]:
        return (self.KIND.type, org_id, self.member_id)


@dataclass(frozen=True)
class AccountRegistered(Payload):
    KIND = ACCOUNT_REGISTERED
    SUBJECT = "accounts/{account_id}"
    KEY = "{account_id}"
    account_id: str
    email: str


@dataclass(frozen=True)
class _Resolution(Payload):
    SUBJECT = "members/{member_id}"
    KEY = "{member_id}"
    conflict_id: str
    member_id: str
    account_id: str
    email: str
    actor: str


AccountAcquired = kind_of(_Resolution, ACCOUNT_ACQUIRED)
EmailConflictDismissed = kind_of(_Resolution, CONFLICT_DISMISSED)


@dataclass(frozen=True)
class _BillingFact(Payload):
    """What billing systems consume: keyed by org and member id, so one member's seat is in order;
    no personal data. The id derives from the member's place in the seat ledger (`occasion`: the
    ledger's version, also the event's `resourceversion`), so a re-emission is the same event."""

    SUBJECT = "members/{member_id}"
    KEY = "{member_id}"
    org_id: str
    org_slug: str
    member_id: str
    source: str | None
    occurred_at: str

    def identity(self, org_id: str, subject: str, occasion: object) -> tuple[object, ...]:
        return (self.KIND.type, org_id, self.member_id, occasion)


@dataclass(frozen=True)
class BillingFirstLogin(_BillingFact):
    """Once per member, ever: the id derives from (org, member) alone."""

    KIND = BILLING_FIRST_LOGIN
    first_login_at: str

    def identity(self, org_id: str, subject: str, occasion: object) -> tuple[object, ...]:
        return (self.KIND.type, org_id, self.member_id)


@dataclass(frozen=True)
class _Seat(_BillingFact):
    reason: str


BillingSeatReleased = kind_of(_Seat, BILLING_SEAT_RELEASED)
BillingSeatRestored = kind_of(_Seat, BILLING_SEAT_RESTORED)


@dataclass(frozen=True)
class BillingSeatOverage(_BillingFact):
    """A seat billed beyond the org's seat limit (policy `allow`): `seats_held` after it, and the limit."""

    KIND = BILLING_SEAT_OVERAGE
    seats_held: int
    seat_limit: int


@dataclass(frozen=True)
class BillingMemberErased(_BillingFact):
    """The member's personal data was erased: a billing system erases what it holds about them and
    keeps only the ids and amounts it must keep by law."""

    KIND = BILLING_MEMBER_ERASED

    def identity(self, org_id: str, subject: str, occasion: object) -> tuple[object, ...]:
        return (self.KIND.type, org_id, self.member_id)


CredentialIssued, CredentialRevoked = kind_of(CredentialFact, CREDENTIAL_ISSUED), kind_of(CredentialFact, CREDENTIAL_REVOKED)
OrgSsoConfigured = kind_of(SsoConfiguredFact, ORG_SSO_CONFIGURED)
CredentialExpiring = kind_of(CredentialExpiringFact, CREDENTIAL_EXPIRING)

PAYLOADS: tuple[type[Payload], ...] = (
    UserCreated, UserUpdated, UserDeactivated, UserReactivated, UserDeleted,
    GroupCreated, GroupRenamed, GroupDeleted, GroupMemberAdded, GroupMemberRemoved,
    LoginSucceeded, LoginRefused,
    MemberLoggedInFirstTime, MemberDeactivated, MemberReactivated, MemberRemoved, MemberReturned, MemberErased,
    BillingFirstLogin, BillingSeatReleased, BillingSeatRestored, BillingSeatOverage, BillingMemberErased,
    OrgSettingsChanged, MemberManuallyAdded, MemberManuallyRemoved, AccountRegistered, AccountAcquired,
    EmailConflictDismissed, DomainVerified, AccountInvited, InvitationAccepted,
    MemberCreated, EmailConflictDetected, CredentialIssued, CredentialRevoked, OrgSsoConfigured, CredentialExpiring,
)  # fmt: skip
ALL: tuple[EventType, ...] = tuple(p.KIND for p in PAYLOADS)
BY_TYPE: dict[str, EventType] = {e.type: e for e in ALL}
PAYLOAD_OF: dict[EventType, type[Payload]] = {p.KIND: p for p in PAYLOADS}
