"""The ingest process's composition root: `create_app(settings)` wires every route."""

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from core.db import make_engine
from core.settings import Settings
from ingest.admin import MAX_BODY_BYTES as ADMIN_MAX_BODY_BYTES
from ingest.admin import admin_api
from ingest.audit import AuditWriter, ScimAudit
from ingest.console import console_routes
from ingest.console.session import PREFIX as CONSOLE_PREFIX
from ingest.console.web import MAX_FORM_BYTES as CONSOLE_MAX_FORM_BYTES
from ingest.http import INTERNAL_MAX_BODY_BYTES, EdgeLimits
from ingest.internal import internal_routes
from ingest.observability import RequestMetrics
from ingest.scim.routes import ScimEndpoint
from ingest.signals import signal_routes
from ingest.sso import oidc, saml
from ingest.sso.saml import MAX_FORM_BYTES as SAML_MAX_FORM_BYTES

# OPTIONS too, so the SCIM service answers it (405 with Allow and a SCIM Error), not the router
_SCIM_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def create_app(settings: Settings, engine: Engine | None = None) -> Starlette:
    engine = engine or make_engine(settings, bounded=True)  # no request statement outlives its client
    scim = ScimEndpoint(settings, engine)
    audit_writer = AuditWriter(settings, engine)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        sys.setswitchinterval(settings.http_switch_interval_alone_seconds)  # the SCIM fair shares shorten it (fairness.py)
        audit_writer.start()
        try:
            yield
        finally:
            audit_writer.stop()

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def _db_ready() -> bool:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def readyz(_: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        ready = await run_in_threadpool(_db_ready)
        return JSONResponse({"status": "ready" if ready else "database unavailable"}, status_code=200 if ready else 503)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    routes: list[Any] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/scim/{org}", scim.handle, methods=_SCIM_METHODS),
        Route("/scim/{org}/{path:path}", scim.handle, methods=_SCIM_METHODS),
        *internal_routes(settings, engine),
        *oidc.routes(settings, engine),
        *saml.routes(settings, engine),
        *console_routes(settings, engine),
        *signal_routes(settings),
        Mount("/admin/v1", app=admin_api(settings, engine)),
    ]
    middleware = [Middleware(RequestMetrics), Middleware(ScimAudit, writer=audit_writer), _edge_limits(settings)]
    app = Starlette(
        routes=routes, middleware=middleware, lifespan=lifespan,
        exception_handlers={404: _not_routed, 405: _not_routed},
    )
    app.state.engine = engine
    app.state.settings = settings
    return app


def _edge_limits(settings: Settings) -> Middleware:
    """Every route's body limit, enforced before routing and authentication (the routes keep their
    own, possibly smaller, ones); inside metrics and audit, so refusals are counted and audited."""
    limits = {
        "/scim/": settings.max_body_bytes,
        "/admin/": ADMIN_MAX_BODY_BYTES,
        "/internal/": INTERNAL_MAX_BODY_BYTES,
        "/sso/": SAML_MAX_FORM_BYTES,
        CONSOLE_PREFIX: CONSOLE_MAX_FORM_BYTES,
    }
    # a SCIM request's deadline counts from its arrival: its body may take no longer than that
    scim_body = min(settings.http_body_timeout_seconds, settings.scim_request_deadline_seconds)
    return Middleware(
        EdgeLimits, limits=limits, default=min(limits.values()), body_timeout=settings.http_body_timeout_seconds,
        body_timeouts={"/scim/": scim_body},
    )


async def _not_routed(request: Request, exc: Exception) -> Response:
    """A path or method no route takes (e.g. a path holding a line break): JSON, a SCIM Error under /scim."""
    status = getattr(exc, "status_code", 404)
    detail = "no such endpoint" if status == 404 else "method not allowed here"
    if request.url.path.startswith("/scim/"):
        body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": str(status), "detail": detail}
        return JSONResponse(body, status_code=status, headers=getattr(exc, "headers", None), media_type="application/scim+json")
    return JSONResponse({"status": status, "detail": detail}, status_code=status, headers=getattr(exc, "headers", None))


def app_from_env() -> Starlette:
    """The app built from the environment: what each uvicorn worker process imports."""
    return create_app(Settings())
