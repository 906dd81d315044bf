"""Every event type, the topic it travels on, and its JSON Schema in `schemas/events/`.

Types are CloudEvents `type` values; names are past-tense facts. Topic names are settings,
so this catalogue names the *role* of the topic ("lifecycle", "billing").
"""

from dataclasses import dataclass

PREFIX = "io.provisioner"


@dataclass(frozen=True)
class EventType:
    name: str
    type: str
    topic_role: str
    schema: str


def _t(name: str, suffix: str, topic_role: str = "lifecycle") -> EventType:
    return EventType(name, f"{PREFIX}.{suffix}", topic_role, f"{suffix}.json")


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
MEMBER_LOGGED_IN_FIRST_TIME = _t("MemberLoggedInFirstTime", "member.first_login", "members")
MEMBER_DEACTIVATED = _t("MemberDeactivated", "member.deactivated", "members")
MEMBER_REACTIVATED = _t("MemberReactivated", "member.reactivated", "members")
MEMBER_REMOVED = _t("MemberRemoved", "member.removed", "members")

# Org admins' actions and the app's accounts (written by ingest).
ORG_SETTINGS_CHANGED = _t("OrgSettingsChanged", "org.settings.changed")
MEMBER_MANUALLY_ADDED = _t("MemberManuallyAdded", "member.manually_added")
ACCOUNT_REGISTERED = _t("AccountRegistered", "account.registered")
ACCOUNT_ACQUIRED = _t("AccountAcquired", "account.acquired")
CONFLICT_DISMISSED = _t("EmailConflictDismissed", "member.conflict.dismissed")

# Membership and conflict workers' facts about members.
MEMBER_CREATED = _t("MemberCreated", "member.created", "members")
EMAIL_CONFLICT_DETECTED = _t("EmailConflictDetected", "member.conflict.detected", "members")

# What billing systems consume, on the `billing` topic.
BILLING_FIRST_LOGIN = _t("BillingFirstLogin", "billing.member.first_login", "billing")
BILLING_SEAT_RELEASED = _t("BillingSeatReleased", "billing.seat.released", "billing")
BILLING_SEAT_RESTORED = _t("BillingSeatRestored", "billing.seat.restored", "billing")

ALL: tuple[EventType, ...] = (
    USER_CREATED,
    USER_UPDATED,
    USER_DEACTIVATED,
    USER_REACTIVATED,
    USER_DELETED,
    GROUP_CREATED,
    GROUP_RENAMED,
    GROUP_DELETED,
    GROUP_MEMBER_ADDED,
    GROUP_MEMBER_REMOVED,
    LOGIN_SUCCEEDED,
    LOGIN_REFUSED,
    MEMBER_LOGGED_IN_FIRST_TIME,
    MEMBER_DEACTIVATED,
    MEMBER_REACTIVATED,
    MEMBER_REMOVED,
    BILLING_FIRST_LOGIN,
    BILLING_SEAT_RELEASED,
    BILLING_SEAT_RESTORED,
    ORG_SETTINGS_CHANGED,
    MEMBER_MANUALLY_ADDED,
    ACCOUNT_REGISTERED,
    ACCOUNT_ACQUIRED,
    CONFLICT_DISMISSED,
    MEMBER_CREATED,
    EMAIL_CONFLICT_DETECTED,
)
BY_TYPE: dict[str, EventType] = {e.type: e for e in ALL}
