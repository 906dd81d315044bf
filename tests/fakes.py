"""In-memory implementations of domain.uow's ports, for unit tests of the handlers.

Rows live in `tables` (table name -> list of row dicts, with the PostgreSQL tables' column
names), so a test may share them with other fakes. Every read returns a copy and every write
stores one: a handler that changes a Member without saving it changes nothing here either, as
on PostgreSQL. tests/contract runs the same repository tests on these and on PostgreSQL.
"""

from collections.abc import Iterable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import orjson

from core.db import json_row
from domain.model import (
    Account,
    Activity,
    Conflict,
    ConflictStatus,
    Link,
    Member,
    MemberStatus,
    PendingLogin,
    SecurityEvent,
    Source,
)
from domain.orgs import Org
from domain.uow import FactStaging, GroupKey, LinkKey, Person, UserKey
from events.envelope import Event, decode
from tests.fakes_ownership import FakeDomains, FakeInvitations
from tests.fakes_people import FakeIdentities, FakeSeatClaims, FakeSeats

Tables = dict[str, list[dict[str, Any]]]
_MEMBER_FIELDS = tuple(Member.__dataclass_fields__)
_SAVED = (
    "scim_user_id", "external_id", "user_name", "email", "email_ci", "display_name", "given_name", "family_name", "seq", "status",
    "version", "first_login_at",
)  # fmt: skip


def _member(row: dict[str, Any]) -> Member:
    values = {name: row.get(name) for name in _MEMBER_FIELDS}
    values["status"], values["source"] = MemberStatus(values["status"]), Source(values["source"])
    return Member(**values)


class _Table:
    def __init__(self, tables: Tables, name: str):
        self.rows = tables.setdefault(name, [])


class FakeMembers(_Table):
    def __init__(self, tables: Tables):
        super().__init__(tables, "members")
        self.scim_users = tables.setdefault("scim_resources", [])  # SCIM users: org_id, user_name_ci, emails_ci

    def by_scim_user(self, keys: Iterable[UserKey]) -> dict[UserKey, Member]:
        wanted = set(keys)
        return {(r["org_id"], r["scim_user_id"]): _member(r) for r in self.rows if (r["org_id"], r["scim_user_id"]) in wanted}

    def live_by_email(self, org_id: str, email_ci: str, *, lock: bool = True) -> Member | None:
        found = [r for r in self.rows if r["org_id"] == org_id and r["email_ci"] == email_ci and r["status"] != "removed"]
        return _member(min(found, key=lambda r: r["created_at"])) if found else None

    def live_by_emails(self, people: Iterable[Person]) -> dict[Person, Member]:
        return {p: m for p in set(people) if (m := self.live_by_email(*p)) is not None}

    def get(self, member_id: str) -> Member | None:
        return next((_member(r) for r in self.rows if r["id"] == member_id), None)

    def unowned_with_email(self, email_ci: str) -> list[Member]:
        return [
            _member(r) for r in self.rows if r["email_ci"] == email_ci and r["status"] != "removed" and r["account_id"] is None
        ]

    def add(self, members: list[Member]) -> None:
        now = datetime.now(UTC)
        for m in members:
            assert not any(r["id"] == m.id for r in self.rows), f"member {m.id} exists"
            self.rows.append({**asdict(m), "created_at": now, "updated_at": now})

    def save(self, members: list[Member]) -> None:
        for m in members:
            row = next(r for r in self.rows if r["id"] == m.id)
            row.update({name: getattr(m, name) for name in _SAVED}, updated_at=datetime.now(UTC))

    def set_conflict(self, member_id: str, conflict_id: str) -> None:
        next(r for r in self.rows if r["id"] == member_id)["conflict_id"] = conflict_id

    def close_conflict(self, member_id: str, *, account_id: str | None, at: datetime) -> None:
        row = next(r for r in self.rows if r["id"] == member_id)
        row.update(conflict_id=None, updated_at=at)
        if account_id is not None:
            row["account_id"] = account_id

    def known(self, org_id: str, email_ci: str) -> bool:
        if self.live_by_email(org_id, email_ci) is not None:
            return True
        return any(
            u["org_id"] == org_id and (u["user_name_ci"] == email_ci or email_ci in (u["emails_ci"] or []))
            for u in self.scim_users
        )

    def removed_by_external_id(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Member]:
        wanted = set(keys)
        found: dict[tuple[str, str], Member] = {}
        for r in sorted(self.rows, key=lambda r: r["updated_at"]):  # oldest first: the newest wins
            if r["status"] == "removed" and (r["org_id"], r.get("external_id")) in wanted:
                found[(r["org_id"], r["external_id"])] = _member(r)
        return found

    def count_active(self, org_id: str) -> int:
        return sum(1 for r in self.rows if r["org_id"] == org_id and r["status"] == "active")

    def live_from(self, org_id: str, source: str) -> list[Member]:
        rows = [r for r in self.rows if r["org_id"] == org_id and r["source"] == source and r["status"] != "removed"]
        return [_member(r) for r in sorted(rows, key=lambda r: r["created_at"])]


class FakePendingLogins(_Table):
    def __init__(self, tables: Tables):
        super().__init__(tables, "pending_logins")

    def find(self, people: Iterable[Person]) -> dict[Person, PendingLogin]:
        wanted = set(people)
        return {(r["org_id"], r["email_ci"]): PendingLogin(**r) for r in self.rows if (r["org_id"], r["email_ci"]) in wanted}

    def add(self, logins: Iterable[PendingLogin]) -> None:
        for login in logins:
            row = next((r for r in self.rows if (r["org_id"], r["email_ci"]) == (login.org_id, login.email_ci)), None)
            if row is None:
                self.rows.append(asdict(login))
            elif login.logged_in_at < row["logged_in_at"]:
                row.update(asdict(login))

    def remove(self, people: Iterable[Person]) -> None:
        gone = set(people)
        self.rows[:] = [r for r in self.rows if (r["org_id"], r["email_ci"]) not in gone]


class FakeSecurityEvents(_Table):
    def __init__(self, tables: Tables):
        super().__init__(tables, "security_events")

    def stage(self, signals: list[SecurityEvent]) -> None:
        known = {r["jti"] for r in self.rows}
        for signal in signals:
            if signal.jti not in known:
                known.add(signal.jti)
                self.rows.append({**asdict(signal), "status": "pending", "attempts": 0})


class FakeActivities(_Table):
    def __init__(self, tables: Tables):
        super().__init__(tables, "member_activity")

    def add(self, rows: list[Activity]) -> None:
        self.rows.extend(asdict(r) for r in rows)


class FakeGroups:
    def __init__(self, tables: Tables):
        self.groups = tables.setdefault("member_groups", [])
        self.links = tables.setdefault("member_group_links", [])

    def _group(self, org_id: str, group_id: str) -> dict[str, Any] | None:
        return next((g for g in self.groups if (g["org_id"], g["group_id"]) == (org_id, group_id)), None)

    def seq_of(self, org_id: str, group_id: str) -> int | None:
        group = self._group(org_id, group_id)
        return group["seq"] if group else None

    def put(self, org_id: str, group_id: str, display_name: str | None, seq: int, deleted: bool) -> None:
        group = self._group(org_id, group_id)
        values = {"display_name": display_name, "seq": seq, "deleted": deleted}
        if group is None:
            self.groups.append({"org_id": org_id, "group_id": group_id, **values})
        else:
            group.update(values)

    def deleted_at(self, keys: Iterable[GroupKey]) -> dict[GroupKey, int]:
        wanted = set(keys)
        return {
            (g["org_id"], g["group_id"]): g["seq"] for g in self.groups if g["deleted"] and (g["org_id"], g["group_id"]) in wanted
        }

    def put_links(self, links: list[Link]) -> set[LinkKey]:
        written: set[LinkKey] = set()
        for link in links:
            key = (link.org_id, link.group_id, link.scim_user_id)
            row = next((r for r in self.links if (r["org_id"], r["group_id"], r["scim_user_id"]) == key), None)
            if row is None:
                self.links.append(asdict(link))
            elif row["seq"] <= link.seq:
                row.update(present=link.present, seq=link.seq)
            else:
                continue
            written.add(key)
        return written

    def unlink_user(self, org_id: str, scim_user_id: str) -> None:
        for r in self.links:
            if (r["org_id"], r["scim_user_id"]) == (org_id, scim_user_id):
                r["present"] = False

    def unlink_group(self, org_id: str, group_id: str, seq: int) -> None:
        for r in self.links:
            if (r["org_id"], r["group_id"]) == (org_id, group_id):
                r.update(present=False, seq=seq)


class FakeAccounts(_Table):
    def __init__(self, tables: Tables):
        super().__init__(tables, "accounts")

    def _account(self, row: dict[str, Any]) -> Account:
        return Account(row["id"], row["email"], row["email_ci"], row.get("org_id"))

    def taken(self, emails: Iterable[str]) -> set[str]:
        wanted = set(emails)
        return {r["email_ci"] for r in self.rows if r["email_ci"] in wanted}

    def by_email(self, email_ci: str) -> Account | None:
        return next((self._account(r) for r in self.rows if r["email_ci"] == email_ci), None)

    def get(self, account_id: str) -> Account | None:
        return next((self._account(r) for r in self.rows if r["id"] == account_id), None)

    def add(self, account_id: str, email: str, display_name: str | None) -> None:
        assert self.by_email(email.lower()) is None, "accounts.email_ci is unique"
        row = {"id": account_id, "email": email, "email_ci": email.lower(), "display_name": display_name, "org_id": None}
        self.rows.append({**row, "created_at": datetime.now(UTC)})

    def view(self, email_ci: str) -> dict[str, Any] | None:
        row = next((r for r in self.rows if r["email_ci"] == email_ci), None)
        if row is None:
            return None
        return json_row(_Row(row), "id", "email", "display_name", "org_id", "created_at")

    def set_org(self, account_id: str, org_id: str) -> None:
        next(r for r in self.rows if r["id"] == account_id)["org_id"] = org_id

    def lock(self, account_id: str) -> Account | None:
        return self.get(account_id)


class FakeConflicts(_Table):
    def __init__(self, tables: Tables):
        super().__init__(tables, "conflicts")

    def add_if_new(self, *, conflict_id: str, org_id: str, member_id: str, account_id: str, email_ci: str, error: str) -> bool:
        if any((r["org_id"], r["member_id"], r["account_id"]) == (org_id, member_id, account_id) for r in self.rows):
            return False
        self.rows.append({
            "id": conflict_id, "org_id": org_id, "member_id": member_id, "account_id": account_id, "email_ci": email_ci,
            "status": "open", "error": error, "created_at": datetime.now(UTC), "resolved_at": None, "resolved_by": None,
        })  # fmt: skip
        return True

    def open_one(self, org_id: str, *, conflict_id: str | None = None, email_ci: str | None = None) -> Conflict | None:
        for r in self.rows:
            matches = r["id"] == conflict_id if conflict_id else r["email_ci"] == email_ci
            if r["org_id"] == org_id and r["status"] == "open" and matches:
                return Conflict(r["id"], r["org_id"], r["member_id"], r["account_id"], r["email_ci"], ConflictStatus(r["status"]))
        return None

    def close(self, conflict_id: str, status: str, *, at: datetime, actor: str) -> None:
        next(r for r in self.rows if r["id"] == conflict_id).update(status=status, resolved_at=at, resolved_by=actor)


class FakeOrgs(_Table):
    def __init__(self, tables: Tables):
        super().__init__(tables, "orgs")

    def lock(self, org_id: str) -> Org:
        return Org.of(_Row(next(r for r in self.rows if r["id"] == org_id)))

    def set_settings(self, org_id: str, values: dict[str, Any]) -> None:
        next(r for r in self.rows if r["id"] == org_id).update(values)

    def by_id(self, org_id: str) -> Org | None:
        row = next((r for r in self.rows if r["id"] == org_id), None)
        return Org.of(_Row(row)) if row else None

    def put(self, org: Org) -> None:
        """Set up an org (orgs are created by `domain.orgs.create`, outside any unit of work)."""
        self.rows.append(vars(org).copy())

    def get(self, slug: str) -> Org:
        return Org.of(_Row(next(r for r in self.rows if r["slug"] == slug)))


class _Row:
    """A row dict read by attribute, as SQLAlchemy rows are."""

    def __init__(self, values: dict[str, Any]):
        self.__dict__.update(values)


class FakeUnitOfWork(FactStaging):
    """The repositories on in-memory tables; staged events are kept as the outbox rows the
    relay would publish (`staged`), with topic names from `topics`."""

    def __init__(
        self, tables: Tables | None = None, topics: dict[str, str] | None = None, staged: list[dict[str, Any]] | None = None
    ):
        self.tables: Tables = {} if tables is None else tables
        self.topics = topics or {"lifecycle": "lifecycle", "members": "members", "billing": "billing", "dead_letter": "dlq"}
        self.staged: list[dict[str, Any]] = [] if staged is None else staged
        self.locked: list[Person] = []
        self.members = FakeMembers(self.tables)
        self.pending_logins = FakePendingLogins(self.tables)
        self.activity = FakeActivities(self.tables)
        self.groups = FakeGroups(self.tables)
        self.seats = FakeSeats(self.tables)
        self.security_events = FakeSecurityEvents(self.tables)
        self.identities = FakeIdentities(self.tables)
        self.seat_claims = FakeSeatClaims(self.tables)
        self.accounts = FakeAccounts(self.tables)
        self.conflicts = FakeConflicts(self.tables)
        self.domains = FakeDomains(self.tables)
        self.invitations = FakeInvitations(self.tables)
        self.orgs = FakeOrgs(self.tables)
        self.txid = 91000  # `transaction_id()`; `commit()` starts the next transaction

    def stage(self, events: Iterable[Event]) -> None:
        known = {row["event_id"] for row in self.staged}
        for e in events:
            if e.id not in known:  # a re-staged event (same id) is ignored, as by the outbox
                known.add(e.id)
                self.staged.append(
                    {"event_id": e.id, "topic": self.topics[e.kind.topic_role], "key": e.key, "payload": e.to_cloudevent()}
                )

    def lock_people(self, people: Iterable[Person]) -> None:
        self.locked.extend(people)

    def transaction_id(self) -> int:
        return self.txid

    def commit(self) -> None:
        self.txid += 1

    def events(self) -> list[Event]:
        """The staged events, as a consumer decodes them from their topics."""
        return [decode(orjson.dumps(row["payload"])) for row in self.staged]
