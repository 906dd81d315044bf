"""The unit of work and its repositories: what handlers read and write through.

A handler is a function of `(events, uow)`. It reads and writes rows through the repositories and
stages the events it causes with `uow.stage`; the unit of work commits all of it together or
nothing (ARCHITECTURE §3.2: the effect, its tracking row and its outbox rows in one transaction).
`domain.postgres` implements these on PostgreSQL; `tests/fakes.py` in memory, and one contract
suite (tests/contract) runs against both so the fakes cannot drift.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from domain.model import Account, Activity, Link, Member, PendingLogin, Seat
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


class Conflicts(Protocol):
    def add_if_new(self, *, conflict_id: str, org_id: str, member_id: str, account_id: str, email_ci: str, error: str) -> bool:
        """Open a conflict for this (member, account) pair unless it was ever flagged."""


class UnitOfWork(Protocol):
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
