"""Sign-ins: every successful one becomes a `login.succeeded` event (through the outbox), which the
membership worker turns into a first login, and the billing worker into a billing event.

Both SSO protocols and the app's own login API end here. A sign-in through SSO by someone who
is not a member is accepted only while the org's SSO provisioning is on (just in time); the
refusal is recorded as a `login.refused` event.
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from core.org_events import stage
from core.orgs import Org
from core.tables import members, scim_resources
from events import catalogue as c

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class LoginError(ValueError):
    """A sign-in that cannot be recorded (bad input); nothing was written."""


@dataclass(frozen=True)
class SignIn:
    """Who signed in, how, and where the IdP says they come from."""

    email: str
    method: str  # "oidc", "saml", or the app's own ("password", "magic_link", ...)
    sso: bool  # came through the org's IdP (just-in-time provisioning applies)
    idp: str | None = None  # issuer or entity id
    subject: str | None = None  # the IdP's stable id for the person
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    accepted: bool
    event_id: str
    reason: str | None = None


def is_known(conn: Connection, org: Org, email_ci: str) -> bool:
    """A member already, or a SCIM user whose membership is being applied."""
    if conn.execute(
        select(members.c.id).where(members.c.org_id == org.id, members.c.email_ci == email_ci, members.c.status != "removed")
    ).first():
        return True
    return bool(
        conn.execute(
            select(scim_resources.c.id).where(
                scim_resources.c.org_id == org.id,
                scim_resources.c.resource_type == "User",
                (scim_resources.c.user_name_ci == email_ci) | scim_resources.c.emails_ci.contains([email_ci]),
            )
        ).first()
    )


def record(conn: Connection, org: Org, sign_in: SignIn, topics: dict[str, str], correlation_id: str | None = None) -> Outcome:
    """Stage the sign-in's event in the caller's transaction and say whether it was accepted."""
    email = sign_in.email.strip()
    if not EMAIL.match(email) or len(email) > 320:
        raise LoginError("email must be a valid email address")
    email_ci = email.lower()
    jit = sign_in.sso and org.sso_provisioning
    accepted = not sign_in.sso or jit or is_known(conn, org, email_ci)
    kind = c.LOGIN_SUCCEEDED if accepted else c.LOGIN_REFUSED
    data: dict[str, Any] = {
        "email": email,
        "method": sign_in.method,
        "sso": sign_in.sso,
        "jit": bool(jit),
        "idp": sign_in.idp,
        "subject": sign_in.subject,
        "logged_in_at": sign_in.at.isoformat(),
    }
    reason = None
    if not accepted:
        reason = "SSO provisioning is off for this organisation and you are not a member yet; ask its admin to add you."
        data["reason"] = reason
    event = stage(
        conn, topics, kind, org_id=org.id, org_slug=org.slug, subject=f"logins/{email_ci}", key_id=email_ci,
        data=data, correlation_id=correlation_id, at=sign_in.at,
    )
    return Outcome(accepted, event.id, reason)
