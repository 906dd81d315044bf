"""The internal API the SaaS app's backend calls with a service token.

`POST /internal/v1/logins` reports a sign-in that did not go through our SSO (password,
magic link, social login...), so every first login counts for billing, whatever its path.
`POST /internal/v1/accounts` registers an account that exists outside any org (a person who
signed up on their own), which the conflict worker checks org members against.
"""

import html
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from core import orgs, service_tokens
from core.accounts import AccountError, register
from core.logins import LoginError, SignIn, record
from core.settings import Settings

_MAX_BODY = 16 * 1024
_METHOD_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


def _problem(status: int, detail: str) -> Response:
    return JSONResponse({"status": status, "detail": detail}, status_code=status)


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


Handler = Callable[[Connection, bytes], Response]


def _service_endpoint(engine: Engine, handle: Handler) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint for the app's backend: size limit, service token, then `handle` in one transaction."""

    def _serve(token: str, body: bytes) -> Response:
        try:
            with engine.begin() as conn:
                if not token or service_tokens.authenticate(conn, token) is None:
                    return _problem(401, "a valid service token is required")
                return handle(conn, body)
        except (OperationalError, InterfaceError):
            # PostgreSQL restarting or unreachable: nothing was recorded; the caller retries
            response = _problem(503, "the service cannot record this right now; retry after the delay in Retry-After")
            response.headers["Retry-After"] = "5"
            return response

    async def endpoint(request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        body = await request.body()
        if len(body) > _MAX_BODY:
            return _problem(413, f"the body exceeds {_MAX_BODY} bytes")
        return await run_in_threadpool(_serve, token.strip() if scheme.lower() == "bearer" else "", body)

    return endpoint


def internal_routes(settings: Settings, engine: Engine) -> list[Route]:
    def login(conn: Connection, body: bytes) -> Response:
        try:
            slug, email, method = _read_login(body)
            org = orgs.get(conn, slug)
        except LoginError as exc:
            return _problem(400, str(exc))
        except orgs.OrgError as exc:
            return _problem(404, str(exc))
        try:
            outcome = record(conn, org, SignIn(email=email, method=method, sso=False), settings.topics())
        except LoginError as exc:
            return _problem(400, str(exc))
        return JSONResponse({"event_id": outcome.event_id, "accepted": outcome.accepted}, status_code=202)

    def account(conn: Connection, body: bytes) -> Response:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _problem(400, "the body is not valid JSON")
        if not isinstance(data, dict) or not isinstance(data.get("email"), str):
            return _problem(400, "'email' is required")
        name = data.get("display_name")
        if name is not None and (not isinstance(name, str) or len(name) > 256):
            return _problem(400, "'display_name' must be a string of at most 256 characters")
        try:
            result = register(conn, data["email"], settings.topics(), name)
        except AccountError as exc:
            return _problem(400, str(exc))
        return JSONResponse({**result.account, "created": result.created}, status_code=201 if result.created else 200)

    async def app_landing(request: Request) -> Response:
        slug = html.escape(request.path_params["org"])
        return HTMLResponse(f"<!doctype html><title>Signed in</title><h1>Signed in to {slug}</h1>")

    return [
        Route("/internal/v1/logins", _service_endpoint(engine, login), methods=["POST"]),
        Route("/internal/v1/accounts", _service_endpoint(engine, account), methods=["POST"]),
        Route("/app/{org}", app_landing),
    ]
