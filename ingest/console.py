"""The admin console: a small server-rendered UI for org admins, mirroring the "Provisioning"
settings panel (manual, SSO and SCIM provisioning; SCIM base URL and token rotation) and the
user list (statuses, email conflicts with Acquire / Dismiss, manual adds, recent activity).

Every action goes through `core.admin`, the same service layer as the admin API and the CLI.

Sessions: the admin pastes an admin token (`adm_...`) once; the console keeps it in an
HttpOnly, SameSite=Strict cookie scoped to `/console` (Secure when the public URL is https)
and authenticates it on every request, so deleting the token ends every session at once and
no session table is needed. Forms carry a CSRF token, an HMAC keyed by the admin token (so it
is per session and stateless); state changes are POST only. One-time messages (including a
freshly rotated SCIM token, shown once) travel in a short-lived cookie encrypted with a key
derived from the admin token, and are cleared when shown.

Pages are plain HTML with every value escaped (`_render`), one stylesheet and one small
script from `ingest/static/`, under a strict Content-Security-Policy.
"""

import base64
import hashlib
import hmac
import html
import json
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from core import admin, orgs
from core.members import list_members
from core.settings import Settings

log = logging.getLogger(__name__)

PREFIX = "/console"
SESSION_COOKIE = "provisioner_console"
LOGIN_COOKIE = "provisioner_console_login"
FLASH_COOKIE = "provisioner_console_flash"
SESSION_SECONDS = 8 * 3600
FLASH_SECONDS = 120
MAX_FORM_BYTES = 16 * 1024
MAX_TOKEN_CHARS = 200
STATIC_DIR = Path(__file__).with_name("static")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # Pages may show a token that must never come back from a cache or the back button.
    "Cache-Control": "no-store",
}

TOGGLES = (
    (
        "manual_provisioning",
        "Manual provisioning",
        "Allow admins to add users by hand on the Users page.",
    ),
    (
        "sso_provisioning",
        "Provisioning through SSO",
        "Add people to the organization as soon as they sign in through your identity provider (just-in-time).",
    ),
    (
        "scim_enabled",
        "Provisioning through SCIM",
        "Let your identity provider push users and groups over SCIM 2.0, the IETF standard.",
    ),
)
TOGGLE_LABELS = {name: label for name, label, _ in TOGGLES}

STATUS_LABELS = {
    "provisioned": "Provisioned",
    "active": "Active",
    "deactivated": "Deactivated",
    "conflict": "Conflict",
    "removed": "Removed",
}
SOURCE_LABELS = {"scim": "SCIM", "sso": "SSO", "manual": "Manual", "app": "App"}
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


# -- HTML ------------------------------------------------------------------------------------


class Safe(str):
    """Markup that is already safe: `_render` inserts it as it is."""


def _render(template: str, **values: Any) -> Safe:
    """Fill `{name}` slots; every value is HTML-escaped unless it is `Safe`."""
    return Safe(template.format(**{k: v if isinstance(v, Safe) else html.escape(str(v), quote=True) for k, v in values.items()}))


def _join(parts: list[Safe]) -> Safe:
    return Safe("".join(parts))


def _capitalise(message: str) -> str:
    return message[:1].upper() + message[1:]


# -- sessions, CSRF and one-time messages ----------------------------------------------------


@dataclass(frozen=True)
class Session:
    token: str
    org: orgs.Org

    @property
    def csrf(self) -> str:
        return _csrf_for(self.token)

    @property
    def actor(self) -> str:
        """Who did it, for the audit events: the admin token by its hash prefix, never in clear."""
        return f"console:adm#{hashlib.sha256(self.token.encode()).hexdigest()[:12]}"


def _csrf_for(token: str) -> str:
    digest = hmac.new(token.encode(), b"provisioner-console-csrf-v1", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _flash_key(token: str) -> bytes:
    return hmac.new(token.encode(), b"provisioner-console-flash-v1", hashlib.sha256).digest()


def _seal(token: str, message: dict[str, Any]) -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    sealed = AESGCM(_flash_key(token)).encrypt(nonce, json.dumps(message).encode(), b"flash")
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def _unseal(token: str, value: str) -> dict[str, Any] | None:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        message = json.loads(AESGCM(_flash_key(token)).decrypt(raw[:12], raw[12:], b"flash"))
    except (ValueError, InvalidTag, json.JSONDecodeError):
        return None
    return message if isinstance(message, dict) else None


class FormError(Exception):
    """A request body the console cannot read; `status` says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def _read_form(request: Request) -> dict[str, str]:
    """An urlencoded form, at most MAX_FORM_BYTES; the first value of each field."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise FormError(415, "This page accepts only form submissions.")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_FORM_BYTES:
            raise FormError(413, "The form is too large.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        raise FormError(400, "The form could not be read.") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    return form


# -- the console -----------------------------------------------------------------------------


class Console:
    def __init__(self, settings: Settings, engine: Engine):
        self.settings = settings
        self.engine = engine
        self.secure = settings.public_url.lower().startswith("https://")

    # -- responses ---------------------------------------------------------------------------

    def _html(self, body: Safe, status: int = 200) -> HTMLResponse:
        return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)

    def _redirect(self, url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})

    def _cookie(self, response: Response, name: str, value: str, max_age: int, path: str = PREFIX) -> None:
        response.set_cookie(
            name, value, max_age=max_age, path=path, httponly=True, samesite="strict", secure=self.secure
        )

    def _forget(self, response: Response, name: str, path: str = PREFIX) -> None:
        response.delete_cookie(name, path=path, httponly=True, samesite="strict", secure=self.secure)

    def _flash(self, session: Session, url: str, **message: Any) -> Response:
        """Redirect (POST/redirect/GET) with a one-time message for the next page."""
        response = self._redirect(url)
        self._cookie(response, FLASH_COOKIE, _seal(session.token, message), FLASH_SECONDS)
        return response

    def _page(
        self, title: str, content: Safe, session: Session | None = None, *, status: int = 200, current: str = ""
    ) -> HTMLResponse:
        if session is None:
            chrome = _render('<main class="login" id="main">{content}</main>', content=content)
        else:
            links = _join([
                _render(
                    '<li><a href="{href}"{current}>{label}</a></li>',
                    href=href, label=label, current=Safe(' aria-current="page"' if key == current else ""),
                )
                for key, href, label in (("settings", PREFIX, "Provisioning"), ("users", f"{PREFIX}/users", "Users"))
            ])
            chrome = _render(
                """<div class="shell">
<aside class="sidebar">
  <div class="org"><span class="org-label">Organization</span><strong>{org}</strong><span class="slug">{slug}</span></div>
  <nav aria-label="Organization settings"><ul>{links}</ul></nav>
  <form method="post" action="{prefix}/logout" class="logout">
    <input type="hidden" name="csrf" value="{csrf}">
    <button type="submit" class="button subtle">Sign out</button>
  </form>
</aside>
<main id="main">{content}</main>
</div>""",
                org=session.org.name, slug=session.org.slug, links=links, prefix=PREFIX, csrf=session.csrf, content=content,
            )
        page = _render(
            """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>{title} · Provisioner console</title>
<link rel="stylesheet" href="{prefix}/static/console.css">
<script src="{prefix}/static/console.js" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
{chrome}
</body>
</html>""",
            title=title, prefix=PREFIX, chrome=chrome,
        )
        return self._html(page, status)

    def _notice(self, message: dict[str, Any] | None) -> Safe:
        if not message or not message.get("text"):
            return Safe("")
        kind = "error" if message.get("kind") == "error" else "ok"
        role = "alert" if kind == "error" else "status"
        return _render('<div class="notice {kind}" role="{role}">{text}</div>', kind=kind, role=role, text=message["text"])

    # -- authentication ----------------------------------------------------------------------

    def _session(self, request: Request) -> Session | None:
        token = request.cookies.get(SESSION_COOKIE, "")
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        with self.engine.connect() as conn:
            org = admin.authenticate(conn, token)
        return Session(token, org) if org else None

    def _to_login(self, request: Request) -> Response:
        response = self._redirect(f"{PREFIX}/login")
        if SESSION_COOKIE in request.cookies:
            self._forget(response, SESSION_COOKIE)
        return response

    def guarded(self, handler: Callable[..., Response]) -> Callable[[Request], Any]:
        """An endpoint that needs a session; POSTs also need the form's CSRF token."""

        async def endpoint(request: Request) -> Response:
            form: dict[str, str] = {}
            form_error: FormError | None = None
            if request.method == "POST":
                try:
                    form = await _read_form(request)
                except FormError as exc:
                    form_error = exc
            return await run_in_threadpool(self._dispatch, handler, request, form, form_error)

        return endpoint

    def _dispatch(
        self, handler: Callable[..., Response], request: Request, form: dict[str, str], form_error: FormError | None
    ) -> Response:
        session = self._session(request)
        if session is None:
            return self._to_login(request)
        if form_error is not None:
            return self._error_page(session, form_error.status, str(form_error))
        if request.method == "POST" and not hmac.compare_digest(form.get("csrf", "").encode(), session.csrf.encode()):
            return self._error_page(
                session, 403,
                "This form was not sent from the console (its security token is missing or out of date). "
                "Reload the page and try again.",
            )
        try:
            return handler(request, session, form)
        except Exception:
            log.exception("console: %s %s failed", request.method, request.url.path)
            return self._error_page(session, 500, "Something went wrong on our side. Try again in a moment.")

    def _error_page(self, session: Session, status: int, message: str) -> Response:
        content = _render(
            '<h1>Something is not right</h1><div class="notice error" role="alert">{message}</div>'
            '<p><a href="{prefix}">Back to Provisioning</a></p>',
            message=message, prefix=PREFIX,
        )
        return self._page("Error", content, session, status=status)

    def _login_page(self, *, error: str = "", info: str = "", status: int = 200) -> Response:
        nonce = secrets.token_urlsafe(24)
        notice = self._notice({"kind": "error", "text": error} if error else {"kind": "ok", "text": info} if info else None)
        content = _render(
            """<div class="card login-card">
<h1>Provisioning console</h1>
<p class="muted">Sign in with your organization's admin token. An operator creates one with
<code>provisioner admin-token create SLUG</code>; it starts with <code>adm_</code>.</p>
{notice}
<form method="post" action="{prefix}/login" class="stack">
  <input type="hidden" name="csrf" value="{nonce}">
  <label for="token">Admin token</label>
  <input id="token" name="token" type="password" autocomplete="off" spellcheck="false" required
         placeholder="adm_…" aria-describedby="token-help">
  <p id="token-help" class="hint">The token stays in this browser only, in a cookie scripts cannot read.</p>
  <button type="submit" class="button primary">Sign in</button>
</form>
</div>""",
            notice=notice, prefix=PREFIX, nonce=nonce,
        )
        response = self._page("Sign in", content, status=status)
        self._cookie(response, LOGIN_COOKIE, nonce, 3600, path=f"{PREFIX}/login")
        return response

    async def login_form(self, request: Request) -> Response:
        return self._login_page(info="You are signed out." if request.query_params.get("signed_out") else "")

    async def login(self, request: Request) -> Response:
        try:
            form = await _read_form(request)
        except FormError as exc:
            return self._login_page(error=str(exc), status=exc.status)
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if not nonce or not hmac.compare_digest(form.get("csrf", "").encode(), nonce.encode()):
            return self._login_page(error="The sign-in form expired. Paste your token and sign in again.", status=403)
        token = form.get("token", "").strip()
        if not token:
            return self._login_page(error="Paste your admin token to sign in.", status=400)
        if token.startswith("scim_"):
            return self._login_page(
                error="That is a SCIM bearer token, for your identity provider. Sign in with an admin token (adm_…).",
                status=401,
            )
        org = None
        if len(token) <= MAX_TOKEN_CHARS:
            org = await run_in_threadpool(self._authenticate, token)
        if org is None:
            return self._login_page(error="That admin token is not valid. Check that you pasted all of it.", status=401)
        response = self._redirect(PREFIX)
        self._cookie(response, SESSION_COOKIE, token, SESSION_SECONDS)
        self._forget(response, LOGIN_COOKIE, path=f"{PREFIX}/login")
        return response

    def _authenticate(self, token: str) -> orgs.Org | None:
        with self.engine.connect() as conn:
            return admin.authenticate(conn, token)

    def logout(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        response = self._redirect(f"{PREFIX}/login?signed_out=1")
        self._forget(response, SESSION_COOKIE)
        self._forget(response, FLASH_COOKIE)
        return response

    # -- provisioning settings ---------------------------------------------------------------

    def _take_flash(self, request: Request, session: Session) -> dict[str, Any] | None:
        value = request.cookies.get(FLASH_COOKIE)
        return _unseal(session.token, value) if value else None

    def _shown(self, request: Request, response: Response) -> Response:
        """The one-time message is spent once its page is rendered."""
        if FLASH_COOKIE in request.cookies:
            self._forget(response, FLASH_COOKIE)
        return response

    def settings_page(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        flash = self._take_flash(request, session)
        with self.engine.connect() as conn:
            open_conflicts = len(admin.list_conflicts(conn, session.org, "open"))
        org = session.org
        values = admin.settings_of(org)
        sections = []
        for name, label, description in TOGGLES:
            extra = Safe("")
            if name == "scim_enabled" and values[name]:
                extra = self._scim_details(session, flash)
            sections.append(_render(
                """<section class="card setting" aria-labelledby="{name}-label">
  <div class="setting-row">
    <div>
      <h2 id="{name}-label">{label}</h2>
      <p id="{name}-desc" class="muted">{description}</p>
    </div>
    <form method="post" action="{prefix}/settings">
      <input type="hidden" name="csrf" value="{csrf}">
      <input type="hidden" name="setting" value="{name}">
      <button type="submit" name="value" value="{next}" class="switch" role="switch" aria-checked="{checked}"
              aria-labelledby="{name}-label" aria-describedby="{name}-desc {name}-state">
        <span class="track" aria-hidden="true"><span class="thumb"></span></span>
        <span id="{name}-state" class="state">{state}</span>
      </button>
    </form>
  </div>
  {extra}
</section>""",
                name=name, label=label, description=description, prefix=PREFIX, csrf=session.csrf,
                next="off" if values[name] else "on", checked="true" if values[name] else "false",
                state=("Enabled" if name == "scim_enabled" else "On") if values[name] else ("Disabled" if name == "scim_enabled" else "Off"),
                extra=extra,
            ))
        trouble = _render(
            """<section class="card">
  <h2>Troubleshooting</h2>
  <p class="muted">If someone you provision already has an account with the same email address, they show up
  with the status <strong>Conflict</strong> on the <a href="{prefix}/users?status=conflict">Users</a> page,
  where you can acquire the existing account into your organization.</p>
  {count}
</section>""",
            prefix=PREFIX,
            count=_render(
                '<p><a class="badge conflict" href="{prefix}/users?status=conflict">{n} open conflict{s}</a></p>',
                prefix=PREFIX, n=open_conflicts, s="" if open_conflicts == 1 else "s",
            ) if open_conflicts else Safe(""),
        )
        notice = self._notice(flash if flash and not flash.get("token") else None)
        content = _render(
            """<header class="page-head">
  <h1>Provisioning</h1>
  <p class="muted">Manage how users and groups are provisioned in your organization: by hand, when someone
  signs in through single sign-on, or automatically from your identity provider over SCIM.</p>
</header>
{notice}
{sections}
{trouble}""",
            notice=notice, sections=_join(sections), trouble=trouble,
        )
        return self._shown(request, self._page("Provisioning", content, session, current="settings"))

    def _scim_details(self, session: Session, flash: dict[str, Any] | None) -> Safe:
        base_url = orgs.scim_base_url(self.settings.public_url, session.org.slug)
        overlap = self.settings.token_overlap_seconds
        overlap_text = f"{overlap // 3600} hour{'s' if overlap // 3600 != 1 else ''}" if overlap % 3600 == 0 else (
            f"{overlap // 60} minutes" if overlap % 60 == 0 else f"{overlap} seconds"
        )
        new_token = Safe("")
        if flash and flash.get("token"):
            new_token = _render(
                """<div class="new-token" role="status">
    <label for="new-token">New bearer token</label>
    <div class="copy-row">
      <input id="new-token" type="text" readonly value="{token}" spellcheck="false" aria-describedby="new-token-note">
      <button type="button" class="button" data-copy="new-token">Copy</button>
    </div>
    <p id="new-token-note" class="warning"><strong>Copy it now: it will not be shown again.</strong>
    Paste it into your identity provider. The previous token keeps working for {overlap}.</p>
  </div>""",
                token=flash["token"], overlap=overlap_text,
            )
        return _render(
            """<div class="scim-details">
  <div class="field">
    <label for="scim-base-url">Base URL</label>
    <div class="copy-row">
      <input id="scim-base-url" type="text" readonly value="{base_url}" spellcheck="false">
      <button type="button" class="button" data-copy="scim-base-url">Copy</button>
    </div>
  </div>
  <div class="field">
    <span class="label" id="bearer-label">Bearer token</span>
    <p class="muted" id="bearer-help">Tokens are stored only as a hash, so an existing token cannot be shown.
    Rotate to issue a new one; the current token keeps working for {overlap} so you can update your identity provider.</p>
    {new_token}
    <form method="post" action="{prefix}/scim/rotate">
      <input type="hidden" name="csrf" value="{csrf}">
      <button type="submit" class="button" aria-describedby="bearer-help">Rotate token</button>
    </form>
  </div>
  <p class="hint">Give the base URL and the bearer token to your identity provider (Microsoft Entra ID:
  "Tenant URL" and "Secret Token"; Okta: "SCIM connector base URL" with HTTP header authentication).</p>
</div>""",
            base_url=base_url, overlap=overlap_text, new_token=new_token, prefix=PREFIX, csrf=session.csrf,
        )

    def change_setting(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        name, value = form.get("setting", ""), form.get("value", "")
        if name not in TOGGLE_LABELS or value not in ("on", "off"):
            return self._error_page(session, 400, "Unknown setting or value; use the toggles on the Provisioning page.")
        try:
            with self.engine.begin() as conn:
                admin.change_settings(conn, session.org, self.settings.topics(), session.actor, **{name: value == "on"})
        except admin.AdminError as exc:
            return self._flash(session, PREFIX, kind="error", text=_capitalise(str(exc)))
        state = ("enabled" if value == "on" else "disabled") if name == "scim_enabled" else value
        return self._flash(session, PREFIX, kind="ok", text=f"{TOGGLE_LABELS[name]} is now {state}.")

    def rotate(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        if not session.org.scim_enabled:
            return self._flash(
                session, PREFIX, kind="error", text="Enable Provisioning through SCIM before rotating its token."
            )
        token = orgs.rotate_token(self.engine, session.org.slug, self.settings.token_overlap_seconds)
        return self._flash(session, PREFIX, kind="ok", text="A new SCIM bearer token was issued.", token=token)

    # -- users -------------------------------------------------------------------------------

    def users_page(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        flash = self._take_flash(request, session)
        wanted = request.query_params.get("status", "")
        status, error = wanted, ""
        if wanted and wanted not in STATUS_LABELS:
            status, error = "", f"There is no status {wanted!r}; showing all users."
        notice = self._notice({"kind": "error", "text": error}) if error else self._notice(flash)
        page = self._users(session, status=status, notice=notice)
        return self._shown(request, self._page("Users", page, session, status=400 if error else 200, current="users"))

    def _users(self, session: Session, *, status: str = "", notice: Safe = Safe(""), email: str = "", name: str = "") -> Safe:
        org = session.org
        with self.engine.connect() as conn:
            rows = list_members(conn, org.id, status=status or None)
            conflict_ids = {c["member_id"]: c["id"] for c in admin.list_conflicts(conn, org, "open")}
        options = _join([
            _render('<option value="{v}"{sel}>{label}</option>', v=v, label=label, sel=Safe(" selected" if v == status else ""))
            for v, label in (("", "All users"), *STATUS_LABELS.items())
        ])
        body_rows = _join([self._user_row(session, row, conflict_ids.get(row["id"]), status) for row in rows])
        if not rows:
            body_rows = _render(
                '<tr><td colspan="4" class="empty">{text}</td></tr>',
                text=f"No users with the status {STATUS_LABELS[status]}." if status else "No users yet.",
            )
        manual_note = Safe("")
        if not org.manual_provisioning:
            manual_note = _render(
                '<p class="hint" id="manual-off">Manual provisioning is off, so adding users by hand is refused. '
                'Turn it on under <a href="{prefix}">Provisioning</a>.</p>',
                prefix=PREFIX,
            )
        return _render(
            """<header class="page-head">
  <h1>Users</h1>
  <p class="muted">Everyone in your organization and how they got here. Provisioned users are billed only once
  they sign in for the first time.</p>
</header>
{notice}
<section class="card">
  <form method="get" action="{prefix}/users" class="filter">
    <label for="status-filter">Status</label>
    <select id="status-filter" name="status" data-autosubmit>{options}</select>
    <button type="submit" class="button subtle">Filter</button>
    <span class="count muted">{count}</span>
  </form>
  <table class="users">
    <caption class="sr-only">Users of {org}</caption>
    <thead><tr><th scope="col" class="col-user">User</th><th scope="col" class="col-source">Source</th><th scope="col" class="col-status">Status</th><th scope="col">Details</th></tr></thead>
    <tbody>{rows}</tbody>
  </table>
</section>
<section class="card" aria-labelledby="add-user">
  <h2 id="add-user">Add user</h2>
  {manual_note}
  <form method="post" action="{prefix}/users" class="inline-form">
    <input type="hidden" name="csrf" value="{csrf}">
    <div class="field"><label for="add-email">Email</label>
      <input id="add-email" name="email" type="email" required maxlength="320" autocomplete="off" value="{email}"></div>
    <div class="field"><label for="add-name">Name <span class="muted">(optional)</span></label>
      <input id="add-name" name="display_name" type="text" maxlength="256" autocomplete="off" value="{name}"></div>
    <button type="submit" class="button primary">Add user</button>
  </form>
</section>""",
            notice=notice, prefix=PREFIX, options=options, org=org.name, rows=body_rows, manual_note=manual_note,
            csrf=session.csrf, email=email, name=name, count=f"{len(rows)} user{'' if len(rows) == 1 else 's'}",
        )

    def _user_row(self, session: Session, row: dict[str, Any], conflict_id: str | None, filter_status: str) -> Safe:
        status = row["status"]
        label = STATUS_LABELS.get(status, status.title())
        details = Safe("")
        if status == "conflict":
            actions = Safe("")
            if conflict_id:
                actions = _join([
                    _render(
                        """<form method="post" action="{prefix}/conflicts/{cid}/{action}">
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="filter" value="{filter}">
<button type="submit" class="button {cls}" aria-describedby="err-{mid}">{label}</button></form>""",
                        prefix=PREFIX, cid=conflict_id, action=action, csrf=session.csrf, filter=filter_status,
                        cls=cls, mid=row["id"], label=label_,
                    )
                    for action, label_, cls in (("acquire", "Acquire", "primary"), ("dismiss", "Dismiss", "subtle"))
                ])
            details = _render(
                '<p class="error-text" id="err-{mid}">{error}</p><div class="actions">{actions}</div>',
                mid=row["id"], error=row.get("error") or "", actions=actions,
            )
        elif row.get("first_login_at"):
            details = _render('<span class="muted">First sign-in {at}</span>', at=_when(row["first_login_at"]))
        who = row.get("display_name") or ""
        return _render(
            """<tr data-member="{mid}">
  <td><a href="{prefix}/users/{mid}" class="who">{name}</a><span class="email">{email}</span></td>
  <td>{source}</td>
  <td><span class="badge {status}">{label}</span></td>
  <td>{details}</td>
</tr>""",
            mid=row["id"], prefix=PREFIX, name=who or row.get("email") or row.get("user_name") or "(no name)",
            email=row.get("email") or "" if who else "", source=SOURCE_LABELS.get(row["source"], row["source"]),
            status=status, label=label, details=details,
        )

    def add_user(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        email, name = form.get("email", "").strip(), form.get("display_name", "").strip()
        try:
            if len(name) > 256:
                raise admin.AdminError(400, "the name must be at most 256 characters")
            with self.engine.begin() as conn:
                admin.add_member(conn, session.org, self.settings.topics(), session.actor, email, name or None)
        except admin.AdminError as exc:
            message = _capitalise(str(exc)) + "."
            if exc.status == 403:
                message += " Turn on Manual provisioning under Provisioning to add users by hand."
            notice = self._notice({"kind": "error", "text": message})
            page = self._users(session, notice=notice, email=email, name=name)
            return self._page("Users", page, session, status=exc.status, current="users")
        return self._flash(
            session, f"{PREFIX}/users", kind="ok",
            text=f"{email} was added. They appear below as Provisioned within a few seconds.",
        )

    def resolve(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        conflict_id, action = request.path_params["conflict_id"], request.path_params["action"]
        back = f"{PREFIX}/users"
        if form.get("filter") in STATUS_LABELS:
            back += "?" + urlencode({"status": form["filter"]})
        if action not in ("acquire", "dismiss"):
            return self._error_page(session, 404, "Unknown action; use the Acquire or Dismiss buttons.")
        try:
            if not _UUID.match(conflict_id):
                raise admin.AdminError(404, "no open conflict with that id or email")
            with self.engine.begin() as conn:
                result = admin.resolve(conn, session.org, self.settings.topics(), session.actor, conflict_id, acquire=action == "acquire")
                email = next((c["email"] for c in admin.list_conflicts(conn, session.org, None) if c["id"] == result["id"]), "")
        except admin.AdminError as exc:
            return self._flash(session, back, kind="error", text=_capitalise(str(exc)) + " (it may have been resolved already).")
        text = (
            f"Acquired the existing account of {email}: it is now this member."
            if action == "acquire" else f"Dismissed the conflict for {email}."
        )
        return self._flash(session, back, kind="ok", text=text)

    def member_page(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        member_id = request.path_params["member_id"]
        row = None
        if _UUID.match(member_id):
            with self.engine.connect() as conn:
                row = next((m for m in list_members(conn, session.org.id, include_removed=True) if m["id"] == member_id), None)
                activity = admin.member_activity_of(conn, session.org, member_id) if row else []
        if row is None:
            return self._error_page(session, 404, "There is no such user in this organization.")
        items = _join([
            _render(
                '<li><time datetime="{iso}">{at}</time> <span class="event">{type}</span> <span class="muted">via {source}</span></li>',
                iso=a["at"], at=_when(a["at"]), type=_event_label(a["type"]), source=SOURCE_LABELS.get(a["source"], a["source"]),
            )
            for a in activity
        ]) or Safe('<li class="muted">No activity recorded yet.</li>')
        status = row["status"]
        content = _render(
            """<p><a href="{prefix}/users">← Users</a></p>
<header class="page-head"><h1>{name}</h1><p class="muted">{email}</p></header>
<section class="card">
  <dl class="facts">
    <dt>Status</dt><dd><span class="badge {status}">{label}</span></dd>
    <dt>Source</dt><dd>{source}</dd>
    <dt>First sign-in</dt><dd>{first}</dd>
    <dt>Added</dt><dd>{created}</dd>
  </dl>
  {error}
</section>
<section class="card" aria-labelledby="activity"><h2 id="activity">Recent activity</h2><ol class="activity">{items}</ol></section>""",
            prefix=PREFIX, name=row.get("display_name") or row.get("email") or row.get("user_name") or "(no name)",
            email=row.get("email") or "", status=status, label=STATUS_LABELS.get(status, status.title()),
            source=SOURCE_LABELS.get(row["source"], row["source"]),
            first=_when(row["first_login_at"]) if row.get("first_login_at") else "Not yet",
            created=_when(row["created_at"]),
            error=_render('<p class="error-text">{e}</p>', e=row["error"]) if row.get("error") else Safe(""),
            items=items,
        )
        return self._page("User", content, session, current="users")


def _when(iso: str) -> str:
    """An ISO timestamp as `2024-05-01 14:03 UTC` (timestamps are stored in UTC)."""
    from datetime import UTC, datetime

    try:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso


def _event_label(event_type: str) -> str:
    short = event_type.removeprefix("io.provisioner.")
    return short.replace(".", " ").replace("_", " ").capitalize()


def console_routes(settings: Settings, engine: Engine) -> list[BaseRoute]:
    console = Console(settings, engine)
    g = console.guarded
    return [
        Route(f"{PREFIX}/login", console.login_form, methods=["GET"]),
        Route(f"{PREFIX}/login", console.login, methods=["POST"]),
        Route(f"{PREFIX}/logout", g(console.logout), methods=["POST"]),
        Route(PREFIX, g(console.settings_page), methods=["GET"]),
        Route(f"{PREFIX}/settings", g(console.change_setting), methods=["POST"]),
        Route(f"{PREFIX}/scim/rotate", g(console.rotate), methods=["POST"]),
        Route(f"{PREFIX}/users", g(console.users_page), methods=["GET"]),
        Route(f"{PREFIX}/users", g(console.add_user), methods=["POST"]),
        Route(f"{PREFIX}/users/{{member_id}}", g(console.member_page), methods=["GET"]),
        Route(f"{PREFIX}/conflicts/{{conflict_id}}/{{action}}", g(console.resolve), methods=["POST"]),
        # check_dir=False: an install without the package data still serves the (unstyled) pages.
        Mount(f"{PREFIX}/static", app=StaticFiles(directory=STATIC_DIR, check_dir=False), name="console-static"),
    ]
