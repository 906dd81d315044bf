"""SaaS accounts that exist outside any org, registered by the app; emails compare case-insensitively."""

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from core.db import json_row
from core.tables import accounts
from domain.model import is_email
from domain.postgres import SqlUnitOfWork
from events import catalogue as c

NO_ORG = "00000000-0000-0000-0000-000000000000"


class AccountError(ValueError):
    """Bad input for an account; nothing was written."""


@dataclass(frozen=True)
class Registered:
    account: dict[str, Any]
    created: bool


def _as_dict(row: Any) -> dict[str, Any]:
    return json_row(row, "id", "email", "display_name", "org_id", "created_at")


def register(uow: SqlUnitOfWork, email: str, display_name: str | None = None) -> Registered:
    """Register an account (idempotent on the email); a new one is announced for conflict checks."""
    email = (email or "").strip()
    if not is_email(email):
        raise AccountError("email must be a valid email address")
    email_ci = email.lower()
    conn = uow.conn
    row = conn.execute(select(accounts).where(accounts.c.email_ci == email_ci)).first()
    if row is not None:
        return Registered(_as_dict(row), created=False)
    account_id = str(uuid.uuid4())
    conn.execute(accounts.insert().values(id=account_id, email=email, email_ci=email_ci, display_name=display_name))
    uow.stage_fact(c.AccountRegistered(account_id=account_id, email=email), org_id=NO_ORG, org_slug="")
    row = conn.execute(select(accounts).where(accounts.c.id == account_id)).first()
    return Registered(_as_dict(row), created=True)
