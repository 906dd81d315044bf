"""The unit of work and repositories on PostgreSQL (domain.uow's ports).

Statements are built once at import (building them per row cost more CPU than executing them,
see docs/benchmarks.md); set-wise reads take arrays, set-wise writes one executemany.
"""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Text, bindparam, cast, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert

from core.db import json_row
from core.tables import (
    accounts,
    conflicts,
    member_activity,
    member_group_links,
    member_groups,
    members,
    scim_resources,
)
from core.tables import orgs as orgs_table
from domain.model import (
    Account,
    Activity,
    Conflict,
    ConflictStatus,
    Link,
    Member,
    MemberStatus,
    Source,
)
from domain.orgs import Org
from domain.postgres_ownership import PgDomains, PgInvitations
from domain.postgres_people import PgIdentities, PgPendingLogins, PgSeatClaims, PgSeats
from domain.uow import FactStaging, GroupKey, LinkKey, Person, UserKey
from events import outbox
from events.envelope import Event

_ORG_IDS = func.any(cast(bindparam("org_ids"), ARRAY(UUID(as_uuid=False))))


def _any_text(name: str) -> Any:
    return func.any(cast(bindparam(name), ARRAY(Text)))


_MEMBER_COLUMNS = (
    "id", "org_id", "scim_user_id", "user_name", "email", "email_ci", "display_name", "status", "source", "seq", "version",
    "first_login_at", "account_id", "conflict_id", "external_id",
)  # fmt: skip
_SAVED = (
    "scim_user_id", "external_id", "user_name", "email", "email_ci", "display_name", "seq", "status", "version", "first_login_at",
)  # fmt: skip
_SELECT_MEMBERS = select(*(members.c[name] for name in _MEMBER_COLUMNS))
_BY_SCIM_USER = _SELECT_MEMBERS.where(
    members.c.org_id == _ORG_IDS, members.c.scim_user_id == _any_text("user_ids")
).with_for_update()
_LIVE_BY_EMAIL = (
    _SELECT_MEMBERS.where(
        members.c.org_id == bindparam("org_id"),
        members.c.email_ci == bindparam("email_ci"),
        members.c.status != MemberStatus.REMOVED,
    )
    .order_by(members.c.created_at)
    .limit(1)
    .with_for_update()
)
_UNOWNED = _SELECT_MEMBERS.where(
    members.c.email_ci == bindparam("email_ci"), members.c.status != MemberStatus.REMOVED, members.c.account_id.is_(None)
)
_GET_MEMBER = _SELECT_MEMBERS.where(members.c.id == bindparam("member_id"))
_REMOVED_BY_EXTERNAL_ID = (
    _SELECT_MEMBERS.add_columns(members.c.updated_at)
    .where(
        members.c.org_id == _ORG_IDS,
        members.c.external_id == _any_text("external_ids"),
        members.c.status == MemberStatus.REMOVED,
    )
    .order_by(members.c.updated_at)
    .with_for_update()
)
_COUNT_ACTIVE = select(func.count()).where(members.c.org_id == bindparam("org_id"), members.c.status == MemberStatus.ACTIVE)
_LIVE_FROM = _SELECT_MEMBERS.where(
    members.c.org_id == bindparam("org_id"), members.c.source == bindparam("source"), members.c.status != MemberStatus.REMOVED
).order_by(members.c.created_at)
_INSERT_MEMBERS = insert(members)
_SAVE_MEMBERS = (
    update(members)
    .where(members.c.id == bindparam("member_id"))
    .values(**{name: bindparam(name) for name in _SAVED}, updated_at=bindparam("updated_at"))
)
_SET_CONFLICT = update(members).where(members.c.id == bindparam("member_id")).values(conflict_id=bindparam("conflict_id"))
_LIVE_MEMBER = select(members.c.id).where(
    members.c.org_id == bindparam("org_id"), members.c.email_ci == bindparam("email_ci"), members.c.status != MemberStatus.REMOVED
)
_SCIM_USER_WITH_EMAIL = select(scim_resources.c.id).where(
    scim_resources.c.org_id == bindparam("org_id"),
    scim_resources.c.resource_type == "User",
    (scim_resources.c.user_name_ci == bindparam("email_ci"))
    | scim_resources.c.emails_ci.contains(cast(bindparam("emails"), ARRAY(Text))),
)

# in a fixed order, so two workers locking overlapping people cannot deadlock on each other
_LOCK_PEOPLE = text(
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0))"
    " FROM (SELECT k FROM unnest(CAST(:keys AS text[])) AS k ORDER BY k) AS people"
)
_INSERT_ACTIVITY = member_activity.insert()

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
    member_groups.c.org_id == _ORG_IDS, member_groups.c.group_id == _any_text("group_ids"), member_groups.c.deleted.is_(True)
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

_ACCOUNT_COLUMNS = (accounts.c.id, accounts.c.email, accounts.c.email_ci, accounts.c.org_id)
_TAKEN = select(accounts.c.email_ci).where(accounts.c.email_ci == _any_text("emails"))
_ADD_CONFLICT = insert(conflicts).on_conflict_do_nothing(constraint="ux_conflicts_member_account").returning(conflicts.c.id)


def _member(row: Any) -> Member:
    values = dict(row) if isinstance(row, dict) else dict(row._mapping)
    values["status"], values["source"] = MemberStatus(values["status"]), Source(values["source"])
    return Member(**values)


class PgMembers:
    def __init__(self, conn: Connection):
        self.conn = conn

    def by_scim_user(self, keys: Iterable[UserKey]) -> dict[UserKey, Member]:
        wanted = set(keys)
        if not wanted:
            return {}
        params = {"org_ids": sorted({o for o, _ in wanted}), "user_ids": sorted({u for _, u in wanted})}
        found = (_member(row) for row in self.conn.execute(_BY_SCIM_USER, params))
        return {(m.org_id, str(m.scim_user_id)): m for m in found if (m.org_id, m.scim_user_id) in wanted}

    def live_by_email(self, org_id: str, email_ci: str) -> Member | None:
        row = self.conn.execute(_LIVE_BY_EMAIL, {"org_id": org_id, "email_ci": email_ci}).first()
        return _member(row) if row else None

    def get(self, member_id: str) -> Member | None:
        row = self.conn.execute(_GET_MEMBER, {"member_id": member_id}).first()
        return _member(row) if row else None

    def unowned_with_email(self, email_ci: str) -> list[Member]:
        return [_member(row) for row in self.conn.execute(_UNOWNED, {"email_ci": email_ci})]

    def add(self, new: list[Member]) -> None:
        if new:
            now = datetime.now(UTC)
            self.conn.execute(_INSERT_MEMBERS, [{n: getattr(m, n) for n in _MEMBER_COLUMNS} | {"updated_at": now} for m in new])

    def save(self, changed: list[Member]) -> None:
        if changed:
            now = datetime.now(UTC)
            rows = [{"member_id": m.id, "updated_at": now, **{n: getattr(m, n) for n in _SAVED}} for m in changed]
            self.conn.execute(_SAVE_MEMBERS, rows)

    def set_conflict(self, member_id: str, conflict_id: str) -> None:
        self.conn.execute(_SET_CONFLICT, {"member_id": member_id, "conflict_id": conflict_id})

    def close_conflict(self, member_id: str, *, account_id: str | None, at: datetime) -> None:
        values: dict[str, Any] = {"conflict_id": None, "updated_at": at}
        if account_id is not None:
            values["account_id"] = account_id
        self.conn.execute(update(members).where(members.c.id == member_id).values(**values))

    def known(self, org_id: str, email_ci: str) -> bool:
        params = {"org_id": org_id, "email_ci": email_ci, "emails": [email_ci]}
        if self.conn.execute(_LIVE_MEMBER, params).first():
            return True
        return self.conn.execute(_SCIM_USER_WITH_EMAIL, params).first() is not None

    def removed_by_external_id(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Member]:
        wanted = set(keys)
        if not wanted:
            return {}
        params = {"org_ids": sorted({o for o, _ in wanted}), "external_ids": sorted({x for _, x in wanted})}
        found: dict[tuple[str, str], Member] = {}
        for row in self.conn.execute(_REMOVED_BY_EXTERNAL_ID, params):  # oldest first: the newest wins
            values = {k: v for k, v in row._mapping.items() if k != "updated_at"}
            member = _member(values)
            if (member.org_id, member.external_id) in wanted:
                found[(member.org_id, str(member.external_id))] = member
        return found

    def count_active(self, org_id: str) -> int:
        return int(self.conn.execute(_COUNT_ACTIVE, {"org_id": org_id}).scalar_one())

    def live_from(self, org_id: str, source: str) -> list[Member]:
        return [_member(row) for row in self.conn.execute(_LIVE_FROM, {"org_id": org_id, "source": source})]


class PgActivities:
    def __init__(self, conn: Connection):
        self.conn = conn

    def add(self, rows: list[Activity]) -> None:
        if rows:
            self.conn.execute(_INSERT_ACTIVITY, [vars(r) for r in rows])


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


class PgAccounts:
    def __init__(self, conn: Connection):
        self.conn = conn

    def taken(self, emails: Iterable[str]) -> set[str]:
        wanted = sorted(set(emails))
        return set(self.conn.execute(_TAKEN, {"emails": wanted}).scalars()) if wanted else set()

    def by_email(self, email_ci: str) -> Account | None:
        row = self.conn.execute(select(*_ACCOUNT_COLUMNS).where(accounts.c.email_ci == email_ci)).first()
        return Account(row.id, row.email, row.email_ci, row.org_id) if row else None

    def get(self, account_id: str) -> Account | None:
        row = self.conn.execute(select(*_ACCOUNT_COLUMNS).where(accounts.c.id == account_id)).first()
        return Account(row.id, row.email, row.email_ci, row.org_id) if row else None

    def add(self, account_id: str, email: str, display_name: str | None) -> None:
        self.conn.execute(accounts.insert().values(id=account_id, email=email, email_ci=email.lower(), display_name=display_name))

    def view(self, email_ci: str) -> dict[str, Any] | None:
        row = self.conn.execute(select(accounts).where(accounts.c.email_ci == email_ci)).first()
        return json_row(row, "id", "email", "display_name", "org_id", "created_at") if row else None

    def set_org(self, account_id: str, org_id: str) -> None:
        self.conn.execute(update(accounts).where(accounts.c.id == account_id).values(org_id=org_id))

    def lock(self, account_id: str) -> Account | None:
        row = self.conn.execute(select(*_ACCOUNT_COLUMNS).where(accounts.c.id == account_id).with_for_update()).first()
        return Account(row.id, row.email, row.email_ci, row.org_id) if row else None


class PgConflicts:
    def __init__(self, conn: Connection):
        self.conn = conn

    def add_if_new(self, *, conflict_id: str, org_id: str, member_id: str, account_id: str, email_ci: str, error: str) -> bool:
        row = {
            "id": conflict_id, "org_id": org_id, "member_id": member_id, "account_id": account_id, "email_ci": email_ci,
            "status": ConflictStatus.OPEN, "error": error,
        }  # fmt: skip
        return self.conn.execute(_ADD_CONFLICT, row).first() is not None

    def open_one(self, org_id: str, *, conflict_id: str | None = None, email_ci: str | None = None) -> Conflict | None:
        query = select(conflicts).where(conflicts.c.org_id == org_id, conflicts.c.status == ConflictStatus.OPEN)
        query = query.where(conflicts.c.id == conflict_id) if conflict_id else query.where(conflicts.c.email_ci == email_ci)
        row = self.conn.execute(query.with_for_update()).first()
        if row is None:
            return None
        return Conflict(row.id, row.org_id, row.member_id, row.account_id, row.email_ci, ConflictStatus(row.status))

    def close(self, conflict_id: str, status: str, *, at: datetime, actor: str) -> None:
        self.conn.execute(
            update(conflicts).where(conflicts.c.id == conflict_id).values(status=status, resolved_at=at, resolved_by=actor)
        )


class PgOrgs:
    def __init__(self, conn: Connection):
        self.conn = conn

    def lock(self, org_id: str) -> Org:
        return Org.of(self.conn.execute(select(orgs_table).where(orgs_table.c.id == org_id).with_for_update()).one())

    def by_id(self, org_id: str) -> Org | None:
        row = self.conn.execute(select(orgs_table).where(orgs_table.c.id == org_id)).first()
        return Org.of(row) if row else None

    def set_settings(self, org_id: str, values: dict[str, Any]) -> None:
        self.conn.execute(update(orgs_table).where(orgs_table.c.id == org_id).values(**values))


class SqlUnitOfWork(FactStaging):
    """The repositories on one connection, inside its transaction; events staged in its outbox."""

    def __init__(self, conn: Connection, topics: dict[str, str]):
        self.conn = conn
        self.topics = topics
        self.members = PgMembers(conn)
        self.pending_logins = PgPendingLogins(conn)
        self.activity = PgActivities(conn)
        self.groups = PgGroups(conn)
        self.seats = PgSeats(conn)
        self.identities = PgIdentities(conn)
        self.seat_claims = PgSeatClaims(conn)
        self.accounts = PgAccounts(conn)
        self.conflicts = PgConflicts(conn)
        self.domains = PgDomains(conn)
        self.invitations = PgInvitations(conn)
        self.orgs = PgOrgs(conn)

    @classmethod
    @contextmanager
    def begin(cls, engine: Engine, topics: dict[str, str]) -> Iterator["SqlUnitOfWork"]:
        """A transaction that commits when the block ends, or rolls back on an exception."""
        with engine.begin() as conn:
            yield cls(conn, topics)

    def stage(self, events: Iterable[Event]) -> None:
        outbox.add(self.conn, events, self.topics)

    def lock_people(self, people: Iterable[Person]) -> None:
        keys = [f"{o}:{e}" for o, e in sorted(set(people))]
        if keys:
            self.conn.execute(_LOCK_PEOPLE, {"keys": keys})

    def transaction_id(self) -> int:
        """PostgreSQL's id of this transaction: it tells one admin action from the next."""
        return int(self.conn.execute(select(func.txid_current())).scalar_one())
