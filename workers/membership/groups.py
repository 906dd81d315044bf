"""Groups and group member links: a link is kept with the group version that set it, so an older
change never overwrites a newer one, and a link to a deleted group is stale."""

from domain.model import Link, Outcome
from domain.uow import LinkKey, UnitOfWork
from events import catalogue as c
from events.envelope import Event


def apply_group(uow: UnitOfWork, event: Event) -> Outcome:
    """A group created, renamed or deleted (deleting it drops its links)."""
    group_id = event.data["group_id"]
    current = uow.groups.seq_of(event.org_id, group_id)
    if current is not None and event.resource_version < current:
        return Outcome.STALE
    deleted = event.kind is c.GROUP_DELETED
    uow.groups.put(event.org_id, group_id, event.data.get("display_name"), event.resource_version, deleted)
    if deleted:
        uow.groups.unlink_group(event.org_id, group_id, event.resource_version)
    return Outcome.APPLIED


def apply_links(uow: UnitOfWork, events: list[Event]) -> list[Outcome]:
    """A run of member added/removed events: the newest event per link wins, older ones are superseded."""
    outcomes: dict[int, Outcome] = {}
    users = [(i, e) for i, e in enumerate(events) if e.data.get("member_type", "User") == "User"]
    for i, e in enumerate(events):
        if e.data.get("member_type", "User") != "User":
            outcomes[i] = Outcome.IGNORED
    deleted = uow.groups.deleted_at((e.org_id, e.data["group_id"]) for _, e in users)
    newest: dict[LinkKey, Event] = {}
    for i, e in users:
        gone = deleted.get((e.org_id, e.data["group_id"]))
        if gone is not None and e.resource_version <= gone:
            outcomes[i] = Outcome.STALE  # the group is gone (its deletion travelled on another partition)
            continue
        key = (e.org_id, e.data["group_id"], e.data["member_id"])
        if key not in newest or e.resource_version >= newest[key].resource_version:
            newest[key] = e
    written = uow.groups.put_links(
        [Link(k[0], k[1], k[2], e.kind is c.GROUP_MEMBER_ADDED, e.resource_version) for k, e in newest.items()]
    )
    for i, e in users:
        if i not in outcomes:
            linked = (e.org_id, e.data["group_id"], e.data["member_id"]) in written
            outcomes[i] = Outcome.APPLIED if linked else Outcome.STALE
    return [outcomes[i] for i in range(len(events))]
