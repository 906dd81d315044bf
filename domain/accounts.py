"""SaaS accounts that exist outside any org, registered by the app; emails compare case-insensitively."""

import uuid
from dataclasses import dataclass
from typing import Any

from domain.model import is_email
from domain.uow import UnitOfWork
from events import catalogue as c

NO_ORG = "00000000-0000-0000-0000-000000000000"


class AccountError(ValueError):
    """Bad input for an account; nothing was written."""


@dataclass(frozen=True)
class Registered:
    account: dict[str, Any]
    created: bool


def register(uow: UnitOfWork, email: str, display_name: str | None = None) -> Registered:
    """Register an account (idempotent on the email); a new one is announced for conflict checks."""
    email = (email or "").strip()
    if not is_email(email):
        raise AccountError("email must be a valid email address")
    existing = uow.accounts.view(email.lower())
    if existing is not None:
        return Registered(existing, created=False)
    account_id = str(uuid.uuid4())
    uow.accounts.add(account_id, email, display_name)
    uow.stage_fact(c.AccountRegistered(account_id=account_id, email=email), org_id=NO_ORG, org_slug="")
    created = uow.accounts.view(email.lower())
    assert created is not None
    return Registered(created, created=True)
