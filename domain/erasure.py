"""Erasing one member's personal data from PostgreSQL, in one transaction, announced by `member.erased`.

A member the org's SCIM client still manages cannot be erased (the IdP would push them back): the org
deprovisions them at its IdP first. Ids, statuses, sources, dates and the seat ledger stay; emails, names,
IdP subjects and identifiers, the SCIM resource and everything that quotes them go. What erasing
removes or rewrites, per table, is the report; a second erasure finds nothing left and announces nothing.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Text, and_, cast, delete, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import JSONB

from core.tables import (
    accounts,
    conflicts,
    dead_letters,
    invitations,
    member_activity,
    member_identities,
    members,
    outbox,
    pending_logins,
    scim_group_members,
    scim_resources,
    sso_test_results,
)
from domain.model import MemberStatus
from domain.orgs import Org
from domain.uow import UnitOfWork
from events import catalogue as c
from events.envelope import Event

# An erased account keeps its id (members, conflicts and the app refer to it) under an address that can
# never be delivered to or registered (RFC 2606 reserves `.invalid`), so no one signs in as it again.
ERASED_ACCOUNT_DOMAIN = "erased.invalid"
_PERSONAL = ("email", "email_ci", "user_name", "display_name", "given_name", "family_name", "external_id")


class ErasureError(ValueError):
    """An erasure that cannot be done; nothing was changed. `status` is the HTTP status that says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class SqlUnitOfWork(UnitOfWork, Protocol):
    """A unit of work on PostgreSQL: erasing sweeps tables no repository covers."""

    @property
    def conn(self) -> Connection: ...


@dataclass(frozen=True)
class Erasure:
    """What one erasure did: rows erased (deleted or rewritten) per table, whether it removed a live
    member, and the `member.erased` event it staged (None: nothing was left to erase)."""

    org_slug: str
    member_id: str
    removed: bool
    erased: dict[str, int] = field(default_factory=dict)
    event_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "org": self.org_slug, "member_id": self.member_id, "removed": self.removed, "erased": self.erased,
            "event_id": self.event_id,
        }  # fmt: skip


def erased_event(org: Org, member_id: str, version: int, actor: str) -> Event:
    """The `member.erased` event: its id derives from (org, member), so erasing again is the same event;
    `version` is the member's event counter after it, like every member event's."""
    payload = c.MemberErased(member_id=member_id, actor=actor)
    return Event.of(payload, org_id=org.id, org_slug=org.slug, version=version, occasion=None)


def erase(uow: SqlUnitOfWork, org: Org, member_id: str, actor: str) -> Erasure:
    """Erase the member's personal data from every table and stage `member.erased`; refused (nothing
    changes) for a member SCIM still manages, or while unpublished events still quote the person."""
    conn = uow.conn
    first = _member(conn, org, member_id, lock=False)
    # people first, then the member row: the membership worker takes its locks in that order
    uow.lock_people((org.id, address) for address in _addresses(first, None))
    row = _member(conn, org, member_id, lock=True)
    if row.status != MemberStatus.REMOVED and row.scim_user_id is not None:
        raise ErasureError(
            409,
            f"member {member_id} is still provisioned by the organisation's SCIM client (status {row.status}); "
            "deprovision them at the identity provider first, then erase them",
        )
    scim_user = _scim_user(conn, org, row.scim_user_id)
    addresses = _addresses(row, scim_user)
    _refuse_while_in_flight(conn, org, row.scim_user_id, addresses)
    needles = [*addresses, member_id, *([row.scim_user_id] if row.scim_user_id else [])]
    live = row.status != MemberStatus.REMOVED
    erased = {
        "members": int(live or any(getattr(row, name) is not None for name in _PERSONAL)),
        "member_identities": _deleted(conn, member_identities, member_identities.c.member_id == member_id),
        "member_activity": _emptied_activity(conn, org, member_id),
        "scim_resources": _deleted_scim_user(conn, org, row.scim_user_id),
        "scim_group_members": _deleted_group_memberships(conn, org, row.scim_user_id),
        "invitations": _deleted(conn, invitations, and_(invitations.c.org_id == org.id, invitations.c.member_id == member_id)),
        "conflicts": _deleted(conn, conflicts, and_(conflicts.c.org_id == org.id, conflicts.c.member_id == member_id)),
        "pending_logins": _deleted_pending(conn, org, addresses),
        "accounts": _anonymised_account(conn, org, row.account_id),
        "dead_letters": _deleted_dead_letters(conn, needles),
        "sso_test_results": _deleted(conn, sso_test_results, and_(
            sso_test_results.c.org_id == org.id, or_(*(_contains(cast(sso_test_results.c.report, Text), n) for n in needles))
        )),
    }  # fmt: skip
    if not any(erased.values()):
        return Erasure(org.slug, member_id, removed=False, erased=erased)
    event = erased_event(org, member_id, row.version + 1, actor)
    values: dict[str, Any] = dict.fromkeys(_PERSONAL) | {"conflict_id": None, "version": event.resource_version}
    if live:
        values["status"] = MemberStatus.REMOVED  # its seat is released by whoever consumes member.erased
    conn.execute(update(members).where(members.c.id == member_id).values(**values, updated_at=datetime.now(UTC)))
    uow.stage([event])
    return Erasure(org.slug, member_id, removed=live, erased=erased, event_id=event.id)


# -- reading ------------------------------------------------------------------------------------


def _member(conn: Connection, org: Org, member_id: str, *, lock: bool) -> Any:
    """The org's member with this id (its row locked with `lock`), or a 404 for any other org's or none."""
    try:
        uuid.UUID(member_id)
    except (ValueError, TypeError, AttributeError):
        raise ErasureError(404, f"no member {member_id!r} in organisation {org.slug!r}") from None
    query = select(members).where(members.c.org_id == org.id, members.c.id == member_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise ErasureError(404, f"no member {member_id!r} in organisation {org.slug!r}")
    return row


def _scim_user(conn: Connection, org: Org, scim_user_id: str | None) -> Any:
    if scim_user_id is None:
        return None
    user = and_(scim_resources.c.org_id == org.id, scim_resources.c.id == scim_user_id, scim_resources.c.resource_type == "User")
    return conn.execute(select(scim_resources.c.user_name_ci, scim_resources.c.emails_ci).where(user)).first()


def _addresses(member: Any, scim_user: Any) -> list[str]:
    """Every email the person is known by here, lower-cased: the member's, and its SCIM user's."""
    found = {member.email_ci, (member.email or "").lower(), (member.user_name or "").lower()}
    if scim_user is not None:
        found |= {scim_user.user_name_ci, *(scim_user.emails_ci or [])}
    return sorted(a for a in found if a and "@" in a)


def _contains(text: Any, needle: Any) -> Any:
    """`text` mentions `needle`, case-insensitively (`strpos`, so `_` and `%` in an email are literal)."""
    return func.strpos(func.lower(text), func.lower(needle)) > 0


def _refuse_while_in_flight(conn: Connection, org: Org, scim_user_id: str | None, addresses: list[str]) -> None:
    """Events still in the outbox that quote the person would reach Kafka (and the workers, who would write
    the data back) after the erasure: the relay publishes them within moments, so erase after that."""
    quoting = [_contains(cast(outbox.c.payload, Text), literal(a)) for a in addresses]
    if scim_user_id is not None:
        quoting.append(outbox.c.key == f"{org.id}:{scim_user_id}")
    if not quoting:
        return
    waiting = conn.execute(select(func.count()).select_from(outbox).where(or_(*quoting))).scalar_one()
    if waiting:
        raise ErasureError(
            409,
            f"{waiting} event(s) about this person are still waiting to be published; nothing was erased. "
            "Erase again once the relay has published them (is it running?)",
        )


# -- erasing ------------------------------------------------------------------------------------


def _deleted(conn: Connection, table: Any, where: Any) -> int:
    return int(conn.execute(delete(table).where(where)).rowcount)


def _emptied_activity(conn: Connection, org: Org, member_id: str) -> int:
    """The activity rows stay (what happened, from which source, when); their summaries go."""
    empty = literal({}, JSONB)
    rows = and_(member_activity.c.org_id == org.id, member_activity.c.member_id == member_id, member_activity.c.summary != empty)
    return int(conn.execute(update(member_activity).where(rows).values(summary=empty)).rowcount)


def _deleted_scim_user(conn: Connection, org: Org, scim_user_id: str | None) -> int:
    if scim_user_id is None:
        return 0
    user = and_(scim_resources.c.org_id == org.id, scim_resources.c.id == scim_user_id, scim_resources.c.resource_type == "User")
    return _deleted(conn, scim_resources, user)


def _deleted_group_memberships(conn: Connection, org: Org, scim_user_id: str | None) -> int:
    """The user's rows in SCIM groups (their `display` is the person's name)."""
    if scim_user_id is None:
        return 0
    return _deleted(
        conn, scim_group_members, and_(scim_group_members.c.org_id == org.id, scim_group_members.c.member_id == scim_user_id)
    )


def _deleted_pending(conn: Connection, org: Org, addresses: Iterable[str]) -> int:
    wanted = list(addresses)
    if not wanted:
        return 0
    return _deleted(conn, pending_logins, and_(pending_logins.c.org_id == org.id, pending_logins.c.email_ci.in_(wanted)))


def _anonymised_account(conn: Connection, org: Org, account_id: str | None) -> int:
    """The member's account, if this org owns it, under its erased address; an account outside the org
    is the person's own (they erase it through the app) and stays as it is."""
    if account_id is None:
        return 0
    address = f"erased-{account_id}@{ERASED_ACCOUNT_DOMAIN}"
    owned = and_(accounts.c.id == account_id, accounts.c.org_id == org.id, accounts.c.email_ci != address)
    return int(conn.execute(update(accounts).where(owned).values(email=address, email_ci=address, display_name=None)).rowcount)


def _deleted_dead_letters(conn: Connection, needles: Iterable[str]) -> int:
    """Dead letters whose key or value quotes the person (the value is raw bytes: compared as escaped text,
    so a record that is not UTF-8 is searched too)."""
    value = func.encode(dead_letters.c.value, "escape")
    quoting = [
        or_(_contains(dead_letters.c.key, literal(n)), _contains(value, func.encode(func.convert_to(n, "UTF8"), "escape")))
        for n in needles
    ]
    return _deleted(conn, dead_letters, or_(*quoting)) if quoting else 0
