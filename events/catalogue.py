"""Every event type: its CloudEvents `type`, the topic it travels on, its JSON Schema in
`schemas/events/`, and the frozen payload class that builds it.

Types are past-tense facts. Topic names are settings, so an event type names the *role* of its
topic (`TopicRole`). A payload class declares what every producer used to invent by hand: the
event's subject, its partition key (always prefixed by the org id, so one person's or group's
events stay in order), and the parts its deterministic id is derived from, so re-emitting the
same fact is the same event (consumers dedupe by id).
"""

from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, ClassVar, Self, TypeVar

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

# Sign-ins, from SSO or the app's own login (keyed by org and email).
LOGIN_SUCCEEDED = _t("LoginSucceeded", "login.succeeded")
LOGIN_REFUSED = _t("LoginRefused", "login.refused")

# Member-level facts the membership worker emits (keyed by member) for the billing worker.
MEMBER_LOGGED_IN_FIRST_TIME = _t("MemberLoggedInFirstTime", "member.first_login", TopicRole.MEMBERS)
MEMBER_DEACTIVATED = _t("MemberDeactivated", "member.deactivated", TopicRole.MEMBERS)
MEMBER_REACTIVATED = _t("MemberReactivated", "member.reactivated", TopicRole.MEMBERS)
MEMBER_REMOVED = _t("MemberRemoved", "member.removed", TopicRole.MEMBERS)

# Org admins' actions and the app's accounts (written by ingest).
ORG_SETTINGS_CHANGED = _t("OrgSettingsChanged", "org.settings.changed")
MEMBER_MANUALLY_ADDED = _t("MemberManuallyAdded", "member.manually_added")
ACCOUNT_REGISTERED = _t("AccountRegistered", "account.registered")
ACCOUNT_ACQUIRED = _t("AccountAcquired", "account.acquired")
CONFLICT_DISMISSED = _t("EmailConflictDismissed", "member.conflict.dismissed")

# Membership and conflict workers' facts about members.
MEMBER_CREATED = _t("MemberCreated", "member.created", TopicRole.MEMBERS)
EMAIL_CONFLICT_DETECTED = _t("EmailConflictDetected", "member.conflict.detected", TopicRole.MEMBERS)

# What billing systems consume, on the `billing` topic.
BILLING_FIRST_LOGIN = _t("BillingFirstLogin", "billing.member.first_login", TopicRole.BILLING)
BILLING_SEAT_RELEASED = _t("BillingSeatReleased", "billing.seat.released", TopicRole.BILLING)
BILLING_SEAT_RESTORED = _t("BillingSeatRestored", "billing.seat.restored", TopicRole.BILLING)


class Payload:
    """The typed body of one event type; `data()` is the CloudEvent's `data` as sent.

    `SUBJECT` and `KEY` are templates over the payload's fields (and `org_id`); the Kafka key is
    `<org id>:<KEY>`. `identity` says what the deterministic event id derives from."""

    KIND: ClassVar[EventType]
    SUBJECT: ClassVar[str]
    KEY: ClassVar[str]

    def address(self, org_id: str) -> tuple[str, str]:
        """The event's subject, and its Kafka key's part after `<org id>:`, from the templates;
        `{email_ci}` is the email lower-cased."""
        values = {**self.__dict__, "org_id": org_id}
        email = values.get("email")
        values["email_ci"] = email.lower() if isinstance(email, str) else email
        return self.SUBJECT.format_map(values), self.KEY.format_map(values)

    def identity(self, org_id: str, subject: str, occasion: object) -> tuple[object, ...]:
        """What the deterministic event id derives from; `occasion` tells repeated facts apart
        (a SCIM resource version, a transaction id, the causing event's id)."""
        return (self.KIND.type, org_id, subject, occasion)

    def data(self) -> dict[str, Any]:
        return dict(self.__dict__)  # a frozen dataclass's instance dict holds its fields, in order

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Self:
        """Read a payload back from an event's `data` (absent optional fields are None)."""
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})  # type: ignore[arg-type]


_P = TypeVar("_P", bound=Payload)


def _kind(base: type[_P], kind: EventType) -> type[_P]:
    """The payload class of one event type whose body is `base`'s."""
    return type(kind.name, (base,), {"KIND": kind, "__doc__": f"`{kind.type}`: {base.__doc__ or base.__name__}"})


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


UserCreated = _kind(_User, USER_CREATED)
UserUpdated = _kind(_User, USER_UPDATED)
UserDeactivated = _kind(_User, USER_DEACTIVATED)
UserReactivated = _kind(_User, USER_REACTIVATED)
UserDeleted = _kind(_User, USER_DELETED)


@dataclass(frozen=True)
class _Group(Payload):
    SUBJECT = "Groups/{group_id}"
    KEY = "{group_id}"
    group_id: str
    display_name: str | None
    external_id: str | None


GroupCreated = _kind(_Group, GROUP_CREATED)
GroupDeleted = _kind(_Group, GROUP_DELETED)


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


GroupMemberAdded = _kind(_GroupMember, GROUP_MEMBER_ADDED)
GroupMemberRemoved = _kind(_GroupMember, GROUP_MEMBER_REMOVED)


@dataclass(frozen=True)
class _Login(Payload):
    SUBJECT = "logins/{email_ci}"
    KEY = "{email_ci}"
    email: str
    method: str
    sso: bool
    jit: bool
    idp: str | None
    subject: str | None  # the IdP's stable id for the person
    logged_in_at: str


LoginSucceeded = _kind(_Login, LOGIN_SUCCEEDED)


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


MemberCreated = _kind(_MemberFact, MEMBER_CREATED)
MemberLoggedInFirstTime = _kind(_MemberFact, MEMBER_LOGGED_IN_FIRST_TIME)
MemberDeactivated = _kind(_MemberFact, MEMBER_DEACTIVATED)
MemberReactivated = _kind(_MemberFact, MEMBER_REACTIVATED)
MemberRemoved = _kind(_MemberFact, MEMBER_REMOVED)


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
    KIND = MEMBER_MANUALLY_ADDED
    SUBJECT = "logins/{email_ci}"
    KEY = "{email_ci}"
    email: str
    display_name: str | None
    actor: str


@dataclass(frozen=True)
class AccountRegistered(Payload):
    KIND = ACCOUNT_REGISTERED
    SUBJECT = "accounts/{account_id}"
    KEY = "{email_ci}"
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


AccountAcquired = _kind(_Resolution, ACCOUNT_ACQUIRED)
EmailConflictDismissed = _kind(_Resolution, CONFLICT_DISMISSED)


@dataclass(frozen=True)
class _BillingFact(Payload):
    """What billing systems consume: keyed by org and email, so one person's seat is in order."""

    SUBJECT = "members/{member_id}"
    KEY = "{email_ci}"
    org_id: str
    org_slug: str
    member_id: str
    email: str
    source: str | None
    occurred_at: str


@dataclass(frozen=True)
class BillingFirstLogin(_BillingFact):
    """Once per person and org, ever: the id derives from (org, email) alone."""

    KIND = BILLING_FIRST_LOGIN
    first_login_at: str

    def identity(self, org_id: str, subject: str, occasion: object) -> tuple[object, ...]:
        return (self.KIND.type, org_id, self.email.lower())


@dataclass(frozen=True)
class _Seat(_BillingFact):
    reason: str

    def identity(self, org_id: str, subject: str, occasion: object) -> tuple[object, ...]:
        return ("seat", occasion)  # occasion: the member event that moved the seat


BillingSeatReleased = _kind(_Seat, BILLING_SEAT_RELEASED)
BillingSeatRestored = _kind(_Seat, BILLING_SEAT_RESTORED)

PAYLOADS: tuple[type[Payload], ...] = (
    UserCreated, UserUpdated, UserDeactivated, UserReactivated, UserDeleted,
    GroupCreated, GroupRenamed, GroupDeleted, GroupMemberAdded, GroupMemberRemoved,
    LoginSucceeded, LoginRefused,
    MemberLoggedInFirstTime, MemberDeactivated, MemberReactivated, MemberRemoved,
    BillingFirstLogin, BillingSeatReleased, BillingSeatRestored,
    OrgSettingsChanged, MemberManuallyAdded, AccountRegistered, AccountAcquired, EmailConflictDismissed,
    MemberCreated, EmailConflictDetected,
)  # fmt: skip
ALL: tuple[EventType, ...] = tuple(p.KIND for p in PAYLOADS)
BY_TYPE: dict[str, EventType] = {e.type: e for e in ALL}
PAYLOAD_OF: dict[EventType, type[Payload]] = {p.KIND: p for p in PAYLOADS}
