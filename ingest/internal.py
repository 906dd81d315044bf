"""The internal API the SaaS app's backend calls with a service token.

`POST /internal/v1/logins` (ingest/logins.py) reports a sign-in that did not go through our SSO.
`POST /internal/v1/accounts` registers an account that exists outside any org (a person who
signed up on their own), which the conflict worker checks org members against.
`GET /internal/v1/invitations?account_id=...` lists the orgs that invited an account's person, and
`POST /internal/v1/invitations/{id}/accept` records their consent: the account joins the org.
"""

import html
import uuid

import orjson
from sqlalchemy import Engine, select
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from core.settings import Settings
from core.tables import invitations as invitations_table
from domain import invitations
from domain.accounts import AccountError, register
from domain.postgres import SqlUnitOfWork
from domain.service_tokens import ServiceCaller
from ingest.http import ServiceHandler, problem, service_endpoint
from ingest.logins import login_route
from ingest.token_cache import TokenCache


def internal_routes(settings: Settings, engine: Engine) -> list[Route]:
    topics = settings.topics()
    callers: TokenCache[ServiceCaller] = TokenCache(settings.auth_cache_seconds)  # one per process, every route

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
        login_route(settings, engine, callers),
        Route("/internal/v1/accounts", service_endpoint(engine, topics, account, callers=callers), methods=["POST"]),
        *_invitation_routes(engine, topics, callers),
        Route("/app/{org}", app_landing),
    ]


def _invitation_routes(engine: Engine, topics: dict[str, str], callers: TokenCache[ServiceCaller]) -> list[Route]:
    """The app shows a person the orgs that invited them, and reports their consent."""

    def accept(invitation_id: str) -> ServiceHandler:
        def handle(uow: SqlUnitOfWork, body: bytes) -> Response:
            try:
                return JSONResponse(invitations.accept(uow, invitation_id))
            except invitations.InvitationError as exc:
                return problem(exc.status, str(exc))  # raised before anything is written

        return handle

    def pending(account_id: str | None) -> ServiceHandler:
        def handle(uow: SqlUnitOfWork, body: bytes) -> Response:
            if not account_id or not _is_uuid(account_id):
                return problem(400, "the query parameter 'account_id' must be an account id (a UUID)")
            return JSONResponse({"invitations": invitations.pending(uow.conn, account_id)})

        return handle

    # the handlers need the path and query, which a service handler is not given: one per request
    async def accept_invitation(request: Request) -> Response:
        invitation_id = request.path_params["invitation_id"]
        # a service token scoped to orgs accepts only its orgs' invitations
        endpoint = service_endpoint(
            engine, topics, accept(invitation_id), max_body=1024, org_of=lambda uow, _: _invitation_org(uow, invitation_id),
            callers=callers,
        )
        return await endpoint(request)

    async def list_invitations(request: Request) -> Response:
        endpoint = service_endpoint(engine, topics, pending(request.query_params.get("account_id")), max_body=1024,
                                    callers=callers)
        return await endpoint(request)

    return [
        Route("/internal/v1/invitations", list_invitations, methods=["GET"]),
        Route("/internal/v1/invitations/{invitation_id}/accept", accept_invitation, methods=["POST"]),
    ]


def _invitation_org(uow: SqlUnitOfWork, invitation_id: str) -> str | None:
    """The org an invitation is into (None when there is no such invitation: the handler answers 404)."""
    if not _is_uuid(invitation_id):
        return None
    found = uow.conn.execute(select(invitations_table.c.org_id).where(invitations_table.c.id == invitation_id)).scalar()
    return str(found) if found else None


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
