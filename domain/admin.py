"""What an org admin can do (admin API, console and CLI share these): settings, manual adds,
email conflicts, their resolution and invitations, activity. Each change is an event in the same transaction.
"""

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, Engine, Select, func, select

from core import credentials, cursors
from core.db import json_row
from core.tables import admin_tokens, conflicts, member_activity, members
from core.tables import orgs as orgs_table
from domain import orgs, ownership, token_facts, tokens
from domain.model import Conflict, ConflictStatus, MemberStatus, SeatPolicy, Source, is_email
from domain.uow import UnitOfWork
from events import catalogue as c
from events.envelope import Event


class AdminError(ValueError):
    """An admin request that cannot be honoured; `status` is the HTTP status that says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# -- credentials -----------------------------------------------------------------------------


def create_admin_token(
    engine: Engine, slug: str, name: str = "admin", *, topics: dict[str, str] | None = None, actor: str = "cli"
) -> str:
    """Issue an admin token for the org; returns it in clear, once. With `topics`, its `credential.issued`
    is staged with it."""
    token, token_id = credentials.new_token("adm"), str(uuid.uuid4())
    prefix = credentials.prefix_of(token)
    with engine.begin() as conn:
        org = orgs.get(conn, slug)
        conn.execute(
            admin_tokens.insert().values(
                id=token_id, token_hash=credentials.token_hash(token), prefix=prefix, org_id=org.id, name=name
            )
        )
        if topics is not None:
            fact = token_facts.issued_fact("admin", token_id, prefix, name, "created", actor)
            token_facts.ConnectionFacts(conn, topics).stage_fact(fact, org_id=org.id, org_slug=org.slug)
    return token


def revoke_token(
    uow: UnitOfWork, actor: str, token_id: str, kinds: tuple[str, ...] = ("admin", "scim"), org: orgs.Org | None = None
) -> dict[str, Any]:
    """Revoke an admin or SCIM token now (of `org`, when given, else 404), with its `credential.revoked`;
    revoking a revoked token changes nothing. Returns the token as lists show it."""
    conn: Connection = uow.conn  # type: ignore[attr-defined]  # tokens live in PostgreSQL only
    try:
        kind, row = tokens.find(conn, token_id, kinds, org.id if org else None)
    except tokens.TokenError as exc:
        raise AdminError(exc.status, str(exc)) from None
    if tokens.revoke(conn, kind, row):
        owner = org or orgs.Org.of(conn.execute(select(orgs_table).where(orgs_table.c.id == row.org_id)).one())
        uow.stage_fact(token_facts.revoked_fact(kind, row, actor), org_id=owner.id, org_slug=owner.slug)
    return next(t for t in tokens.listing(conn, kind, str(row.org_id)) if t["id"] == str(row.id))


@dataclass(frozen=True)
class AdminToken:
    """A live admin token's id and name, and the org it belongs to."""

    id: str
    name: str
    org: orgs.Org


def admin_token(conn: Connection, token: str) -> AdminToken | None:
    """The live admin token presented, or None; SCIM and service tokens are never admin tokens. Records
    its use at most once a minute (the caller commits)."""
    row = conn.execute(select(admin_tokens).where(admin_tokens.c.token_hash == credentials.token_hash(token))).first()
    if row is None or not credentials.matches(token, row.token_hash) or not tokens.is_live(row):
        return None
    tokens.touch(conn, admin_tokens, row)
    org = orgs.Org.of(conn.execute(select(orgs_table).where(orgs_table.c.id == row.org_id)).one())
    return AdminToken(id=str(row.id), name=str(row.name), org=org)


def authenticate(conn: Connection, token: str) -> orgs.Org | None:
    """The org a live admin token belongs to, or None."""
    found = admin_token(conn, token)
    return found.org if found else None


# -- settings --------------------------------------------------------------------------------

MAX_SEAT_LIMIT = 10_000_000


def settings_of(org: orgs.Org) -> dict[str, Any]:
    return {
        "manual_provisioning": org.manual_provisioning,
        "sso_provisioning": org.sso_provisioning,
        "scim_enabled": org.scim_enabled,
        "seat_limit": org.seat_limit,
        "seat_policy": org.seat_policy,
    }


def _checked(changes: dict[str, Any]) -> dict[str, Any]:
    """The changes asked for, checked: toggles are booleans (None: unchanged); `seat_limit` is a
    count of seats or None (no limit) whenever it is given; `seat_policy` is a SeatPolicy."""
    values = {k: v for k, v in changes.items() if v is not None or k == "seat_limit"}
    unknown = set(values) - set(orgs.SETTINGS) - set(orgs.SEAT_SETTINGS)
    if unknown:
        raise AdminError(400, f"unknown settings: {', '.join(sorted(unknown))}")
    for name in set(values) & set(orgs.SETTINGS):
        if not isinstance(values[name], bool):
            raise AdminError(400, f"{name} must be true or false")
    limit = values.get("seat_limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_SEAT_LIMIT):
        raise AdminError(400, f"seat_limit must be a whole number of seats from 0 to {MAX_SEAT_LIMIT}, or null for no limit")
    if "seat_policy" in values and values["seat_policy"] not in tuple(SeatPolicy):
        raise AdminError(400, "seat_policy must be 'refuse' or 'allow'")
    return values


def change_settings(uow: UnitOfWork, org: orgs.Org, actor: str, **changes: Any) -> orgs.Org:
    """Change provisioning toggles and the seat limit; an `org.settings.changed` event records before
    and after. Only the settings given change (a toggle given as None is left as it is)."""
    values = _checked(changes)
    # re-read under a row lock, so `before` is exact even when two admins change settings at once
    org = uow.orgs.lock(org.id)
    before = settings_of(org)
    if not values or all(before[k] == v for k, v in values.items()):
        return org
    uow.orgs.set_settings(org.id, values)
    after = {**before, **values}
    uow.stage_fact(c.OrgSettingsChanged(before=before, after=after, actor=actor), org_id=org.id, org_slug=org.slug)
    return replace(org, **values)


# -- members ---------------------------------------------------------------------------------


def add_member(uow: UnitOfWork, org: orgs.Org, actor: str, email: str, display_name: str | None = None) -> Event:
    """Add a person by hand (only while manual provisioning is on); returns the event, whose
    `member_id` the member has once the membership worker applies it."""
    if not org.manual_provisioning:
        raise AdminError(403, "manual provisioning is off for this organisation (setting: manual_provisioning)")
    email = (email or "").strip()
    if not is_email(email):
        raise AdminError(400, "email must be a valid email address")
    if uow.members.live_by_email(org.id, email.lower()) is not None:
        raise AdminError(409, f"{email} is already a member of this organisation")
    member_id = str(uuid.uuid4())
    added = c.MemberManuallyAdded(member_id=member_id, email=email, display_name=display_name, actor=actor)
    return uow.stage_fact(added, org_id=org.id, org_slug=org.slug)


SCIM_MANAGED = (
    "this member is managed by the organisation's SCIM client: deactivate or delete the user at the "
    "identity provider (the change arrives over SCIM)"
)


def remove_member(uow: UnitOfWork, org: orgs.Org, actor: str, member_id: str) -> str:
    """Remove a member no SCIM client manages (added by hand, or just in time by SSO); a billed seat
    is released when the membership worker applies it. Returns the event id."""
    member = uow.members.get(member_id) if _is_uuid(member_id) else None
    if member is None or member.org_id != org.id:
        raise AdminError(404, "no such member in this organisation")
    if member.status == MemberStatus.REMOVED:
        raise AdminError(409, "this member is removed already")
    if member.scim_user_id is not None:
        raise AdminError(409, SCIM_MANAGED)
    return uow.stage_fact(c.MemberManuallyRemoved(member_id=member.id, actor=actor), org_id=org.id, org_slug=org.slug).id


def remove_sso_members(uow: UnitOfWork, org: orgs.Org, actor: str) -> list[str]:
    """Switch just-in-time provisioning off and remove every live member it created (their seats are
    released); members pushed by SCIM or added by hand stay. Returns the removed members' ids."""
    org = change_settings(uow, org, actor, sso_provisioning=False)
    removed = uow.members.live_from(org.id, Source.SSO)
    for member in removed:
        uow.stage_fact(c.MemberManuallyRemoved(member_id=member.id, actor=actor), org_id=org.id, org_slug=org.slug)
    return [m.id for m in removed]


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def member_activity_of(conn: Connection, org: orgs.Org, member_id: str, limit: int = 50) -> list[dict[str, Any]]:
    if (
        not _is_uuid(member_id)
        or not conn.execute(select(members.c.id).where(members.c.org_id == org.id, members.c.id == member_id)).first()
    ):
        raise AdminError(404, "no such member in this organisation")
    rows = conn.execute(
        select(member_activity)
        .where(member_activity.c.org_id == org.id, member_activity.c.member_id == member_id)
        .order_by(member_activity.c.id.desc())
        .limit(limit)
    )
    return [json_row(r, "event_id", "type", "source", "summary", "at") for r in rows]


# -- conflicts -------------------------------------------------------------------------------


def _conflicts(org: orgs.Org, status: str | None) -> Select[Any]:
    query = (
        select(*(conflicts.c[name] for name in _CONFLICT_COLUMNS if name != "email"), members.c.email)
        .join(members, members.c.id == conflicts.c.member_id)
        .where(conflicts.c.org_id == org.id)
    )
    return query.where(conflicts.c.status == status) if status else query


_CONFLICT_COLUMNS = ("id", "member_id", "account_id", "email", "status", "error", "created_at", "resolved_at")


def list_conflicts(conn: Connection, org: orgs.Org, status: str | None = ConflictStatus.OPEN) -> list[dict[str, Any]]:
    query = _conflicts(org, status).order_by(conflicts.c.created_at, conflicts.c.id)
    return [json_row(r, *_CONFLICT_COLUMNS) for r in conn.execute(query)]


def page_conflicts(
    conn: Connection, org: orgs.Org, status: str | None, *, limit: int, after: str | None = None
) -> cursors.Page:
    """One page of the org's conflicts (of one status, or all), oldest first."""
    found = cursors.page(conn, _conflicts(org, status), conflicts.c.created_at, conflicts.c.id, limit=limit, after=after)
    return cursors.Page([json_row(SimpleNamespace(**r), *_CONFLICT_COLUMNS) for r in found.rows], found.next, found.previous)


def conflict_of(conn: Connection, org: orgs.Org, conflict_id: str) -> dict[str, Any] | None:
    row = conn.execute(_conflicts(org, None).where(conflicts.c.id == conflict_id)).first() if _is_uuid(conflict_id) else None
    return json_row(row, *_CONFLICT_COLUMNS) if row else None


def count_open_conflicts(conn: Connection, org: orgs.Org) -> int:
    where = (conflicts.c.org_id == org.id) & (conflicts.c.status == ConflictStatus.OPEN)
    return int(conn.execute(select(func.count()).select_from(conflicts).where(where)).scalar_one())


def _open_conflict(uow: UnitOfWork, org: orgs.Org, key: str) -> Conflict:
    """An open conflict by id or by the member's email, locked."""
    found = None
    if "@" in key:
        found = uow.conflicts.open_one(org.id, email_ci=key.lower())
    elif _is_uuid(key):
        found = uow.conflicts.open_one(org.id, conflict_id=key)
    if found is None:
        raise AdminError(404, "no open conflict with that id or email")
    return found


def resolve(uow: UnitOfWork, org: orgs.Org, actor: str, key: str, *, acquire: bool) -> dict[str, Any]:
    """Acquire the existing account into the org (it becomes the member), or dismiss the conflict.
    Acquiring takes only an account of no org on an email domain the org verified (else 409 and
    nothing changes); dismissing is always allowed."""
    conflict = _open_conflict(uow, org, key)
    if acquire:
        _check_acquirable(uow, org, conflict)
    now = datetime.now(UTC)
    status = ConflictStatus.ACQUIRED if acquire else ConflictStatus.DISMISSED
    uow.conflicts.close(conflict.id, status, at=now, actor=actor)
    if acquire:
        uow.accounts.set_org(conflict.account_id, org.id)
    uow.members.close_conflict(conflict.member_id, account_id=conflict.account_id if acquire else None, at=now)
    kind = c.AccountAcquired if acquire else c.EmailConflictDismissed
    resolution = kind(
        conflict_id=conflict.id, member_id=conflict.member_id, account_id=conflict.account_id, email=conflict.email_ci,
        actor=actor,
    )  # fmt: skip
    uow.stage_fact(resolution, org_id=org.id, org_slug=org.slug)
    return {"id": conflict.id, "status": status, "member_id": conflict.member_id, "account_id": conflict.account_id}


def _check_acquirable(uow: UnitOfWork, org: orgs.Org, conflict: Conflict) -> None:
    # The account row stays locked to the end of the transaction: an org acquiring it, or an
    # invitation accepted, at the same moment waits here and then sees the account taken.
    account = uow.accounts.lock(conflict.account_id)
    if account is None:
        raise AdminError(404, "no open conflict with that id or email")  # the account is gone (erased)
    domain = ownership.email_domain(account.email_ci)
    verified_here = domain is not None and uow.domains.verifier(domain) == org.id
    refusal = ownership.acquisition_refusal(org.id, account.org_id, domain, verified_here)
    if refusal is not None:
        raise AdminError(409, refusal)


def invite(uow: UnitOfWork, org: orgs.Org, actor: str, key: str) -> dict[str, Any]:
    """Invite the person behind an open conflict's account to join the org: the app asks them, and
    their consent makes the account the member. Inviting again returns the same invitation."""
    conflict = _open_conflict(uow, org, key)
    existing = uow.invitations.for_conflict(conflict.id)
    if existing is not None:
        return invitation_view(existing)
    invitation = ownership.Invitation(
        id=str(uuid.uuid4()), org_id=org.id, conflict_id=conflict.id, member_id=conflict.member_id,
        account_id=conflict.account_id, status=ownership.InvitationStatus.PENDING, created_at=datetime.now(UTC),
        accepted_at=None, actor=actor,
    )  # fmt: skip
    uow.invitations.add(invitation)
    invited = c.AccountInvited(
        invitation_id=invitation.id, conflict_id=conflict.id, member_id=conflict.member_id, account_id=conflict.account_id,
        actor=actor,
    )  # fmt: skip
    uow.stage_fact(invited, org_id=org.id, org_slug=org.slug)
    return invitation_view(invitation)


def invitation_view(invitation: ownership.Invitation) -> dict[str, Any]:
    """An invitation as the admin API, console and CLI show it to the inviting org."""
    return {
        "id": invitation.id, "status": str(invitation.status), "conflict_id": invitation.conflict_id,
        "member_id": invitation.member_id, "account_id": invitation.account_id,
        "created_at": invitation.created_at.isoformat(),
        "accepted_at": invitation.accepted_at.isoformat() if invitation.accepted_at else None,
    }  # fmt: skip
