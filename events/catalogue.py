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
)
BY_TYPE: dict[str, EventType] = {e.type: e for e in ALL}
