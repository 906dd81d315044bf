"""Console request plumbing: sessions and CSRF on every endpoint, forms, pages from templates, redirects."""

import hmac
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jinja2
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from core.settings import Settings
from domain.postgres import SqlUnitOfWork
from ingest.console.session import (
    FLASH_COOKIE,
    FLASH_SECONDS,
    PREFIX,
    SESSION_COOKIE,
    Cookies,
    Session,
    seal,
    session_of,
)
from ingest.http import BodyTooLarge, read_body

log = logging.getLogger(__name__)

MAX_FORM_BYTES = 16 * 1024

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

# Our own environment rather than Jinja2Templates(directory=...): autoescape on for every template whatever
# its name, and StrictUndefined so a misspelt variable fails loudly instead of rendering as nothing.
_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.globals["prefix"] = PREFIX
TEMPLATES = Jinja2Templates(env=_ENV)

Handler = Callable[["Console", Request, Session, dict[str, str]], Response]


class FormError(Exception):
    """A request body the console cannot read; `status` says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form, at most MAX_FORM_BYTES; the first value of each field."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise FormError(415, "This page accepts only form submissions.")
    try:
        body = await read_body(request, MAX_FORM_BYTES, refuse_announced=False)
    except BodyTooLarge:
        raise FormError(413, "The form is too large.") from None
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        raise FormError(400, "The form could not be read.") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    return form


class Console:
    """What every console endpoint shares: settings, engine, cookies, and how pages and redirects are made."""

    def __init__(self, settings: Settings, engine: Engine):
        self.settings = settings
        self.engine = engine
        self.cookies = Cookies(secure=settings.public_url.lower().startswith("https://"))

    def unit_of_work(self) -> AbstractContextManager[SqlUnitOfWork]:
        """One transaction for an admin's action and the event it stages."""
        return SqlUnitOfWork.begin(self.engine, self.settings.topics())

    # -- responses ---------------------------------------------------------------------------

    def page(
        self, request: Request, template: str, session: Session | None, *, status: int = 200, **context: Any
    ) -> HTMLResponse:
        """A page from `templates/`, every value escaped, under the console's security headers."""
        return TEMPLATES.TemplateResponse(
            request, template, {"session": session, **context}, status_code=status, headers=SECURITY_HEADERS
        )

    def redirect(self, url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})

    def flash(self, session: Session, url: str, **message: Any) -> Response:
        """Redirect (POST/redirect/GET) with a one-time message for the next page."""
        response = self.redirect(url)
        self.cookies.set(response, FLASH_COOKIE, seal(session.token, message), FLASH_SECONDS)
        return response

    def shown(self, request: Request, response: Response) -> Response:
        """The one-time message is spent once its page is rendered."""
        if FLASH_COOKIE in request.cookies:
            self.cookies.forget(response, FLASH_COOKIE)
        return response

    def error_page(self, request: Request, session: Session, status: int, message: str) -> Response:
        return self.page(request, "error.html", session, status=status, message=message)

    # -- endpoints ---------------------------------------------------------------------------

    def public(self, handler: Callable[["Console", Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """An endpoint anyone may call (the sign-in form)."""

        async def endpoint(request: Request) -> Response:
            return await handler(self, request)

        return endpoint

    def guarded(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """An endpoint that needs a session; POSTs also need the form's CSRF token."""

        async def endpoint(request: Request) -> Response:
            form: dict[str, str] = {}
            form_error: FormError | None = None
            if request.method == "POST":
                try:
                    form = await read_form(request)
                except FormError as exc:
                    form_error = exc
            return await run_in_threadpool(self._dispatch, handler, request, form, form_error)

        return endpoint

    def _dispatch(self, handler: Handler, request: Request, form: dict[str, str], form_error: FormError | None) -> Response:
        session = session_of(self.engine, request)
        if session is None:
            return self._to_login(request)
        if form_error is not None:
            return self.error_page(request, session, form_error.status, str(form_error))
        if request.method == "POST" and not hmac.compare_digest(form.get("csrf", "").encode(), session.csrf.encode()):
            return self.error_page(
                request, session, 403,
                "This form was not sent from the console (its security token is missing or out of date). "
                "Reload the page and try again.",
            )
        try:
            return handler(self, request, session, form)
        except Exception:
            log.exception("console: %s %s failed", request.method, request.url.path)
            return self.error_page(request, session, 500, "Something went wrong on our side. Try again in a moment.")

    def _to_login(self, request: Request) -> Response:
        response = self.redirect(f"{PREFIX}/login")
        if SESSION_COOKIE in request.cookies:
            self.cookies.forget(response, SESSION_COOKIE)
        return response
