"""Console sign-in and sign-out: an admin token, pasted once, opens a server-side session whose random id
is the cookie; sign-out ends it."""

import hmac
import secrets

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ingest.console.session import (
    FLASH_COOKIE,
    LOGIN_COOKIE,
    MAX_TOKEN_CHARS,
    PREFIX,
    SESSION_COOKIE,
    SESSION_SECONDS,
    Session,
    end,
    start,
)
from ingest.console.web import Console, FormError, read_form


def _login_page(console: Console, request: Request, *, error: str = "", info: str = "", status: int = 200) -> Response:
    """The sign-in form, with a fresh nonce in a cookie of its own: a cross-site form cannot sign anyone in."""
    nonce = secrets.token_urlsafe(24)
    notice = {"kind": "error", "text": error} if error else {"kind": "ok", "text": info} if info else None
    response = console.page(request, "login.html", None, status=status, notice=notice, nonce=nonce)
    console.cookies.set(response, LOGIN_COOKIE, nonce, 3600, path=f"{PREFIX}/login")
    return response


async def login_form(console: Console, request: Request) -> Response:
    """GET /console/login."""
    return _login_page(console, request, info="You are signed out." if request.query_params.get("signed_out") else "")


async def login(console: Console, request: Request) -> Response:
    """POST /console/login: only an admin token signs in; a SCIM token is refused with a hint."""
    try:
        form = await read_form(request)
    except FormError as exc:
        return _login_page(console, request, error=str(exc), status=exc.status)
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not hmac.compare_digest(form.get("csrf", "").encode(), nonce.encode()):
        return _login_page(console, request, error="The sign-in form expired. Paste your token and sign in again.", status=403)
    token = form.get("token", "").strip()
    if not token:
        return _login_page(console, request, error="Paste your admin token to sign in.", status=400)
    if token.startswith("scim_"):
        return _login_page(
            console, request,
            error="That is a SCIM bearer token, for your identity provider. Sign in with an admin token (adm_…).",
            status=401,
        )
    session_id = None
    if len(token) <= MAX_TOKEN_CHARS:
        session_id = await run_in_threadpool(start, console.engine, token)
    if session_id is None:
        return _login_page(console, request, error="That admin token is not valid. Check that you pasted all of it.", status=401)
    response = console.redirect(PREFIX)
    console.cookies.set(response, SESSION_COOKIE, session_id, SESSION_SECONDS)
    console.cookies.forget(response, LOGIN_COOKIE, path=f"{PREFIX}/login")
    return response


def logout(console: Console, request: Request, session: Session, form: dict[str, str]) -> Response:
    """POST /console/logout: the session ends server-side and the cookies go; the admin token stays valid."""
    end(console.engine, session)
    response = console.redirect(f"{PREFIX}/login?signed_out=1")
    console.cookies.forget(response, SESSION_COOKIE)
    console.cookies.forget(response, FLASH_COOKIE)
    return response
