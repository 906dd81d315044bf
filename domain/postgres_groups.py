"""The group and group-link repository on PostgreSQL (domain.uow's Groups), held by the unit of
work in domain.postgres: a link is written only when it is not older than the stored one."""

from collections.abc import Iterable

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert

from core.db import any_text, any_uuid
from core.tables import member_group_links, member_groups
from domain.model import Link
from domain.uow import GroupKey, LinkKey

_ORG_IDS = any_uuid("org_ids")


_GROUP_SEQ = (
    select(member_groups.c.seq)
    .where(member_groups.c.org_id == bindparam("org_id"), member_groups.c.group_id == bindparam("group_id"))
    .with_for_update()
)
_put_group = insert(member_groups)
_PUT_GROUP = _put_group.on_conflict_do_update(
    index_elements=["org_id", "group_id"],
    set_={
        "display_name": _put_group.excluded.display_name,
        "seq": _put_group.excluded.seq,
        "deleted": _put_group.excluded.deleted,
    },
)
_DELETED_GROUPS = select(member_groups.c.org_id, member_groups.c.group_id, member_groups.c.seq).where(
    member_groups.c.org_id == _ORG_IDS, member_groups.c.group_id == any_text("group_ids"), member_groups.c.deleted.is_(True)
)
_upsert_link = insert(member_group_links)
_PUT_LINKS = _upsert_link.on_conflict_do_update(
    index_elements=["org_id", "group_id", "scim_user_id"],
    set_={"present": _upsert_link.excluded.present, "seq": _upsert_link.excluded.seq},
    where=member_group_links.c.seq <= _upsert_link.excluded.seq,
).returning(member_group_links.c.org_id, member_group_links.c.group_id, member_group_links.c.scim_user_id)
_UNLINK_USER = (
    update(member_group_links)
    .where(member_group_links.c.org_id == bindparam("o"), member_group_links.c.scim_user_id == bindparam("u"))
    .values(present=False)
)
_UNLINK_GROUP = (
    update(member_group_links)
    .where(member_group_links.c.org_id == bindparam("o"), member_group_links.c.group_id == bindparam("g"))
    .values(present=False, seq=bindparam("s"))
)


class PgGroups:
    def __init__(self, conn: Connection):
        self.conn = conn

    def seq_of(self, org_id: str, group_id: str) -> int | None:
        return self.conn.execute(_GROUP_SEQ, {"org_id": org_id, "group_id": group_id}).scalar()

    def put(self, org_id: str, group_id: str, display_name: str | None, seq: int, deleted: bool) -> None:
        row = {"org_id": org_id, "group_id": group_id, "display_name": display_name, "seq": seq, "deleted": deleted}
        self.conn.execute(_PUT_GROUP, row)

    def deleted_at(self, keys: Iterable[GroupKey]) -> dict[GroupKey, int]:
        wanted = set(keys)
        if not wanted:
            return {}
        params = {"org_ids": sorted({o for o, _ in wanted}), "group_ids": sorted({g for _, g in wanted})}
        return {
            (r.org_id, r.group_id): r.seq for r in self.conn.execute(_DELETED_GROUPS, params) if (r.org_id, r.group_id) in wanted
        }

    def put_links(self, links: list[Link]) -> set[LinkKey]:
        if not links:
            return set()
        rows = self.conn.execute(_PUT_LINKS, [vars(link) for link in links])
        return {(r.org_id, r.group_id, r.scim_user_id) for r in rows}

    def unlink_user(self, org_id: str, scim_user_id: str) -> None:
        self.conn.execute(_UNLINK_USER, {"o": org_id, "u": scim_user_id})

    def unlink_group(self, org_id: str, group_id: str, seq: int) -> None:
        self.conn.execute(_UNLINK_GROUP, {"o": org_id, "g": group_id, "s": seq})
