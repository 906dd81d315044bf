"""What an org admin can do (admin API, console and CLI share these): settings, manual adds,
email conflicts and their resolution, activity. Each change is an event in the same transaction.
"""

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from core import credentials
from core.db import json_row
from core.tables import accounts, admin_tokens, conflicts, member_activity, members
from domain import orgs
from domain.model import Conflict, ConflictStatus, is_email
from domain.uow import UnitOfWork
from events import catalogue as c


class AdminError(ValueError):
    """An admin request that cannot be honoured; `status` is the HTTP status that says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# -- credentials -----------------------------------------------------------------------------


def create_admin_token(engine: Engine, slug: str, name: str = "admin") -> str:
    token = credentials.new_token("adm")
    with engine.begin() as conn:
        org = orgs.get(conn, slug)
        conn.execute(admin_tokens.insert().values(token_hash=credentials.token_hash(token), org_id=org.id, name=name))
    return token


def authenticate(conn: Connection, token: str) -> orgs.Org | None:
    """The org an admin token belongs to; SCIM and service tokens are never admin tokens."""
    row = conn.execute(select(admin_tokens).where(admin_tokens.c.token_hash == credentials.token_hash(token))).first()
    if row is None or not credentials.matches(token, row.token_hash):
        return None
    from core.tables import orgs as orgs_table

    return orgs.Org.of(conn.execute(select(orgs_table).where(orgs_table.c.id == row.org_id)).one())


# -- settings --------------------------------------------------------------------------------


def settings_of(org: orgs.Org) -> dict[str, bool]:
    return {
        "manual_provisioning": org.manual_provisioning,
        "sso_provisioning": org.sso_provisioning,
        "scim_enabled": org.scim_enabled,
    }


def change_settings(uow: UnitOfWork, org: orgs.Org, actor: str, **changes: bool | None) -> orgs.Org:
    """Change provisioning toggles; an `org.settings.changed` event records before and after."""
    values = {k: v for k, v in changes.items() if v is not None}
    unknown = set(values) - set(orgs.SETTINGS)
    if unknown:
        raise AdminError(400, f"unknown settings: {', '.join(sorted(unknown))}")
    # re-read under a row lock, so `before` is exact even when two admins change settings at once
    org = uow.orgs.lock(org.id)
    before = settings_of(org)
    if not values or all(before[k] == v for k, v in values.items()):
        return org
    uow.orgs.set_settings(org.id, values)
    after = {**before, **values}
    uow.stage_fact(c.OrgSettingsChanged(before=before, after=after, actor=actor), org_id=org.id, org_slug=org.slug)
    return replace(org, **values)  # type: ignore[arg-type]  # values are the boolean toggles only (checked above)


# -- members ---------------------------------------------------------------------------------


def add_member(uow: UnitOfWork, org: orgs.Org, actor: str, email: str, display_name: str | None = None) -> str:
    """Add a person by hand (only while manual provisioning is on); returns the event id."""
    if not org.manual_provisioning:
        raise AdminError(403, "manual provisioning is off for this organisation (setting: manual_provisioning)")
    email = (email or "").strip()
    if not is_email(email):
        raise AdminError(400, "email must be a valid email address")
    if uow.members.live_by_email(org.id, email.lower()) is not None:
        raise AdminError(409, f"{email} is already a member of this organisation")
    added = c.MemberManuallyAdded(email=email, display_name=display_name, actor=actor)
    event = uow.stage_fact(added, org_id=org.id, org_slug=org.slug)
    return event.id


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


def list_conflicts(conn: Connection, org: orgs.Org, status: str | None = ConflictStatus.OPEN) -> list[dict[str, Any]]:
    query = (
        select(conflicts, members.c.email, accounts.c.email.label("account_email"))
        .join(members, members.c.id == conflicts.c.member_id)
        .join(accounts, accounts.c.id == conflicts.c.account_id)
        .where(conflicts.c.org_id == org.id)
        .order_by(conflicts.c.created_at)
    )
    if status:
        query = query.where(conflicts.c.status == status)
    columns = ("id", "member_id", "account_id", "email", "status", "error", "created_at", "resolved_at")
    return [json_row(r, *columns) for r in conn.execute(query)]


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
    """Acquire the existing account into the org (it becomes the member), or dismiss the conflict."""
    conflict = _open_conflict(uow, org, key)
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
