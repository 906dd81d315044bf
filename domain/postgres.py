"""The unit of work and repositories on PostgreSQL (domain.uow's ports).

Statements are built once at import (building them per row cost more CPU than executing them,
see docs/benchmarks.md); set-wise reads take arrays, set-wise writes one executemany.
"""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Text, bindparam, cast, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, insert

from core.db import any_text, any_uuid, recordset_insert, recordset_update
from core.tables import (
    member_activity,
    member_identities,
    members,
    scim_resources,
    security_events,
)
from core.tables import orgs as orgs_table
from domain.model import Activity, Member, MemberStatus, SecurityEvent, Source
from domain.orgs import Org
from domain.postgres_groups import PgGroups
from domain.postgres_ownership import PgAccounts, PgConflicts, PgDomains, PgInvitations
from domain.postgres_seats import PgPendingLogins, PgSeatClaims, PgSeats
from domain.uow import FactStaging, Person, UserKey
from events import outbox
from events.envelope import Event

_ORG_IDS = any_uuid("org_ids")


_MEMBER_COLUMNS = (
    "id", "org_id", "scim_user_id", "user_name", "email", "email_ci", "display_name", "status", "source", "seq", "version",
    "first_login_at", "account_id", "conflict_id", "external_id", "given_name", "family_name",
)  # fmt: skip
_SAVED = (
    "scim_user_id", "external_id", "user_name", "email", "email_ci", "display_name", "given_name", "family_name", "seq", "status",
    "version", "first_login_at",
)  # fmt: skip
_SELECT_MEMBERS = select(*(members.c[name] for name in _MEMBER_COLUMNS))
_BY_SCIM_USER = _SELECT_MEMBERS.where(
    members.c.org_id == _ORG_IDS, members.c.scim_user_id == any_text("user_ids")
).with_for_update()
_LIVE_BY_EMAIL = (
    _SELECT_MEMBERS.where(
        members.c.org_id == bindparam("org_id"),
        members.c.email_ci == bindparam("email_ci"),
        members.c.status != MemberStatus.REMOVED,
    )
    .order_by(members.c.created_at)
    .limit(1)
)
_LIVE_BY_EMAIL_LOCKED = _LIVE_BY_EMAIL.with_for_update()
_UNOWNED = _SELECT_MEMBERS.where(
    members.c.email_ci == bindparam("email_ci"), members.c.status != MemberStatus.REMOVED, members.c.account_id.is_(None)
)
_GET_MEMBER = _SELECT_MEMBERS.where(members.c.id == bindparam("member_id"))
_REMOVED_BY_EXTERNAL_ID = (
    _SELECT_MEMBERS.where(
        members.c.org_id == _ORG_IDS,
        members.c.external_id == any_text("external_ids"),
        members.c.status == MemberStatus.REMOVED,
    )
    .order_by(members.c.updated_at)
    .with_for_update()
)
_COUNT_ACTIVE = select(func.count()).where(members.c.org_id == bindparam("org_id"), members.c.status == MemberStatus.ACTIVE)
_LIVE_FROM = _SELECT_MEMBERS.where(
    members.c.org_id == bindparam("org_id"), members.c.source == bindparam("source"), members.c.status != MemberStatus.REMOVED
).order_by(members.c.created_at)
_INSERT_MEMBERS = recordset_insert(members, (*_MEMBER_COLUMNS, "updated_at"))
_SAVE_MEMBERS = recordset_update(members, "id", (*_SAVED, "updated_at"))
# the oldest live member of each (org, email): exact pairs, so no other person's row is locked
_LIVE_BY_EMAILS = text(
    f"SELECT {', '.join('m.' + name for name in _MEMBER_COLUMNS)} FROM members AS m "
    "JOIN unnest(CAST(:orgs AS uuid[]), CAST(:emails AS text[])) AS p(org_id, email_ci) "
    "ON m.org_id = p.org_id AND m.email_ci = p.email_ci "
    "WHERE m.status <> 'removed' ORDER BY m.created_at FOR UPDATE OF m"
).columns(*(members.c[name] for name in _MEMBER_COLUMNS))
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
_INSERT_SIGNALS = recordset_insert(
    security_events, ("jti", "org_id", "member_id", "event_type", "reason", "occurred_at"),
    on_conflict="ON CONFLICT (jti) DO NOTHING",
)
_INSERT_ACTIVITY = recordset_insert(member_activity, ("org_id", "member_id", "event_id", "type", "source", "summary"))

_MEMBER_OF = select(member_identities.c.member_id).where(
    member_identities.c.org_id == bindparam("o"),
    member_identities.c.issuer == bindparam("i"),
    member_identities.c.subject == bindparam("s"),
)
_SUBJECT_OF = select(member_identities.c.subject).where(
    member_identities.c.member_id == bindparam("m"), member_identities.c.issuer == bindparam("i")
)
_bind = insert(member_identities)
_BIND = _bind.on_conflict_do_update(
    index_elements=["org_id", "issuer", "subject"], set_={"member_id": _bind.excluded.member_id, "created_at": func.now()}
)
_UNBIND_OTHER = delete(member_identities).where(
    member_identities.c.member_id == bindparam("m"),
    member_identities.c.issuer == bindparam("i"),
    member_identities.c.subject != bindparam("s"),
)


def _member(row: Any) -> Member:
    values = dict(row._mapping)
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

    def live_by_email(self, org_id: str, email_ci: str, *, lock: bool = True) -> Member | None:
        query = _LIVE_BY_EMAIL_LOCKED if lock else _LIVE_BY_EMAIL
        row = self.conn.execute(query, {"org_id": org_id, "email_ci": email_ci}).first()
        return _member(row) if row else None

    def live_by_emails(self, people: Iterable[Person]) -> dict[Person, Member]:
        wanted = sorted(set(people))
        found: dict[Person, Member] = {}
        if wanted:
            params = {"orgs": [o for o, _ in wanted], "emails": [e for _, e in wanted]}
            for row in self.conn.execute(_LIVE_BY_EMAILS, params):  # oldest first: the first of each person wins
                member = _member(row)
                found.setdefault((member.org_id, str(member.email_ci)), member)
        return found

    def get(self, member_id: str) -> Member | None:
        row = self.conn.execute(_GET_MEMBER, {"member_id": member_id}).first()
        return _member(row) if row else None

    def unowned_with_email(self, email_ci: str) -> list[Member]:
        return [_member(row) for row in self.conn.execute(_UNOWNED, {"email_ci": email_ci})]

    def add(self, new: list[Member]) -> None:
        if new:
            now = datetime.now(UTC)
            _INSERT_MEMBERS(self.conn, [{n: getattr(m, n) for n in _MEMBER_COLUMNS} | {"updated_at": now} for m in new])

    def save(self, changed: list[Member]) -> None:
        if changed:
            now = datetime.now(UTC)
            _SAVE_MEMBERS(self.conn, [{"id": m.id, "updated_at": now, **{n: getattr(m, n) for n in _SAVED}} for m in changed])

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
            member = _member(row)
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
            _INSERT_ACTIVITY(self.conn, [vars(r) for r in rows])


class PgSecurityEvents:
    def __init__(self, conn: Connection):
        self.conn = conn

    def stage(self, signals: list[SecurityEvent]) -> None:
        if signals:
            _INSERT_SIGNALS(self.conn, [vars(s) for s in signals])


class PgIdentities:
    def __init__(self, conn: Connection):
        self.conn = conn

    def member_of(self, org_id: str, issuer: str, subject: str) -> str | None:
        return self.conn.execute(_MEMBER_OF, {"o": org_id, "i": issuer, "s": subject}).scalar()

    def subject_of(self, member_id: str, issuer: str) -> str | None:
        return self.conn.execute(_SUBJECT_OF, {"m": member_id, "i": issuer}).scalar()

    def bind(self, org_id: str, issuer: str, subject: str, member_id: str) -> None:
        self.conn.execute(_UNBIND_OTHER, {"m": member_id, "i": issuer, "s": subject})
        self.conn.execute(_BIND, {"org_id": org_id, "issuer": issuer, "subject": subject, "member_id": member_id})


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


class NeedsTransaction(Exception):
    """Raised by a handler given a unit of work in autocommit (`SqlUnitOfWork.autocommit`) when
    what it must do needs a transaction (a lock held to the commit), before it wrote anything:
    its caller runs it again in one."""


class SqlUnitOfWork(FactStaging):
    """The repositories on one connection, inside its transaction (or, from `autocommit`, each
    statement its own); events staged in its outbox."""

    def __init__(self, conn: Connection, topics: dict[str, str], *, in_transaction: bool = True):
        self.conn = conn
        self.topics = topics
        self.in_transaction = in_transaction
        self.members = PgMembers(conn)
        self.pending_logins = PgPendingLogins(conn)
        self.activity = PgActivities(conn)
        self.groups = PgGroups(conn)
        self.seats = PgSeats(conn)
        self.security_events = PgSecurityEvents(conn)
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

    @classmethod
    @contextmanager
    def autocommit(cls, engine: Engine, topics: dict[str, str]) -> Iterator["SqlUnitOfWork"]:
        """Each statement committed on its own: for a handler whose one write is one statement
        (no BEGIN, no COMMIT, no transaction id: three round trips fewer)."""
        with engine.connect() as conn:
            yield cls(conn.execution_options(isolation_level="AUTOCOMMIT"), topics, in_transaction=False)

    def stage(self, events: Iterable[Event]) -> None:
        outbox.add(self.conn, events, self.topics)

    def lock_people(self, people: Iterable[Person]) -> None:
        keys = [f"{o}:{e}" for o, e in sorted(set(people))]
        if keys:
            self.conn.execute(_LOCK_PEOPLE, {"keys": keys})

    def transaction_id(self) -> int:
        """PostgreSQL's id of this transaction: it tells one admin action from the next."""
        return int(self.conn.execute(select(func.txid_current())).scalar_one())
