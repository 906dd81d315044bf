"""Sign-ins: every successful one becomes a `login.succeeded` event (through the outbox), which the
membership worker turns into a first login, and the billing worker into a billing event.

Both SSO protocols (ingest/sso) and the app's own login API (`POST /internal/v1/logins`, for a
sign-in that did not go through our SSO: password, magic link, social login...) end in `record`,
so every first login counts for billing, whatever its path. A sign-in through SSO by someone who
is not a member is accepted only while the org's SSO provisioning is on (just in time); the
refusal is recorded as a `login.refused` event.
"""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.settings import Settings
from domain import model, orgs
from domain.model import SEAT_LIMIT_REACHED, SIGN_IN_REFUSED, Member, accepts_sign_in, is_email, takes_seat
from domain.orgs import Org
from domain.postgres import NeedsTransaction, SqlUnitOfWork
from domain.service_tokens import ServiceCaller
from domain.uow import UnitOfWork
from events import catalogue as c
from ingest.http import problem, service_endpoint
from ingest.token_cache import TokenCache

_METHOD_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


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


def record(uow: UnitOfWork, org: Org, sign_in: SignIn, correlation_id: str | None = None) -> Outcome:
    """Stage the sign-in's event in the unit of work and say whether it was accepted: refused when
    SSO would make a non-member a member while the org does not provision through SSO, or when it
    would take a seat past a seat limit with the `refuse` policy (the member stays provisioned)."""
    email = sign_in.email.strip()
    if not is_email(email):
        raise LoginError("email must be a valid email address")
    jit = sign_in.sso and org.sso_provisioning
    # no row lock: a sign-in only reads who it is (the worker decides under its locks)
    found = model.resolve_sign_in(uow, org.id, email.lower(), sign_in.idp, sign_in.subject, lock=False)
    member = found if model.is_live(found) else None
    known = sign_in.sso and not jit and (member is not None or uow.members.known(org.id, email.lower()))
    accepted = accepts_sign_in(sso=sign_in.sso, sso_provisioning=org.sso_provisioning, known=known)
    reason = None if accepted else SIGN_IN_REFUSED
    sign_in_id = str(uuid.uuid4())
    if accepted and org.seat_limit is not None and _takes_seat(uow, org, member, email, bool(jit)):
        locked = uow.orgs.lock(org.id)  # seat claims of one org are decided one at a time
        if model.refuses_seat(uow, locked):
            accepted, reason = False, SEAT_LIMIT_REACHED.format(limit=locked.seat_limit)
        else:
            uow.seat_claims.add(org.id, sign_in_id, member.id if member else None)
    return _staged(uow, org, sign_in, sign_in_id, member.id if member else None, bool(jit), reason, correlation_id)


def _staged(
    uow: UnitOfWork, org: Org, sign_in: SignIn, sign_in_id: str, member_id: str | None, jit: bool, reason: str | None,
    correlation_id: str | None,
) -> Outcome:
    """The sign-in's event, staged: `login.succeeded`, or `login.refused` for a `reason`."""
    how: dict[str, Any] = {
        "sign_in_id": sign_in_id, "member_id": member_id, "email": sign_in.email.strip(), "method": sign_in.method,
        "sso": sign_in.sso, "jit": jit, "idp": sign_in.idp, "subject": sign_in.subject, "logged_in_at": sign_in.at.isoformat(),
    }  # fmt: skip
    payload = c.LoginSucceeded(**how) if reason is None else c.LoginRefused(**how, reason=reason)
    event = uow.stage_fact(payload, org_id=org.id, org_slug=org.slug, correlation_id=correlation_id, occasion=sign_in_id)
    return Outcome(reason is None, event.id, reason)


# The org and who an app's sign-in is (the oldest live member with the email, as
# `model.resolve_sign_in` finds a sign-in without an IdP subject): one statement, not two.
_ORG_AND_MEMBER = """
SELECT o.id::text AS id, o.slug, o.name, o.scim_enabled, o.sso_provisioning, o.manual_provisioning, o.seat_limit,
       o.seat_policy, m.id::text AS member_id
FROM orgs AS o
LEFT JOIN LATERAL (
  SELECT id FROM members WHERE org_id = o.id AND email_ci = %(email_ci)s AND status <> 'removed' ORDER BY created_at LIMIT 1
) AS m ON true
WHERE o.slug = %(slug)s
"""


def record_app_sign_in(uow: SqlUnitOfWork, slug: str, sign_in: SignIn) -> Outcome:
    """`record` of the app's own sign-in (`sso` false: no IdP subject, no just in time) into the org `slug`: its org and member
    read in one statement. An org with a seat limit decides the seat under its lock: given a unit
    of work in autocommit, that raises `NeedsTransaction` before anything is written."""
    email = sign_in.email.strip()
    if not is_email(email):
        raise LoginError("email must be a valid email address")
    row = uow.conn.exec_driver_sql(_ORG_AND_MEMBER, {"slug": slug, "email_ci": email.lower()}).first()
    if row is None:
        raise orgs.OrgError(f"no org {slug!r}")
    org = Org.of(row)
    if org.seat_limit is not None:
        if not uow.in_transaction:
            raise NeedsTransaction
        return record(uow, org, sign_in)
    return _staged(uow, org, sign_in, str(uuid.uuid4()), row.member_id, False, None, None)


def _takes_seat(uow: UnitOfWork, org: Org, member: Member | None, email: str, jit: bool) -> bool:
    """A provisioned member's sign-in takes a seat; so does a new member's: just in time, or a SCIM
    user whose member is still being applied (the sign-in waits for it and then counts)."""
    return takes_seat(member, jit=jit or (member is None and uow.members.known(org.id, email.lower())))


def _read_login(body: bytes) -> tuple[str, str, str]:
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise LoginError("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise LoginError("the body must be a JSON object")
    org, email, method = data.get("org"), data.get("email"), data.get("method", "password")
    if not isinstance(org, str) or not org:
        raise LoginError("'org' (the org's slug) is required")
    if not isinstance(email, str) or not email:
        raise LoginError("'email' is required")
    if not isinstance(method, str) or not method or len(method) > 32 or set(method.lower()) - _METHOD_CHARS:
        raise LoginError("'method' must be a short name such as 'password' or 'magic_link'")
    return org, email, method.lower()


def login_route(settings: Settings, engine: Engine, callers: TokenCache[ServiceCaller] | None = None) -> Route:
    """`POST /internal/v1/logins`: the app reports a sign-in of its own (202 with the event id)."""

    def login(uow: SqlUnitOfWork, body: bytes) -> Response:
        try:
            slug, email, method = _read_login(body)
            outcome = record_app_sign_in(uow, slug, SignIn(email=email, method=method, sso=False))
        except LoginError as exc:
            return problem(400, str(exc))
        except orgs.OrgError as exc:
            return problem(404, str(exc))
        if not outcome.accepted:  # the app must not let the person in: the org has no free seat
            refusal = {"status": 403, "detail": outcome.reason, "event_id": outcome.event_id, "accepted": False}
            return JSONResponse(refusal, status_code=403)
        return JSONResponse({"event_id": outcome.event_id, "accepted": True}, status_code=202)

    # most sign-ins are one read and one insert, each its own transaction (autocommit)
    endpoint = service_endpoint(engine, settings.topics(), login, callers=callers, autocommit=True)
    return Route("/internal/v1/logins", endpoint, methods=["POST"])
