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
from typing import Any, ClassVar, Self

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
    """The typed body of one event type; `data()` is the CloudEvent's `data` as sent."""

    KIND: ClassVar[EventType]

    def cloudevent_subject(self, org_id: str) -> str:
        raise NotImplementedError

    def partition_key(self, org_id: str) -> str:
        """The Kafka key's part after `<org id>:`."""
        raise NotImplementedError

    def identity(self, org_id: str, occasion: object) -> tuple[object, ...]:
        """What the deterministic event id derives from; `occasion` tells repeated facts apart
        (a SCIM resource version, a transaction id, the causing event's id)."""
        return (self.KIND.type, org_id, self.cloudevent_subject(org_id), occasion)

    def data(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Self:
        """Read a payload back from an event's `data` (absent optional fields are None)."""
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class _User(Payload):
    user_id: str
    user_name: str | None
    external_id: str | None
    display_name: str | None
    given_name: str | None
    family_name: str | None
    email: str | None
    active: bool

    def cloudevent_subject(self, org_id: str) -> str:
        return f"Users/{self.user_id}"

    def partition_key(self, org_id: str) -> str:
        return self.user_id


class UserCreated(_User):
    KIND = USER_CREATED


class UserUpdated(_User):
    KIND = USER_UPDATED


class UserDeactivated(_User):
    KIND = USER_DEACTIVATED


class UserReactivated(_User):
    KIND = USER_REACTIVATED


class UserDeleted(_User):
    KIND = USER_DELETED


@dataclass(frozen=True)
class _Group(Payload):
    group_id: str
    display_name: str | None
    external_id: str | None

    def cloudevent_subject(self, org_id: str) -> str:
        return f"Groups/{self.group_id}"

    def partition_key(self, org_id: str) -> str:
        return self.group_id


class GroupCreated(_Group):
    KIND = GROUP_CREATED


class GroupDeleted(_Group):
    KIND = GROUP_DELETED


@dataclass(frozen=True)
class GroupRenamed(_Group):
    KIND = GROUP_RENAMED
    previous_display_name: str | None


@dataclass(frozen=True)
class _GroupMember(_Group):
    """Keyed by the member, so a membership change stays in order with that user's lifecycle."""

    member_id: str
    member_type: str

    def cloudevent_subject(self, org_id: str) -> str:
        return f"Groups/{self.group_id}/members/{self.member_id}"

    def partition_key(self, org_id: str) -> str:
        return self.member_id


class GroupMemberAdded(_GroupMember):
    KIND = GROUP_MEMBER_ADDED


class GroupMemberRemoved(_GroupMember):
    KIND = GROUP_MEMBER_REMOVED


@dataclass(frozen=True)
class _Login(Payload):
    email: str
    method: str
    sso: bool
    jit: bool
    idp: str | None
    subject: str | None  # the IdP's stable id for the person
    logged_in_at: str

    def cloudevent_subject(self, org_id: str) -> str:
        return f"logins/{self.email.lower()}"

    def partition_key(self, org_id: str) -> str:
        return self.email.lower()


class LoginSucceeded(_Login):
    KIND = LOGIN_SUCCEEDED


@dataclass(frozen=True)
class LoginRefused(_Login):
    KIND = LOGIN_REFUSED
    reason: str


@dataclass(frozen=True)
class _MemberFact(Payload):
    """A member's fact, caused by another event: its id derives from that cause."""

    member_id: str
    email: str | None
    source: str
    status: str
    first_login_at: str | None
    cause_event_id: str

    def cloudevent_subject(self, org_id: str) -> str:
        return f"members/{self.member_id}"

    def partition_key(self, org_id: str) -> str:
        return self.member_id

    def identity(self, org_id: str, occasion: object) -> tuple[object, ...]:
        return (self.KIND.type, self.cause_event_id, self.member_id)


class MemberCreated(_MemberFact):
    KIND = MEMBER_CREATED


class MemberLoggedInFirstTime(_MemberFact):
    KIND = MEMBER_LOGGED_IN_FIRST_TIME


class MemberDeactivated(_MemberFact):
    KIND = MEMBER_DEACTIVATED


class MemberReactivated(_MemberFact):
    KIND = MEMBER_REACTIVATED


class MemberRemoved(_MemberFact):
    KIND = MEMBER_REMOVED


@dataclass(frozen=True)
class EmailConflictDetected(Payload):
    """Once per (member, account) pair, ever."""

    KIND = EMAIL_CONFLICT_DETECTED
    conflict_id: str
    member_id: str
    account_id: str
    email: str | None
    error: str

    def cloudevent_subject(self, org_id: str) -> str:
        return f"members/{self.member_id}"

    def partition_key(self, org_id: str) -> str:
        return self.member_id

    def identity(self, org_id: str, occasion: object) -> tuple[object, ...]:
        return (self.KIND.type, self.member_id, self.account_id)


@dataclass(frozen=True)
class OrgSettingsChanged(Payload):
    KIND = ORG_SETTINGS_CHANGED
    before: dict[str, bool]
    after: dict[str, bool]
    actor: str

    def cloudevent_subject(self, org_id: str) -> str:
        return f"orgs/{org_id}"

    def partition_key(self, org_id: str) -> str:
        return org_id


@dataclass(frozen=True)
class MemberManuallyAdded(Payload):
    KIND = MEMBER_MANUALLY_ADDED
    email: str
    display_name: str | None
    actor: str

    def cloudevent_subject(self, org_id: str) -> str:
        return f"logins/{self.email.lower()}"

    def partition_key(self, org_id: str) -> str:
        return self.email.lower()


@dataclass(frozen=True)
class AccountRegistered(Payload):
    KIND = ACCOUNT_REGISTERED
    account_id: str
    email: str

    def cloudevent_subject(self, org_id: str) -> str:
        return f"accounts/{self.account_id}"

    def partition_key(self, org_id: str) -> str:
        return self.email.lower()


@dataclass(frozen=True)
class _Resolution(Payload):
    conflict_id: str
    member_id: str
    account_id: str
    email: str
    actor: str

    def cloudevent_subject(self, org_id: str) -> str:
        return f"members/{self.member_id}"

    def partition_key(self, org_id: str) -> str:
        return self.member_id


class AccountAcquired(_Resolution):
    KIND = ACCOUNT_ACQUIRED


class EmailConflictDismissed(_Resolution):
    KIND = CONFLICT_DISMISSED


@dataclass(frozen=True)
class _BillingFact(Payload):
    """What billing systems consume: keyed by org and email, so one person's seat is in order."""

    org_id: str
    org_slug: str
    member_id: str
    email: str
    source: str | None
    occurred_at: str

    def cloudevent_subject(self, org_id: str) -> str:
        return f"members/{self.member_id}"

    def partition_key(self, org_id: str) -> str:
        return self.email.lower()


@dataclass(frozen=True)
class BillingFirstLogin(_BillingFact):
    """Once per person and org, ever: the id derives from (org, email) alone."""

    KIND = BILLING_FIRST_LOGIN
    first_login_at: str

    def identity(self, org_id: str, occasion: object) -> tuple[object, ...]:
        return (self.KIND.type, org_id, self.email.lower())


@dataclass(frozen=True)
class _Seat(_BillingFact):
    reason: str

    def identity(self, org_id: str, occasion: object) -> tuple[object, ...]:
        return ("seat", occasion)  # occasion: the member event that moved the seat


class BillingSeatReleased(_Seat):
    KIND = BILLING_SEAT_RELEASED


class BillingSeatRestored(_Seat):
    KIND = BILLING_SEAT_RESTORED


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
