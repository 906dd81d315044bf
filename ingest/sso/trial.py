"""Test sign-ins: an org admin checks the org's single sign-on from the console, signing no one in.

- The console starts an ordinary SP-initiated sign-in (`oidc.start_test`, `saml.start_test`) whose
  state (the OIDC `state`, the SAML AuthnRequest id) is marked with the admin who started it.
- When the IdP answers, the protocol runs every check of a real sign-in. A refusal there is
  reported with its reason and what the IdP sent (marked "not verified").
- A response that passes is then decided by the org's rules with the code of a real sign-in
  (`ingest.logins.record`), inside a savepoint that is rolled back: the verdict cannot drift from a
  real sign-in's, and no member, event, seat claim or identity binding is written. The state is
  consumed and a SAML assertion id still enters the replay cache, so nothing a test saw can be
  used again.
- The report (what the IdP sent, the person it names, the member they would be, the verdict and
  why) is kept in `sso_test_results` for an hour and shown at `/console/sso/tests/{id}` to the
  org's admins only. The browser that comes back from the IdP gets a page of ours that moves it
  there: a navigation from our own page, so the console's SameSite=Strict cookie goes along.
"""

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import Connection, Engine, delete, insert, select
from starlette.responses import HTMLResponse, Response

from core.settings import Settings
from core.tables import sso_states, sso_test_results
from domain import model
from domain.model import Member, MemberStatus
from domain.orgs import Org
from domain.postgres import SqlUnitOfWork
from ingest import logins

KEEP = timedelta(hours=1)
KEEP_PER_ORG = 20
MAX_ITEMS, MAX_VALUE = 60, 300  # what the IdP sent is shown, within bounds
RESULTS = "/console/sso/tests"
MARK = "test_by"


def mark(actor: str) -> dict[str, str]:
    """The sign-in state's mark: this sign-in is a test started by `actor`."""
    return {MARK: actor}


def tester(data: dict[str, Any]) -> str | None:
    """Who started the test sign-in this state belongs to; None for a real sign-in."""
    actor = data.get(MARK)
    return actor if isinstance(actor, str) else None


@dataclass
class Seen:
    """What the IdP sent, as far as the checks got, and whether it was verified."""

    items: list[tuple[str, str]] = field(default_factory=list)
    verified: bool = False
    answers: str | None = None  # SAML: the request the response says it answers (InResponseTo), unchecked

    def note(self, pairs: Iterable[tuple[str, Any]], *, verified: bool) -> None:
        self.items = [(str(k)[:MAX_VALUE], _shown(v)) for k, v in list(pairs)[:MAX_ITEMS]]
        self.verified = verified


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= MAX_VALUE else f"{text[:MAX_VALUE]}… ({len(text)} characters)"


def unverified_claims(id_token: str) -> list[tuple[str, Any]]:
    """An ID token's claims before its checks (to show an admin what a refused token said)."""
    try:
        claims = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return [("id_token", "(not a JWT)")]
    return list(claims.items()) if isinstance(claims, dict) else []


def saml_sent(response: Any) -> list[tuple[str, Any]]:
    """Issuer, NameID and attributes of a python3-saml response, each only when it can be read."""
    pairs: list[tuple[str, Any]] = []
    readers = (("Issuer", response.get_issuers), ("NameID", response.get_nameid),
               ("NameID Format", response.get_nameid_format), ("AuthnContext", response.get_authn_contexts))
    for name, read in readers:
        try:
            value = read()
            pairs.append((name, value[0] if isinstance(value, list) and len(value) == 1 else value))
        except Exception:  # the toolkit raises its own errors for what a message lacks
            continue
    try:
        attributes = response.get_attributes()
    except Exception:
        attributes = {}
    return pairs + [(name, values[0] if len(values) == 1 else values) for name, values in attributes.items()]


def claimed(conn: Connection, org_id: str, in_response_to: str | None) -> str | None:
    """Consume the pending SAML test sign-in a refused response says it answers; who started it, or None."""
    if not in_response_to or len(in_response_to) > 256:
        return None
    row = conn.execute(
        delete(sso_states)
        .where(sso_states.c.state == in_response_to, sso_states.c.org_id == org_id, sso_states.c.protocol == "saml")
        .where(sso_states.c.data.has_key(MARK))
        .returning(sso_states.c.data)
    ).first()
    return tester(row.data) if row else None


def refused(engine: Engine, org: Org, protocol: str, idp: str, actor: str, reason: str, seen: Seen) -> Response:
    """Report a test sign-in that a protocol check refused."""
    with engine.begin() as conn:
        return _report(conn, org, protocol, idp, actor, seen, accepted=False, stage="identity provider", reason=reason)


def decided(conn: Connection, settings: Settings, org: Org, sign_in: logins.SignIn, actor: str, seen: Seen) -> Response:
    """Decide a verified test sign-in by the org's rules, in a savepoint rolled back, and report it."""
    uow = SqlUnitOfWork(conn, settings.topics())
    savepoint = conn.begin_nested()
    try:
        found = model.resolve_sign_in(uow, org.id, sign_in.email.strip().lower(), sign_in.idp, sign_in.subject, lock=False)
        outcome = logins.record(uow, org, sign_in)
        accepted, reason = outcome.accepted, outcome.reason or _why_accepted(org, found)
    except logins.LoginError as exc:
        found, accepted, reason = None, False, f"the email the identity provider sent cannot be used: {exc}"
    finally:
        savepoint.rollback()
    person = {"email": sign_in.email, "subject": sign_in.subject,
              "member": {"id": found.id, "email": found.email, "status": found.status.value} if found else None}
    return _report(conn, org, sign_in.method, sign_in.idp or "", actor, seen, accepted=accepted,
                   stage="organisation", reason=reason, person=person)


def _why_accepted(org: Org, found: Member | None) -> str:
    if found is not None and model.is_live(found):
        after = {
            MemberStatus.PROVISIONED: "it would be their first login, which takes a seat",
            MemberStatus.ACTIVE: "they would be signed in (they hold a seat already)",
        }.get(found.status, "the sign-in would be recorded, but a deactivated member takes no seat")
        return f"{found.email} is a member of this organisation ({found.status.value}): {after}."
    if org.sso_provisioning:
        again = "was removed from this organisation" if found is not None else "is not a member yet"
        return f"This person {again}: SSO provisioning is on, so signing in would make them a member just in time (a seat)."
    return "A user your identity provider pushed over SCIM is being added with this email: they would sign in once it is."


def _report(conn: Connection, org: Org, protocol: str, idp: str, actor: str, seen: Seen, **verdict: Any) -> Response:
    now, test_id = datetime.now(UTC), secrets.token_urlsafe(18)
    report = {"protocol": protocol, "idp": idp, "by": actor, "at": now.isoformat(),
              "sent": seen.items, "verified": seen.verified, "person": None, **verdict}  # fmt: skip
    mine = sso_test_results.c.org_id == org.id
    newest = select(sso_test_results.c.id).where(mine).order_by(sso_test_results.c.created_at.desc()).limit(KEEP_PER_ORG - 1)
    conn.execute(delete(sso_test_results).where(mine, (sso_test_results.c.created_at < now - KEEP)
                                                | sso_test_results.c.id.not_in(newest.scalar_subquery())))
    conn.execute(insert(sso_test_results).values(id=test_id, org_id=org.id, report=report))
    return _moved(test_id)


def _moved(test_id: str) -> Response:
    url = f"{RESULTS}/{test_id}"
    body = (f'<!doctype html><meta charset=utf-8><meta http-equiv="refresh" content="0;url={url}">'
            f'<title>Test sign-in finished</title><h1>Test sign-in finished</h1><p><a href="{url}">See the result</a></p>\n')
    return HTMLResponse(body, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def load(conn: Connection, org_id: str, test_id: str) -> dict[str, Any] | None:
    """A test sign-in's report, for an admin of its org only, within the hour it is kept."""
    row = conn.execute(
        select(sso_test_results.c.report).where(
            sso_test_results.c.id == test_id[:64], sso_test_results.c.org_id == org_id,
            sso_test_results.c.created_at > datetime.now(UTC) - KEEP,
        )
    ).first()  # fmt: skip
    return dict(row.report) if row else None
