"""The internal API the SaaS app's backend calls with a service token.

`POST /internal/v1/logins` (ingest/logins.py) reports a sign-in that did not go through our SSO.
`POST /internal/v1/accounts` registers an account that exists outside any org (a person who
signed up on their own), which the conflict worker checks org members against.
"""

import html

import orjson
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from core.settings import Settings
from domain.accounts import AccountError, register
from domain.postgres import SqlUnitOfWork
from ingest.http import problem, service_endpoint
from ingest.logins import login_route


def internal_routes(settings: Settings, engine: Engine) -> list[Route]:
    def account(uow: SqlUnitOfWork, body: bytes) -> Response:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return problem(400, "the body is not valid JSON")
        if not isinstance(data, dict) or not isinstance(data.get("email"), str):
            return problem(400, "'email' is required")
        name = data.get("display_name")
        if name is not None and (not isinstance(name, str) or len(name) > 256):
            return problem(400, "'display_name' must be a string of at most 256 characters")
        try:
            result = register(uow, data["email"], name)
        except AccountError as exc:
            return problem(400, str(exc))
        return JSONResponse({**result.account, "created": result.created}, status_code=201 if result.created else 200)

    async def app_landing(request: Request) -> Response:
        slug = html.escape(request.path_params["org"])
        return HTMLResponse(f"<!doctype html><title>Signed in</title><h1>Signed in to {slug}</h1>")

    return [
        login_route(settings, engine),
        Route("/internal/v1/accounts", service_endpoint(engine, settings.topics(), account), methods=["POST"]),
        Route("/app/{org}", app_landing),
    ]
