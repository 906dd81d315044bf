"""Who calls the admin API, the transactions its routes run in, and the router each resource's
routes are declared on: the admin token alone names the org (SCIM and service tokens are refused),
and a route works on the org as it is now."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine, select

from core.settings import Settings
from core.tables import orgs as orgs_table
from domain import admin, orgs
from domain.postgres import SqlUnitOfWork
from ingest.admin.errors import Unauthorized
from ingest.http import bearer_token


def _operation_id(route: APIRoute) -> str:
    return route.name


def resource_router(tag: str) -> APIRouter:
    """The router of one resource's routes: tagged `tag`, each operation id its function's name."""
    return APIRouter(tags=[tag], generate_unique_id_function=_operation_id)


@dataclass(frozen=True)
class Caller:
    """The org an admin token belongs to, and the actor recorded in its events."""

    org: orgs.Org
    actor: str
    token_id: str = ""


@dataclass(frozen=True)
class Service:
    """What the routes work with, one per app: the settings, the engine and the event topics."""

    settings: Settings
    engine: Engine
    topics: dict[str, str]

    @contextmanager
    def transaction(self, who: Caller, *, lock: bool = False) -> Iterator[tuple[SqlUnitOfWork, orgs.Org]]:
        """A unit of work with the org as it is now (its row locked when `lock`)."""
        with SqlUnitOfWork.begin(self.engine, self.topics) as uow:
            query = select(orgs_table).where(orgs_table.c.id == who.org.id)
            row = uow.conn.execute(query.with_for_update() if lock else query).first()
            if row is None:
                raise Unauthorized()  # the org was deleted since the token was checked
            yield uow, orgs.Org.of(row)


async def service(request: Request) -> Service:
    """The app's `Service`, which `admin_api` keeps in `app.state.admin`."""
    found: Service = request.app.state.admin
    return found


Api = Annotated[Service, Depends(service)]

# what the OpenAPI document names as the security scheme; the token itself is read by the one
# bearer rule of ingest.http (the same parse: scheme in any case, token trimmed)
_bearer = HTTPBearer(auto_error=False, bearerFormat="adm_...", description="An org admin token.")


def caller(
    request: Request, api: Api, _documented: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Caller:
    """The caller of a valid admin token (`adm_...`), else 401."""
    token = bearer_token(request.headers.get("authorization"))
    if not token.startswith("adm_") or len(token) > 256:
        raise Unauthorized()
    with api.engine.begin() as conn:  # committed: the token's last use may be recorded
        found = admin.admin_token(conn, token)
    if found is None:
        raise Unauthorized()
    return Caller(org=found.org, actor=f"admin-api:{found.name or 'admin'}", token_id=found.id)


Admin = Annotated[Caller, Depends(caller)]


def known_id(value: str, what: str) -> str:
    """Ids are UUIDs; anything else names nothing here (404, never a database error)."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise admin.AdminError(404, f"no such {what} in this organisation") from None
