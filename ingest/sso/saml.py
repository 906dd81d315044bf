"""SAML 2.0 sign-in per org: SP-initiated and IdP-initiated, HTTP-POST to an ACS per org.

Our service provider for org `slug` is entity `{public_url}/sso/{slug}/saml/metadata` with the
ACS `{public_url}/sso/{slug}/saml/acs`. Responses are checked by OneLogin's python3-saml in
strict mode, then by the rules below, which are stricter than the toolkit's defaults:

- the assertion, or the response that contains it, carries a valid signature by a certificate
  from the org's IdP metadata (never from the message's KeyInfo); the whole document holds
  exactly one assertion and only the signed one is read (signature wrapping is refused);
- every SignatureMethod and DigestMethod is SHA-256 or stronger: SHA-1 is refused;
- Issuer = the IdP's entity id; Audience = our entity id (required); Destination (when present)
  and SubjectConfirmationData Recipient = our ACS URL, exactly; NotBefore/NotOnOrAfter hold
  within SKEW seconds and the assertion must carry a NotOnOrAfter;
- a response with InResponseTo (SP-initiated) must answer an unexpired AuthnRequest of the
  same org, and consumes it; one without (IdP-initiated) is accepted;
- the assertion id is remembered in `saml_seen_assertions` until its NotOnOrAfter, in the
  same transaction as the login event: a second use is refused and a failure writes neither.
- an AuthnRequest the console marked as a test sign-in (`start_test`) is reported, whatever its
  response, and never recorded (`ingest.sso.trial`).
"""

import html
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from onelogin.saml2.authn_request import OneLogin_Saml2_Authn_Request
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from sqlalchemy import Connection, Engine, delete, func, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from core.db import ASYNC_COMMIT
from core.settings import Settings
from core.tables import saml_seen_assertions, sso_states
from domain import orgs, sso_config
from domain.postgres import SqlUnitOfWork
from ingest import logins
from ingest.sso import trial
from ingest.sso.saml_metadata import fetched_metadata, parse_metadata

SKEW = timedelta(seconds=60)
EMAIL_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
EMAIL_ATTRIBUTES = ("email", "mail", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress")
STRONG_SIGNATURES = {C.RSA_SHA256, C.RSA_SHA384, C.RSA_SHA512} | {
    f"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha{n}" for n in (256, 384, 512)
}
STRONG_DIGESTS = {C.SHA256, C.SHA384, C.SHA512}
MAX_FORM_BYTES = 512 * 1024
NO_SSO = "This organisation does not exist or has no single sign-on here."  # one answer: no org oracle


class Rejected(Exception):
    """A request we refuse before anything is written; `status` is the HTTP answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def urls(settings: Settings, slug: str) -> dict[str, str]:
    base = f"{settings.public_url.rstrip('/')}/sso/{slug}/saml"
    return {
        "login_url": f"{base}/login", "acs_url": f"{base}/acs",
        "entity_id": f"{base}/metadata", "metadata_url": f"{base}/metadata",
    }


def _toolkit_settings(settings: Settings, slug: str, config: dict[str, Any] | None) -> OneLogin_Saml2_Settings:
    u = urls(settings, slug)
    data: dict[str, Any] = {
        "strict": True,
        "debug": False,
        "sp": {
            "entityId": u["entity_id"],
            "assertionConsumerService": {"url": u["acs_url"], "binding": C.BINDING_HTTP_POST},
            "NameIDFormat": EMAIL_FORMAT,
        },
        "security": {
            # Our metadata asks for signed assertions; a signed response containing the assertion
            # is accepted too (the toolkit refuses a response where neither is signed).
            "wantAssertionsSigned": config is None,
            "wantMessagesSigned": False,
            "wantAttributeStatement": False,
            "rejectDeprecatedAlgorithm": True,
            "signatureAlgorithm": C.RSA_SHA256,
            "digestAlgorithm": C.SHA256,
        },
    }
    if config:
        data["idp"] = {
            "entityId": config["idp_entity_id"],
            "singleSignOnService": {"url": config["sso_url"], "binding": C.BINDING_HTTP_REDIRECT},
            "x509certMulti": {"signing": config["certs"]},
        }
    return OneLogin_Saml2_Settings(data, sp_validation_only=config is None)


def configure(
    engine: Engine,
    settings: Settings,
    slug: str,
    *,
    metadata_xml: str | None = None,
    metadata_url: str | None = None,
    actor: str = "cli",
) -> dict[str, Any]:
    """Store the org's IdP (from metadata XML, or fetched from an https URL; http on loopback only)."""
    if metadata_url:
        config = fetched_metadata(settings, slug, metadata_url) | {"metadata_url": metadata_url}
    elif metadata_xml:
        config = parse_metadata(metadata_xml)
    else:
        raise ValueError("give the IdP metadata XML or its URL")
    with engine.begin() as conn:
        org = orgs.get(conn, slug)
        sso_config.put(conn, org.id, "saml", config, topics=settings.topics(), actor=actor)  # audited
    return urls(settings, slug)


def _page(status: int, title: str, message: str) -> HTMLResponse:
    body = f"<!doctype html><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
    return HTMLResponse(body, status_code=status)


def _when(value: str) -> datetime:
    return datetime.fromtimestamp(OneLogin_Saml2_Utils.parse_SAML_to_time(value), UTC)


def _check(resp: OneLogin_Saml2_Response, acs_url: str, entity_id: str) -> datetime:
    """Our rules on top of the toolkit's; returns how long the assertion id must be remembered."""
    for node in resp.document.xpath("//ds:SignatureMethod | //ds:DigestMethod", namespaces={"ds": C.NS_DS}):
        allowed = STRONG_SIGNATURES if node.tag.endswith("SignatureMethod") else STRONG_DIGESTS
        if node.get("Algorithm") not in allowed:
            raise Rejected(f"signature algorithm {node.get('Algorithm')} is refused (SHA-256 or stronger only)", 401)
    destination = resp.document.get("Destination")
    if destination is not None and destination != acs_url:
        raise Rejected(f"the response is addressed to {destination}, not to this organisation's ACS", 401)
    if resp.get_audiences() != [entity_id]:
        raise Rejected("the assertion is not for this organisation (audience)", 401)
    confirmations = resp._query_assertion("/saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData")
    if not confirmations or any(c.get("Recipient") != acs_url for c in confirmations):
        raise Rejected("the assertion's Recipient is not this organisation's ACS", 401)
    now = datetime.now(UTC)
    conditions = resp._query_assertion("/saml:Conditions")[0]
    ends = [_when(n.get("NotOnOrAfter")) for n in [conditions, *confirmations] if n.get("NotOnOrAfter")]
    starts = [_when(n.get("NotBefore")) for n in [conditions, *confirmations] if n.get("NotBefore")]
    if not ends:
        raise Rejected("the assertion has no NotOnOrAfter", 401)
    if min(ends) + SKEW <= now or any(s - SKEW > now for s in starts):
        raise Rejected("the assertion is expired or not yet valid", 401)
    return max(ends) + SKEW


def _email(resp: OneLogin_Saml2_Response) -> str:
    nameid: str | None = resp.get_nameid()
    if resp.get_nameid_format() == EMAIL_FORMAT and nameid:
        return nameid
    attributes: dict[str, list[str]] = resp.get_attributes()
    for name in EMAIL_ATTRIBUTES:
        if attributes.get(name):
            return attributes[name][0]
    raise Rejected("the assertion carries no email (NameID in emailAddress format, or an email attribute)", 400)


def _target(settings: Settings, slug: str, relay_state: str | None) -> str:
    """The app URL, or the RelayState when it is a path on the app's origin."""
    app = settings.app_url.format(org=slug)
    if relay_state and relay_state.startswith("/") and not relay_state.startswith("//") and "\\" not in relay_state:
        parts = urlsplit(app)
        return f"{parts.scheme}://{parts.netloc}{relay_state}"
    return app


@dataclass(frozen=True)
class _Assertion:
    """What a valid response says: who signed in, which AuthnRequest it answers, how long to remember it."""

    email: str
    subject: str | None
    assertion_id: str
    in_response_to: str | None
    remember_until: datetime


PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"


def stable_subject(name_id: str | None, name_id_format: str | None) -> str | None:
    """The NameID as a stable id to bind, in the persistent format only (a transient one changes each sign-in)."""
    return name_id if name_id and name_id_format == PERSISTENT else None


def _validated(settings: Settings, slug: str, config: dict[str, Any], saml_response: str, seen: trial.Seen) -> _Assertion:
    """The toolkit's checks and ours on the SAMLResponse form field, or Rejected; `seen` keeps what it says."""
    u = urls(settings, slug)
    try:
        resp = OneLogin_Saml2_Response(_toolkit_settings(settings, slug, config), saml_response)
    except Exception:
        raise Rejected("SAMLResponse is not base64-encoded SAML XML") from None
    seen.note(trial.saml_sent(resp), verified=False)
    seen.answers = resp.get_in_response_to()
    acs = urlsplit(u["acs_url"])
    request_data = {"https": "on" if acs.scheme == "https" else "off", "http_host": acs.netloc, "script_name": acs.path}
    try:
        resp.is_valid(request_data, raise_exceptions=True)
        remember_until = _check(resp, u["acs_url"], u["entity_id"])
        email, assertion_id = _email(resp), resp.get_assertion_id()
        subject = stable_subject(resp.get_nameid(), resp.get_nameid_format())
        confirmations = resp._query_assertion("/saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData")
        answers = {resp.get_in_response_to()} | {c.get("InResponseTo") for c in confirmations}
    except Rejected:
        raise
    except Exception as exc:
        raise Rejected(f"the SAML response was refused: {exc}", 401) from None
    answers.discard(None)
    if len(answers) > 1:
        raise Rejected("the response and its assertion answer different requests (InResponseTo)", 401)
    in_response_to = answers.pop() if answers else None
    seen.verified = True
    return _Assertion(email, subject, assertion_id, in_response_to, remember_until)


def _answered_request(conn: Connection, org_id: str, in_response_to: str | None) -> dict[str, Any]:
    """Consume the pending AuthnRequest an SP-initiated response answers; returns its state (RelayState, test mark).

    An IdP-initiated response (no InResponseTo) answers none; any other must answer an unexpired one of this org.
    """
    if not in_response_to:
        return {}
    row = conn.execute(
        delete(sso_states)
        .where(sso_states.c.state == in_response_to, sso_states.c.org_id == org_id, sso_states.c.protocol == "saml")
        .where(sso_states.c.expires_at > func.now())
        .returning(sso_states.c.data)
    ).first()
    if row is None:
        raise Rejected("the response answers no pending sign-in of this organisation (InResponseTo)", 401)
    return dict(row.data)


def _remember(conn: Connection, org_id: str, assertion: _Assertion) -> None:
    """Record the assertion id until its NotOnOrAfter; a second use of it is a replay."""
    conn.execute(
        delete(saml_seen_assertions).where(
            saml_seen_assertions.c.org_id == org_id, saml_seen_assertions.c.not_on_or_after < func.now()
        )
    )
    fresh = conn.execute(
        pg_insert(saml_seen_assertions)
        .values(org_id=org_id, assertion_id=assertion.assertion_id, not_on_or_after=assertion.remember_until)
        .on_conflict_do_nothing()
    ).rowcount
    if not fresh:
        raise Rejected("this assertion was already used (replay)", 401)


class _Flow:
    """The blocking steps of the endpoints (run in threads); each refuses by raising Rejected."""

    def __init__(self, settings: Settings, engine: Engine):
        self.settings, self.engine = settings, engine

    def _load(self, slug: str) -> tuple[orgs.Org, dict[str, Any]]:
        """The org and its SAML connection; one 404 for an unknown org and one without SAML."""
        with self.engine.connect() as conn:
            try:
                org = orgs.get(conn, slug)
            except orgs.OrgError:
                raise Rejected(NO_SSO, 404) from None
            config = sso_config.get(conn, org.id, "saml")
        if not config:
            raise Rejected(NO_SSO, 404)
        return org, config

    def metadata(self, slug: str) -> Response:
        """Our SP metadata depends on the slug alone: served for any well-formed one, so it tells no org from another."""
        if not orgs.SLUG.fullmatch(slug):
            raise Rejected(NO_SSO, 404)
        metadata = _toolkit_settings(self.settings, slug, None).get_sp_metadata()
        return Response(metadata, media_type="application/samlmetadata+xml")

    def login(self, slug: str, relay_state: str | None, test_by: str | None = None) -> Response:
        """SP-initiated: an AuthnRequest via HTTP-Redirect; its id is kept for InResponseTo, once."""
        org, config = self._load(slug)
        request = OneLogin_Saml2_Authn_Request(_toolkit_settings(self.settings, slug, config))
        expires = datetime.now(UTC) + timedelta(seconds=self.settings.sso_state_ttl_seconds)
        with self.engine.begin() as conn:
            conn.execute(ASYNC_COMMIT)  # a state lost in a crash only means signing in again; anyone can make one
            conn.execute(
                insert(sso_states).values(
                    state=request.get_id(), org_id=org.id, protocol="saml", expires_at=expires,
                    data={"relay_state": relay_state, **(trial.mark(test_by) if test_by else {})},
                )
            )
        query = {"SAMLRequest": request.get_request(), **({"RelayState": relay_state} if relay_state else {})}
        sep = "&" if "?" in config["sso_url"] else "?"
        return RedirectResponse(f"{config['sso_url']}{sep}{urlencode(query)}", status_code=302)

    def acs(self, slug: str, form: dict[str, str], correlation_id: str) -> Response:
        """Validate the response; then replay cache, request id and login event in one transaction."""
        org, config = self._load(slug)
        if not form.get("SAMLResponse"):
            raise Rejected("SAMLResponse is missing")
        seen = trial.Seen()
        try:
            assertion = _validated(self.settings, slug, config, form["SAMLResponse"], seen)
        except Rejected as exc:
            with self.engine.begin() as conn:
                actor = trial.claimed(conn, org.id, seen.answers)
            if actor:  # a test sign-in from the console: reported, whatever the response was
                return trial.refused(self.engine, org, "saml", config["idp_entity_id"], actor, str(exc), seen)
            raise
        with self.engine.begin() as conn:
            pending = _answered_request(conn, org.id, assertion.in_response_to)
            _remember(conn, org.id, assertion)
            sign_in = logins.SignIn(
                email=assertion.email, method="saml", sso=True, idp=config["idp_entity_id"], subject=assertion.subject
            )
            if actor := trial.tester(pending):  # verified: the org's rules decide it, and nothing is recorded
                return trial.decided(conn, self.settings, org, sign_in, actor, seen)
            relay_state = pending.get("relay_state") or form.get("RelayState")
            try:
                outcome = logins.record(SqlUnitOfWork(conn, self.settings.topics()), org, sign_in, correlation_id)
            except logins.LoginError as exc:
                raise Rejected(str(exc)) from None
        if not outcome.accepted:
            return _page(403, "Sign-in refused", outcome.reason or "refused")
        return RedirectResponse(_target(self.settings, slug, relay_state), status_code=303)


def start_test(settings: Settings, engine: Engine, slug: str, actor: str) -> Response:
    """The console's test sign-in: an AuthnRequest marked for `actor`, reported instead of recorded
    (ingest.sso.trial). Raises Rejected when the org has no SAML."""
    return _Flow(settings, engine).login(slug, None, test_by=actor)


async def _form(request: Request) -> dict[str, str] | Response:
    """The ACS's url-encoded form, or the error page when it is too large or not a form."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return _page(413, "Sign-in failed", "the SAML response is too large")
    try:
        return {k: v[0] for k, v in parse_qs(body.decode(), max_num_fields=20).items()}
    except ValueError:
        return _page(400, "Sign-in failed", "the request body is not a form")


def routes(settings: Settings, engine: Engine) -> list[Route]:
    """The SP metadata, the SP-initiated login and the ACS of every org; blocking work runs in threads."""
    flow = _Flow(settings, engine)

    async def guarded(call: Callable[..., Response], *args: Any) -> Response:
        try:
            return await run_in_threadpool(call, *args)
        except Rejected as exc:
            return _page(exc.status, "Sign-in failed" if exc.status != 404 else "Not found", str(exc))

    async def metadata(request: Request) -> Response:
        return await guarded(flow.metadata, request.path_params["org"])

    async def login(request: Request) -> Response:
        relay = request.query_params.get("next")
        relay = relay if relay and len(relay) <= 512 else None
        return await guarded(flow.login, request.path_params["org"], relay)

    async def acs(request: Request) -> Response:
        form = await _form(request)
        if isinstance(form, Response):
            return form
        correlation_id = uuid.uuid4().hex
        return await guarded(flow.acs, request.path_params["org"], form, correlation_id)

    return [
        Route("/sso/{org}/saml/metadata", metadata, methods=["GET"]),
        Route("/sso/{org}/saml/login", login, methods=["GET"]),
        Route("/sso/{org}/saml/acs", acs, methods=["POST"]),
    ]
