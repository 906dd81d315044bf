"""The unit of work and its repositories: what handlers read and write through.

A handler is a function of `(events, uow)`. It reads and writes rows through the repositories and
stages the events it causes with `uow.stage`; the unit of work commits all of it together or
nothing (ARCHITECTURE §3.2: the effect, its tracking row and its outbox rows in one transaction).
`domain.postgres` implements these on PostgreSQL; `tests/fakes.py` in memory, and one contract
suite (tests/contract) runs against both so the fakes cannot drift.
"""

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from domain.model import Account, Activity, Conflict, Link, Member, PendingLogin, Seat
from domain.orgs import Org
from events import catalogue as c
from events.envelope import Event

Person = tuple[str, str]  # (org id, email lower-cased)
UserKey = tuple[str, str]  # (org id, SCIM user id)
GroupKey = tuple[str, str]  # (org id, SCIM group id)
LinkKey = tuple[str, str, str]  # (org id, SCIM group id, SCIM user id)


class Members(Protocol):
    def by_scim_user(self, keys: Iterable[UserKey]) -> dict[UserKey, Member]:
        """The members of these SCIM users, locked until the unit of work ends."""

    def live_by_email(self, org_id: str, email_ci: str) -> Member | None:
        """The org's oldest member with this email that is not removed, locked."""

    def get(self, member_id: str) -> Member | None: ...

    def unowned_with_email(self, email_ci: str) -> list[Member]:
        """Members of any org with this email, not removed, not linked to an account."""

    def add(self, members: list[Member]) -> None: ...

    def save(self, members: list[Member]) -> None:
        """Write back what the rules change: names, email, status, versions, first login."""

    def set_conflict(self, member_id: str, conflict_id: str) -> None: ...

    def close_conflict(self, member_id: str, *, account_id: str | None, at: datetime) -> None:
        """The member's conflict is resolved; with `account_id`, the member is that account now."""

    def known(self, org_id: str, email_ci: str) -> bool:
        """A live member of the org with this email, or a SCIM user of the org whose member is on its way."""


class PendingLogins(Protocol):
    def find(self, people: Iterable[Person]) -> dict[Person, datetime]:
        """When each of these people signed in before being a member, locked."""

    def add(self, login: PendingLogin) -> None:
        """Keep the first early sign-in of a person; later ones change nothing."""

    def remove(self, people: Iterable[Person]) -> None: ...


class Activities(Protocol):
    def add(self, rows: list[Activity]) -> None: ...


class Groups(Protocol):
    def seq_of(self, org_id: str, group_id: str) -> int | None:
        """The version of the group applied so far, locked; None if never seen."""

    def put(self, org_id: str, group_id: str, display_name: str | None, seq: int, deleted: bool) -> None: ...

    def deleted_at(self, keys: Iterable[GroupKey]) -> dict[GroupKey, int]:
        """The version at which each of these groups was deleted (only deleted ones)."""

    def put_links(self, links: list[Link]) -> set[LinkKey]:
        """Upsert links that are not older than the stored ones; returns those written."""

    def unlink_user(self, org_id: str, scim_user_id: str) -> None: ...

    def unlink_group(self, org_id: str, group_id: str, seq: int) -> None: ...


class Seats(Protocol):
    def add_if_absent(self, seat: Seat) -> bool:
        """Record a first billed login; False if the person was billed in this org before."""

    def get(self, org_id: str, email_ci: str) -> Seat | None:
        """The person's seat, locked."""

    def move(self, org_id: str, email_ci: str, *, active: bool, member_id: str) -> None: ...


class Accounts(Protocol):
    def taken(self, emails: Iterable[str]) -> set[str]:
        """Which of these (lower-cased) emails are accounts."""

    def by_email(self, email_ci: str) -> Account | None: ...

    def get(self, account_id: str) -> Account | None: ...

    def add(self, account_id: str, email: str, display_name: str | None) -> None: ...

    def view(self, email_ci: str) -> dict[str, Any] | None:
        """The account as the internal API shows it (id, email, display_name, org_id, created_at)."""

    def set_org(self, account_id: str, org_id: str) -> None: ...


class Conflicts(Protocol):
    def add_if_new(self, *, conflict_id: str, org_id: str, member_id: str, account_id: str, email_ci: str, error: str) -> bool:
        """Open a conflict for this (member, account) pair unless it was ever flagged."""

    def open_one(self, org_id: str, *, conflict_id: str | None = None, email_ci: str | None = None) -> Conflict | None:
        """The org's open conflict with this id, or about this email; locked."""

    def close(self, conflict_id: str, status: str, *, at: datetime, actor: str) -> None: ...


class Orgs(Protocol):
    def lock(self, org_id: str) -> Org:
        """The org as it is now, its row locked until the unit of work ends."""

    def set_settings(self, org_id: str, values: dict[str, bool]) -> None: ...


class UnitOfWork(Protocol):
    @property
    def orgs(self) -> Orgs: ...

    @property
    def members(self) -> Members: ...

    @property
    def pending_logins(self) -> PendingLogins: ...

    @property
    def activity(self) -> Activities: ...

    @property
    def groups(self) -> Groups: ...

    @property
    def seats(self) -> Seats: ...

    @property
    def accounts(self) -> Accounts: ...

    @property
    def conflicts(self) -> Conflicts: ...


    def stage(self, events: Iterable[Event]) -> None:
        """Publish these events if, and only if, the unit of work commits."""

    def lock_people(self, people: Iterable[Person]) -> None:
        """Serialise work on these people across processes until the unit of work ends."""

    def stage_fact(
        self, payload: c.Payload, *, org_id: str, org_slug: str, correlation_id: str | None = None, at: datetime | None = None
    ) -> Event: ...


class FactStaging:
    """`stage_fact` for a unit of work that can `stage` events and knows its transaction's id."""

    def stage(self, events: Iterable[Event]) -> None:
        raise NotImplementedError

    def transaction_id(self) -> int:
        raise NotImplementedError

    def stage_fact(
        self, payload: c.Payload, *, org_id: str, org_slug: str, correlation_id: str | None = None, at: datetime | None = None
    ) -> Event:
        """Stage an org-level fact (an admin's action, a sign-in, an account): its id is unique to
        this transaction, and `at` (default: now), in microseconds, is its version."""
        now = at or datetime.now(UTC)
        event = Event.of(
            payload, org_id=org_id, org_slug=org_slug, version=int(now.timestamp() * 1_000_000), occasion=self.transaction_id(),
            correlation_id=correlation_id, time=now,
        )  # fmt: skip
        self.stage([event])
        return event
