"""The admin console: a small server-rendered UI for org admins, mirroring the "Provisioning" settings panel
(manual, SSO and SCIM provisioning; SCIM base URL and token rotation) and the user list (statuses, email
conflicts with Acquire / Dismiss, manual adds, recent activity).

Sessions (`session`): the admin pastes an admin token (`adm_...`) once; it opens a session (`console_sessions`)
whose random id lives in an HttpOnly, SameSite=Strict cookie scoped to `/console` and is checked on every request,
so sign-out, or revoking the admin token, ends it server-side. Forms carry a CSRF token, an HMAC keyed by the
session id; state changes are POST only. One-time messages (a freshly rotated SCIM token among them) travel in a
short-lived cookie encrypted under a key derived from the session id.
Pages (`auth`, `pages`) are Jinja2 templates with autoescape on, one
stylesheet and one script from `ingest/static/`, under a strict Content-Security-Policy (`web`).
"""

from pathlib import Path

from sqlalchemy import Engine
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from core.settings import Settings
from ingest.console import auth, pages, preview, sso
from ingest.console.session import PREFIX, csrf_for
from ingest.console.web import Console

__all__ = ["console_routes"]

# The name the single-module console had; tests/security/test_isolation.py signs its cross-org posts with it.
_csrf_for = csrf_for

STATIC_DIR = Path(__file__).parent.parent / "static"


def console_routes(settings: Settings, engine: Engine) -> list[BaseRoute]:
    """Every console route, its static files included; all but sign-in need a session."""
    console = Console(settings, engine)
    g = console.guarded
    return [
        Route(f"{PREFIX}/login", console.public(auth.login_form), methods=["GET"]),
        Route(f"{PREFIX}/login", console.public(auth.login), methods=["POST"]),
        Route(f"{PREFIX}/logout", g(auth.logout), methods=["POST"]),
        Route(PREFIX, g(pages.settings_page), methods=["GET"]),
        Route(f"{PREFIX}/settings", g(pages.change_setting), methods=["POST"]),
        Route(f"{PREFIX}/seats", g(pages.change_seats), methods=["POST"]),
        Route(f"{PREFIX}/scim/rotate", g(pages.rotate), methods=["POST"]),
        Route(f"{PREFIX}/scim/preview", g(preview.start), methods=["POST"]),
        Route(f"{PREFIX}/scim/go-live", g(preview.go_live), methods=["POST"]),
        Route(f"{PREFIX}/users", g(pages.users_page), methods=["GET"]),
        Route(f"{PREFIX}/users", g(pages.add_user), methods=["POST"]),
        Route(f"{PREFIX}/users/{{member_id}}", g(pages.member_page), methods=["GET"]),
        Route(f"{PREFIX}/conflicts/{{conflict_id}}/{{action}}", g(pages.resolve), methods=["POST"]),
        Route(f"{PREFIX}/guides/{{idp}}", g(pages.guide_page), methods=["GET"]),
        Route(f"{PREFIX}/sso/oidc", g(sso.connect_oidc), methods=["POST"]),
        Route(f"{PREFIX}/sso/saml", g(sso.connect_saml), methods=["POST"]),
        Route(f"{PREFIX}/sso/{{protocol}}/test", g(sso.start_test), methods=["POST"]),
        Route(f"{PREFIX}/sso/tests/{{test_id}}", g(sso.test_result), methods=["GET"]),
        # check_dir=False: an install without the package data still serves the (unstyled) pages.
        Mount(f"{PREFIX}/static", app=StaticFiles(directory=STATIC_DIR, check_dir=False), name="console-static"),
    ]
