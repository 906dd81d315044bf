"""OpenID Connect sign-in per org: the authorization code flow with PKCE (S256), state and nonce.

- The org's OpenID Provider is its issuer: https (http on a loopback host only); the discovery
  document must name exactly that issuer. Discovery and JWKS are cached in-process.
- `state` (with the nonce, PKCE verifier and a per-browser cookie's hash) lives in `sso_states`,
  belongs to one org, expires after `sso_state_ttl_seconds`, and is deleted when presented.
- The code is exchanged with the client secret (client_secret_basic, else _post) and verifier.
- The ID token: alg RS256, ES256 or PS256 only; signed by a JWKS key (refetched once on an
  unknown kid); `iss` exactly the issuer; `aud` contains the client id (`azp` names it when
  present or when there are several audiences); exp/iat/nbf with 60 s leeway; the nonce sent;
  `email` is the person unless `email_verified` is false.
- Then, in one transaction, `ingest.logins.record`: accepted -> 302 to the app, refused -> 403 page
  (its `login.refused` event committed). A verification failure -> 400/401 page and no event;
  unknown or unconfigured org -> one 404 page; unreachable OP -> 502 (one message, whatever the cause);
  the org's IdP already busy -> 503. Every call to the OP goes through `outbound` (address checks, pinned
  connections, timeouts, a cap per org), every page step through `bulkhead` (threads of its own).
- The state is consumed only by the browser that started the sign-in (its cookie): a request from
  another browser that learnt the state cannot cancel it.
- A state the console marked as a test sign-in (`start_test`) runs the same checks and is then
  reported, not recorded (`ingest.sso.trial`).
"""

import base64
import hashlib
import hmac
import html
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import jwt
from sqlalchemy import Connection, Engine, delete, insert, select
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from core import sealed
from core.db import ASYNC_COMMIT
from core.settings import Settings
from core.tables import sso_states
from domain import orgs, sso_config
from domain.postgres import SqlUnitOfWork
from ingest import logins
from ingest.sso import outbound, trial
from ingest.sso.bulkhead import BUSY_MESSAGE, Bulkhead

log = logging.getLogger("provisioner.sso")

ALGORITHMS = ("RS256", "ES256", "PS256")
LEEWAY_SECONDS = 60
SCOPE = "openid email profile"
CACHE_SECONDS = 300.0
COOKIE = "provisioner_oidc"
# One answer for every discovery failure, whatever answered (or did not) at the URL: no port oracle.
UNUSABLE = ("the OpenID Provider cannot be used: no discovery document naming exactly this issuer, with https "
            "endpoints, could be read from it (its address must be public, it must answer within the timeouts)")
NO_SSO = "This organisation does not exist or has no single sign-on here."
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_STATE = re.compile(r"[A-Za-z0-9_-]{1,128}")
_cache: dict[str, tuple[float, dict[str, Any]]] = {}
_cache_lock = threading.Lock()


class Refused(Exception):
    """A sign-in that stops here, with the status and message of the page the browser gets."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class ProviderError(ValueError):
    """The OpenID Provider cannot be used (unreachable, another issuer, non-https endpoints)."""


def _allowed_url(url: Any) -> bool:
    """https anywhere; http only on a loopback host (a local test IdP)."""
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    return bool(host) and (parts.scheme == "https" or (parts.scheme == "http" and host in _LOOPBACK))


def _fetch_json(settings: Settings, org: str, url: str, fresh: bool = False) -> tuple[dict[str, Any], bool]:
    """GET a JSON object, cached in-process for CACHE_SECONDS; also says whether it was fetched now.

    Raises outbound.Unreachable (also for a non-200 or non-object answer) or outbound.Busy."""
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(url)
    if hit and not fresh and hit[0] > now:
        return hit[1], False
    response = outbound.call(settings, org, "GET", url, headers={"Accept": "application/json"})
    try:
        doc = response.json() if response.status_code == 200 else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        reason = f"status {response.status_code}, not a JSON object"
        log.warning("unusable answer from an OpenID Provider", extra={"org": org, "url": url[:300], "reason": reason})
        raise outbound.Unreachable("not a JSON object with status 200")
    with _cache_lock:
        _cache[url] = (now + CACHE_SECONDS, doc)
    return doc, True


def discover(settings: Settings, org: str, issuer: str) -> dict[str, Any]:
    """The issuer's discovery document; it must name exactly this issuer and https endpoints.

    Every failure is ProviderError(UNUSABLE) (the cause is logged); outbound.Busy passes through."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        doc, _ = _fetch_json(settings, org, url)
    except outbound.Unreachable:
        raise ProviderError(UNUSABLE) from None
    why = None if doc.get("issuer") == issuer else "the discovery document names another issuer"
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if why is None and not _allowed_url(doc.get(name)):
            why = f"the provider's {name} is not an https URL"
    if why:
        log.warning("unusable OpenID Provider", extra={"org": org, "url": url[:300], "reason": why})
        raise ProviderError(UNUSABLE)
    return doc


def configure(
    engine: Engine, settings: Settings, slug: str, *, issuer: str, client_id: str, client_secret: str, actor: str = "cli"
) -> dict[str, str]:
    """Check the OP (https, its discovery names this exact issuer), store the org's connection, and
    return what the IdP admin needs: the login URL and the redirect URI to register."""
    if not _allowed_url(issuer) or "?" in issuer or "#" in issuer:
        raise ValueError(f"the OIDC issuer must be an https URL (http only on 127.0.0.1, localhost, [::1]): {issuer!r}")
    if not client_id or not client_secret:
        raise ValueError("the OIDC client id and client secret are both required")
    outbound.check_syntax(issuer)
    discover(settings, slug, issuer)  # outbound.Busy passes through: the caller answers "try again"
    with engine.begin() as conn:
        org = orgs.get(conn, slug)
        sealed_secret = sealed.seal(settings, client_secret)
        config = {"issuer": issuer, "client_id": client_id, "client_secret_sealed": sealed_secret}
        sso_config.put(conn, org.id, "oidc", config, topics=settings.topics(), actor=actor)  # audited
    return {**urls(settings, slug), "issuer": issuer}


def urls(settings: Settings, slug: str) -> dict[str, str]:
    """What the OpenID Provider's admin registers: the sign-in URL and the redirect URI."""
    base = f"{settings.public_url.rstrip('/')}/sso/{slug}/oidc"
    return {"login_url": f"{base}/login", "redirect_uri": f"{base}/callback"}


def _signing_key(settings: Settings, org: str, jwks_uri: str, kid: str | None, alg: str) -> Any:
    """The JWKS key the token names (the only key, when it names none); refetched once on a miss."""
    fetched = False
    for fresh in (False, True):
        if fresh and fetched:
            break
        try:
            jwks, fetched = _fetch_json(settings, org, jwks_uri, fresh)
        except outbound.Unreachable:
            raise Refused(502, "Could not read the identity provider's signing keys.") from None
        keys = [k for k in jwks.get("keys") or [] if isinstance(k, dict) and k.get("use", "sig") == "sig"]
        for key in [k for k in keys if k.get("kid") == kid] if kid is not None else keys if len(keys) == 1 else []:
            try:
                if key.get("alg", alg) == alg:
                    return jwt.PyJWK(key, algorithm=alg).key
            except jwt.PyJWTError:
                continue
    raise Refused(401, "The ID token is not signed by a key the identity provider publishes.")


def verify_id_token(settings: Settings, org: str, token: str, doc: dict[str, Any], config: dict[str, Any],
                    nonce: str) -> dict[str, Any]:
    """The ID token's claims, once every rule of the module docstring holds; raises Refused."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Refused(401, "The ID token is malformed.") from None
    if (alg := header.get("alg")) not in ALGORITHMS:
        raise Refused(401, f"The ID token's algorithm {alg!r} is not accepted (only {', '.join(ALGORITHMS)}).")
    key = _signing_key(settings, org, doc["jwks_uri"], header.get("kid"), alg)
    try:
        claims = jwt.decode(token, key, algorithms=[alg], audience=config["client_id"], issuer=config["issuer"],
                            leeway=LEEWAY_SECONDS, options={"require": ["iss", "aud", "exp", "iat", "sub"]})
    except jwt.ExpiredSignatureError:
        raise Refused(401, "The ID token has expired; sign in again.") from None
    except jwt.PyJWTError as exc:
        raise Refused(401, f"The ID token is not valid: {exc}.") from None
    several = isinstance(claims["aud"], list) and len(claims["aud"]) > 1
    if (several or "azp" in claims) and claims.get("azp") != config["client_id"]:
        raise Refused(401, "The ID token was issued to another client (azp).")
    if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(claims["nonce"], nonce):
        raise Refused(401, "The ID token does not answer this sign-in (nonce mismatch).")
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise Refused(401, "The ID token has no subject.")
    return claims


_ERROR_CODE = re.compile(r"[a-z_]{1,40}")  # RFC 6749 5.2's error codes; anything else is not repeated to the browser


def _exchange(settings: Settings, org: str, doc: dict[str, Any], config: dict[str, Any], code: str, redirect_uri: str,
              verifier: str) -> str:
    """Trade the code (with the PKCE verifier) for tokens at the token endpoint; returns the ID token."""
    methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier}
    headers = {"Accept": "application/json"}
    if "client_secret_basic" in methods:  # RFC 6749 2.3.1: each part form-encoded, then Basic
        pair = f"{quote(config['client_id'], safe='')}:{quote(config['client_secret'], safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    elif "client_secret_post" in methods:
        data |= {"client_id": config["client_id"], "client_secret": config["client_secret"]}
    else:
        raise Refused(502, "The identity provider supports neither client_secret_basic nor client_secret_post.")
    try:
        response = outbound.call(settings, org, "POST", doc["token_endpoint"], data=data, headers=headers)
        body = response.json()
    except (outbound.Unreachable, ValueError):
        raise Refused(502, "Could not get tokens from the identity provider.") from None
    if response.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("id_token"), str):
        error = body.get("error") if isinstance(body, dict) else None
        shown = f" ({error})" if isinstance(error, str) and _ERROR_CODE.fullmatch(error) else ""
        raise Refused(401, f"The identity provider did not accept the sign-in{shown}.")
    id_token: str = body["id_token"]
    return id_token


def _page(status: int, message: str) -> Response:
    titles = {403: "Access refused", 404: "Not found", 502: "Sign-in unavailable", 503: "Sign-in busy"}
    title = titles.get(status, "Sign-in failed")
    body = f"<!doctype html><meta charset=utf-8><title>{title}</title><h1>{title}</h1><p>{html.escape(message)}</p>\n"
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class _Flow:
    def __init__(self, settings: Settings, engine: Engine):
        self.settings, self.engine = settings, engine

    def _org_config(self, conn: Connection, slug: str) -> tuple[orgs.Org, dict[str, Any]]:
        try:
            org = orgs.get(conn, slug if orgs.SLUG.fullmatch(slug) else "")
        except orgs.OrgError:
            raise Refused(404, NO_SSO) from None
        if not (config := sso_config.get(conn, org.id, "oidc")):
            raise Refused(404, NO_SSO)
        if "client_secret_sealed" in config:  # connections saved before sealing hold `client_secret`
            try:
                config["client_secret"] = sealed.open_sealed(self.settings, config.pop("client_secret_sealed"))
            except sealed.SealError:
                log.error("the org's OIDC client secret does not open with PROVISIONER_SECRET_KEY", extra={"org": org.slug})
                raise Refused(502, "This organisation's sign-in is misconfigured; ask its administrator.") from None
        return org, config

    def _redirect_uri(self, slug: str) -> str:
        return urls(self.settings, slug)["redirect_uri"]

    def login(self, slug: str, browser: str | None, test_by: str | None = None) -> Response:
        with self.engine.connect() as conn:
            org, config = self._org_config(conn, slug)
        doc = discover(self.settings, slug, config["issuer"])
        state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64)
        browser = browser if browser and len(browser) == 43 else secrets.token_urlsafe(32)
        now, ttl = datetime.now(UTC), self.settings.sso_state_ttl_seconds
        with self.engine.begin() as conn:
            conn.execute(ASYNC_COMMIT)  # a state lost in a crash only means signing in again; anyone can make one
            conn.execute(delete(sso_states).where(sso_states.c.protocol == "oidc", sso_states.c.expires_at < now))
            data = {"nonce": nonce, "code_verifier": verifier, "browser": _digest(browser)}
            data |= trial.mark(test_by) if test_by else {}
            conn.execute(insert(sso_states).values(state=state, org_id=org.id, protocol="oidc", data=data,
                                                   expires_at=now + timedelta(seconds=ttl)))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = urlencode({"response_type": "code", "client_id": config["client_id"], "redirect_uri": self._redirect_uri(slug),
                           "scope": SCOPE, "state": state, "nonce": nonce, "code_challenge": challenge,
                           "code_challenge_method": "S256"})
        endpoint = doc["authorization_endpoint"]
        response = RedirectResponse(f"{endpoint}{'&' if '?' in endpoint else '?'}{query}", status_code=302)
        response.set_cookie(COOKIE, browser, max_age=ttl, path=f"/sso/{slug}/oidc", httponly=True, samesite="lax",
                            secure=self.settings.public_url.startswith("https://"))
        return response

    def callback(self, slug: str, params: dict[str, str], browser: str | None) -> Response:
        state = params.get("state") or ""
        state = state if _STATE.fullmatch(state) else ""
        with self.engine.begin() as conn:
            org, config = self._org_config(conn, slug)
            ours = sso_states.c.state == state, sso_states.c.org_id == org.id, sso_states.c.protocol == "oidc"
            # Only the browser that started the sign-in consumes its state: another one cannot cancel it.
            row = conn.execute(
                delete(sso_states).where(*ours, sso_states.c.data["browser"].astext == _digest(browser or ""))
                .returning(sso_states.c.data, sso_states.c.expires_at)
            ).first()
            elsewhere = row is None and conn.execute(select(sso_states.c.state).where(*ours)).first() is not None
        if elsewhere:
            raise Refused(400, "This sign-in was started in another browser; start again.")
        if row is None:
            raise Refused(400, "This sign-in is unknown, was already used, or belongs to another organisation; start again.")
        seen = trial.Seen()
        if actor := trial.tester(row.data):  # a test sign-in from the console: a report, and no one signed in
            try:
                sign_in = self._identify(slug, config, params, row, seen)
            except (Refused, ProviderError) as exc:
                return trial.refused(self.engine, org, "oidc", config["issuer"], actor, str(exc), seen)
            with self.engine.begin() as conn:
                return trial.decided(conn, self.settings, org, sign_in, actor, seen)
        sign_in = self._identify(slug, config, params, row, seen)
        try:
            with SqlUnitOfWork.begin(self.engine, self.settings.topics()) as uow:
                outcome = logins.record(uow, orgs.get(uow.conn, slug), sign_in, uuid.uuid4().hex)
        except logins.LoginError as exc:
            raise Refused(401, f"The identity provider's email claim cannot be used: {exc}.") from None
        if not outcome.accepted:
            return _page(403, outcome.reason or "You cannot sign in to this organisation.")
        return RedirectResponse(self.settings.app_url.format(org=slug), status_code=302)

    def _identify(self, slug: str, config: dict[str, Any], params: dict[str, str], row: Any, seen: trial.Seen) -> logins.SignIn:
        """Who the IdP's answer names, once every check holds; raises Refused. `seen` keeps what it sent."""
        if row.expires_at <= datetime.now(UTC):
            raise Refused(400, "This sign-in took too long and has expired; start again.")
        issuer = config["issuer"]
        if "error" in params:
            seen.note([(k, params[k]) for k in ("error", "error_description") if k in params], verified=False)
            detail = f"{params['error']} {params.get('error_description', '')}".strip()[:300]
            raise Refused(401, f"The identity provider refused the sign-in: {detail}")
        if "iss" in params and params["iss"] != issuer:  # RFC 9207: the response names its issuer
            raise Refused(401, "The response comes from another identity provider (iss).")
        if not params.get("code"):
            raise Refused(400, "The identity provider sent no authorization code.")
        doc = discover(self.settings, slug, issuer)
        verifier = row.data["code_verifier"]
        id_token = _exchange(self.settings, slug, doc, config, params["code"], self._redirect_uri(slug), verifier)
        seen.note(trial.unverified_claims(id_token), verified=False)
        claims = verify_id_token(self.settings, slug, id_token, doc, config, row.data["nonce"])
        seen.note(claims.items(), verified=True)
        email = claims.get("email")
        if not isinstance(email, str) or not email.isprintable() or not claims["sub"].isprintable():
            raise Refused(401, "The identity provider did not say who you are (no email claim).")
        if claims.get("email_verified") in (False, "false"):
            raise Refused(401, "The identity provider says this email address is not verified.")
        return logins.SignIn(email=email, method="oidc", sso=True, idp=issuer, subject=claims["sub"])


def start_test(settings: Settings, engine: Engine, slug: str, actor: str) -> Response:
    """The console's test sign-in: a sign-in marked for `actor`, reported instead of recorded (ingest.sso.trial).
    Raises Refused (no OIDC here), ProviderError or outbound.Busy."""
    return _Flow(settings, engine).login(slug, None, test_by=actor)


def routes(settings: Settings, engine: Engine) -> list[Route]:
    """`GET /sso/{org}/oidc/login` and `GET /sso/{org}/oidc/callback`; blocking work runs on the SSO bulkhead."""
    flow, bulkhead = _Flow(settings, engine), Bulkhead(settings)

    def guarded(step: Callable[..., Response], *args: Any) -> Response:
        try:
            return step(*args)
        except Refused as refused:
            return _page(refused.status, refused.message)
        except ProviderError as exc:
            return _page(502, f"The identity provider cannot be used right now: {exc}.")

    async def run(slug: str, step: Callable[..., Response], *args: Any) -> Response:
        try:
            return await bulkhead.run(slug, guarded, step, slug, *args)
        except outbound.Busy:
            busy = _page(503, BUSY_MESSAGE)
            busy.headers["Retry-After"] = "5"
            return busy

    async def login(request: Request) -> Response:
        return await run(request.path_params["org"], flow.login, request.cookies.get(COOKIE))

    async def callback(request: Request) -> Response:
        return await run(request.path_params["org"], flow.callback, dict(request.query_params), request.cookies.get(COOKIE))

    return [
        Route("/sso/{org}/oidc/login", login, methods=["GET"]),
        Route("/sso/{org}/oidc/callback", callback, methods=["GET"]),
    ]
