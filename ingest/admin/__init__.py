"""The admin API an org's administrators call: `admin_api(settings, engine)`, mounted at `/admin/v1`.

The org comes from the admin token alone (`Authorization: Bearer adm_...`); SCIM and service
tokens are refused. Every rule lives in `domain.admin` (and `domain.orgs`, `domain.members`, the SSO
modules): this package is request and response models (`models`), authentication and
transactions (`deps`), error mapping (`errors`) and one router per resource (`org`, `members`,
`conflicts`, `domains`, `audit`, `sso`, `tokens`, `health`). Endpoints are sync `def`s, so FastAPI runs their blocking database
work in its threadpool. Errors have one shape, `{"status": int, "detail": str}`; a body that does
not match its schema (or a query parameter out of its enumeration) is 422, a well-formed request
the rules refuse is 400, 403, 404 or 409, a body over 64 KiB is 413. `docs/admin-api.md` describes it.
"""

from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine

from core.settings import Settings
from ingest.admin import audit, conflicts, domains, health, members, org, preview, sso, tokens
from ingest.admin.deps import Service
from ingest.admin.errors import install_error_handlers
from ingest.http import LimitBody

__all__ = ["MAX_BODY_BYTES", "admin_api", "openapi_document"]

MAX_BODY_BYTES = 64 * 1024

# in this order: the OpenAPI document lists the paths as the routes are added
_ROUTERS = (
    org.router, health.router, preview.router, tokens.router, members.router, conflicts.router, domains.router, audit.router,
    sso.router,
)


def admin_api(settings: Settings, engine: Engine) -> FastAPI:
    """The admin API app; operation ids are the route functions' names."""
    app = FastAPI(
        title="Provisioner admin API",
        version="1",
        description="What an organisation's administrators do: settings, SCIM token, members, email conflicts, "
        "email domains, SSO. "
        "The organisation is the admin token's.",
        openapi_url="/openapi.json",
        servers=[{"url": "/admin/v1", "description": "mounted under the ingest server"}],
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.admin = Service(settings=settings, engine=engine, topics=settings.topics())
    install_error_handlers(app)
    app.add_middleware(LimitBody, limit=MAX_BODY_BYTES)
    for router in _ROUTERS:
        # the routes themselves, not app.include_router: recent FastAPI keeps an included router as
        # one lazy entry of app.routes, hiding the path operations from whatever walks the routes
        # (tests/security/test_isolation.py classifies every route); each router already carries
        # its tag and operation ids, so the document is the same
        app.router.routes.extend(router.routes)
    return app


def openapi_document(settings: Settings | None = None) -> dict[str, Any]:
    """The OpenAPI document, without a database (what `schemas/openapi/admin.json` holds)."""
    from sqlalchemy import create_engine

    return admin_api(settings or Settings(), create_engine("postgresql+psycopg2://")).openapi()
