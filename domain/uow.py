"""The unit of work and its repositories: what handlers read and write through.

A handler is a function of `(events, uow)`. It reads and writes rows through the repositories and
stages the events it causes with `uow.stage`; the unit of work commits all of it together or
nothing (ARCHITECTURE §3.2: the effect, its tracking row and its outbox rows in one transaction).
`domain.postgres` implements these on PostgreSQL; `tests/fakes.py` in memory, and one contract
suite (tests/contract) runs against both so the fakes cannot drift.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from domain.model import Account, Activity, Conflict, Link, Member, PendingLogin, Seat, SeatState, SecurityEvent
from domain.orgs import Org
from domain.ownership import Invitation, OrgDomain
from events import catalogue as c
from events.envelope import UNVERSIONED, Event

Person = tuple[str, str]  # (org id, email lower-cased)
UserKey = tuple[str, str]  # (org id, SCIM user id)
GroupKey = tuple[str, str]  # (org id, SCIM group id)
LinkKey = tuple[str, str, str]  # (org id, SCIM group id, SCIM user id)


class Members(Protocol):
    def by_scim_user(self, keys: Iterable[UserKey]) -> dict[UserKey, Member]:
        """The members of these SCIM users, locked until the unit of work ends."""

    def live_by_email(self, org_id: str, email_ci: str, *, lock: bool = True) -> Member | None:
        """The org's oldest member with this email that is not removed, locked unless `lock` is false."""

    def live_by_emails(self, people: Iterable[Person]) -> dict[Person, Member]:
        """`live_by_email` of each of these people at once (the found ones), locked."""

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

    def removed_by_external_id(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Member]:
        """For each (org id, externalId), the org's newest removed member with that (case-exact) IdP id,
        locked: the person the IdP is creating again."""

    def count_active(self, org_id: str) -> int:
        """Members of the org whose seat is in use (status active)."""

    def live_from(self, org_id: str, source: str) -> list[Member]:
        """The org's members from this source that are not removed."""


class Identities(Protocol):
    """IdP subjects bound to members: (issuer, subject) -> member, one subject per member and issuer."""

    def member_of(self, org_id: str, issuer: str, subject: str) -> str | None: ...

    def subject_of(self, member_id: str, issuer: str) -> str | None: ...

    def bind(self, org_id: str, issuer: str, subject: str, member_id: str) -> None:
        """Bind the subject to the member (re-binding a subject whose member is gone)."""


class SeatClaims(Protocol):
    """Sign-ins accepted by ingest that will take a seat once applied (orgs with a seat limit)."""

    def add(self, org_id: str, sign_in_id: str, member_id: str | None) -> None:
        """Claim a seat; a member already claiming one claims nothing more."""

    def count(self, org_id: str, *, max_age_seconds: float) -> int:
        """Claims younger than max_age (older ones belong to sign-ins that will never be applied)."""

    def remove(self, org_id: str, sign_in_id: str) -> bool:
        """Drop the sign-in's claim; whether it had one."""

    def remove_all(self, claims: Iterable[tuple[str, str]]) -> None:
        """Drop the claims of these (org id, sign-in id) at once."""


class PendingLogins(Protocol):
    def find(self, people: Iterable[Person]) -> dict[Person, PendingLogin]:
        """The early sign-in of each of these people (before they were a member), locked."""

    def add(self, logins: Iterable[PendingLogin]) -> None:
        """Keep the earliest early sign-in of each person (they may arrive out of order; of two at
        the same instant, the one given or stored first)."""

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


class SecurityEvents(Protocol):
    def stage(self, signals: list[SecurityEvent]) -> None:
        """Queue these for delivery; one already staged (same jti) is left as it is."""


class Seats(Protocol):
    def add_if_absent(self, seat: Seat) -> bool:
        """Record a member's first billed login; False if the member was billed before."""

    def add_absent(self, seats: list[Seat]) -> set[tuple[str, str]]:
        """`add_if_absent` of each seat at once (of one member's, the first): the (org id, member id)
        of those recorded."""

    def get(self, org_id: str, member_id: str) -> Seat | None: ...

    def move(self, org_id: str, member_id: str, *, source: SeatState, target: SeatState) -> int | None:
        """Move the seat from `source` to `target`; its new version, or None when it was not in `source`."""

    def count_held(self, org_id: str) -> int: ...


class Accounts(Protocol):
    def taken(self, emails: Iterable[str]) -> set[str]:
        """Which of these (lower-cased) emails are accounts."""

    def by_email(self, email_ci: str) -> Account | None: ...

    def get(self, account_id: str) -> Account | None: ...

    def add(self, account_id: str, email: str, display_name: str | None) -> None: ...

    def view(self, email_ci: str) -> dict[str, Any] | None:
        """The account as the internal API shows it (id, email, display_name, org_id, created_at)."""

    def set_org(self, account_id: str, org_id: str) -> None: ...

    def lock(self, account_id: str) -> Account | None:
        """The account as it is now, its row locked until the unit of work ends (who owns it is decided under it)."""


class Domains(Protocol):
    """The email domains orgs claim; a domain is verified by at most one org."""

    def get(self, org_id: str, domain: str) -> OrgDomain | None:
        """The org's claim on the domain, locked."""

    def add_if_absent(self, org_id: str, domain: str, challenge: str) -> None:
        """Claim the domain with this challenge, unless the org claims it already (its challenge stays)."""

    def verifier(self, domain: str) -> str | None:
        """The id of the org that verified the domain, if any (never shown to another org)."""

    def mark_verified(self, org_id: str, domain: str, *, method: str, actor: str, at: datetime) -> bool:
        """Verify the org's claim; False if another org holds the domain verified (nothing changes then)."""


class Invitations(Protocol):
    def add(self, invitation: Invitation) -> None: ...

    def for_conflict(self, conflict_id: str) -> Invitation | None: ...

    def lock(self, invitation_id: str) -> Invitation | None:
        """The invitation, locked until the unit of work ends."""

    def accept(self, invitation_id: str, at: datetime) -> None: ...


class Conflicts(Protocol):
    def add_if_new(self, *, conflict_id: str, org_id: str, member_id: str, account_id: str, email_ci: str, error: str) -> bool:
        """Open a conflict for this (member, account) pair unless it was ever flagged."""

    def open_one(self, org_id: str, *, conflict_id: str | None = None, email_ci: str | None = None) -> Conflict | None:
        """The org's open conflict with this id, or about this email; locked."""

    def close(self, conflict_id: str, status: str, *, at: datetime, actor: str) -> None: ...


class Orgs(Protocol):
    def lock(self, org_id: str) -> Org:
        """The org as it is now, its row locked until the unit of work ends."""

    def by_id(self, org_id: str) -> Org | None: ...

    def set_settings(self, org_id: str, values: dict[str, Any]) -> None: ...


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
    def security_events(self) -> SecurityEvents: ...

    @property
    def identities(self) -> Identities: ...

    @property
    def seat_claims(self) -> SeatClaims: ...

    @property
    def accounts(self) -> Accounts: ...

    @property
    def conflicts(self) -> Conflicts: ...

    @property
    def domains(self) -> Domains: ...

    @property
    def invitations(self) -> Invitations: ...

    def stage(self, events: Iterable[Event]) -> None:
        """Publish these events if, and only if, the unit of work commits."""

    def lock_people(self, people: Iterable[Person]) -> None:
        """Serialise work on these people across processes until the unit of work ends."""

    def stage_fact(
        self, payload: c.Payload, *, org_id: str, org_slug: str, correlation_id: str | None = None, occasion: str | None = None
    ) -> Event: ...


class FactStaging:
    """`stage_fact` for a unit of work that can `stage` events and knows its transaction's id."""

    def stage(self, events: Iterable[Event]) -> None:
        raise NotImplementedError

    def transaction_id(self) -> int:
        raise NotImplementedError

    def stage_fact(
        self, payload: c.Payload, *, org_id: str, org_slug: str, correlation_id: str | None = None, occasion: str | None = None
    ) -> Event:
        """Stage an org-level fact (an admin's action, a sign-in, an account): its id is unique to
        this transaction, or to `occasion` when the caller has a unique id for the fact (a
        sign-in's id: no round trip for the transaction's); it is about no versioned resource, so
        it has no `resourceversion`; its `time` is now, when it is recorded, as for every event.
        When the fact happened belongs in its data (`logged_in_at`)."""
        event = Event.of(
            payload, org_id=org_id, org_slug=org_slug, version=UNVERSIONED,
            occasion=occasion if occasion is not None else self.transaction_id(), correlation_id=correlation_id,
        )  # fmt: skip
        self.stage([event])
        return event
