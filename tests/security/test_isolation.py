"""Tenant isolation, route by route (ARCHITECTURE §3.5): the org comes from the credential alone.

Every route of the ingest app is enumerated from the app itself (and the SCIM operations from
scim2-server's routing table), so a new route is covered, or fails here until it is classified.
Each protected route is called, aimed at org B's resources, with: no credential, org A's
credential of the right kind, and credentials of the wrong kind (A's and B's SCIM token on the
admin API, admin tokens on SCIM, a service token on either, and so on). Every answer must be
401 or 404 and hold none of B's data, and nothing of B's may change.

Two documented exceptions, both refusals that carry no data:
- the console is a browser UI: without a valid session it redirects (303) to its sign-in page,
  and an action on another org's conflict redirects back with an error notice;
- with A's own credential, a route that names no resource (`GET /org/members`, `GET /Users`)
  serves A's own data: that cell is "own", and is checked to hold nothing of B's.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import APIRoute
from scim2_server.routing import ROUTES as SCIM_ROUTES
from sqlalchemy import select, text
from starlette.routing import Mount, Route

from core.tables import metadata
from ingest.app import create_app
from ingest.console import _csrf_for
from tests.security.conftest import GROUP, USER, Tenant, seed

pytestmark = pytest.mark.security

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

# Routes anyone may call, and why. Anything else needs a credential and is in the matrix.
PUBLIC = {
    "/healthz": "liveness, no data",
    "/readyz": "readiness, no data",
    "/metrics": "Prometheus metrics (checked below for org data)",
    "/app/{org}": "landing page after sign-in, echoes the slug only",
    "/sso/{org}/oidc/login": "starts a browser sign-in",
    "/sso/{org}/oidc/callback": "ends a browser sign-in (state-checked)",
    "/sso/{org}/saml/metadata": "our SP metadata, public by design",
    "/sso/{org}/saml/login": "starts a browser sign-in",
    "/sso/{org}/saml/acs": "SAML responses, signature-checked",
    "/console/login": "the console's sign-in form",
    "/console/static": "stylesheet and script",
    "/admin/v1/openapi.json": "the admin API's document",
    "/.well-known/jwks.json": "the public key revocation SETs are signed with",
    "/.well-known/ssf-configuration": "the SET transmitter's public metadata",
}
FAMILIES = {"/scim/": "scim", "/admin/v1/": "admin", "/internal/v1/": "service", "/console": "console"}


def app_routes(app: Any) -> list[tuple[str, str]]:
    """(path, method) of every route of the app, mounted apps included."""
    found: list[tuple[str, str]] = []
    for route in app.routes:
        if isinstance(route, Mount):
            inner = getattr(route.app, "routes", None)
            if inner is None:
                found.append((route.path, "GET"))
            for sub in inner or []:
                for method in sorted(getattr(sub, "methods", None) or {"GET"}):
                    found.append((route.path + sub.path, method))
        elif isinstance(route, (Route, APIRoute)):
            for method in sorted(route.methods or {"GET"}):
                if method != "HEAD":
                    found.append((route.path, method))
    return found


def family(path: str) -> str | None:
    if path in PUBLIC:
        return "public"
    return next((name for prefix, name in FAMILIES.items() if path.startswith(prefix)), None)


@dataclass
class Call:
    route: str
    method: str
    url: str
    body: Any = None
    own: bool = False  # names no resource: A's credential serves A's own data


def scim_calls(b: Tenant, slug: str) -> list[Call]:
    """Every SCIM operation of scim2-server's routing table, aimed at B's resources."""
    ids = {"Users": b.user_id, "Groups": b.group_id}
    written = {
        "Users": {"schemas": [USER], "userName": "intruder@example.com"}, "Groups": {"schemas": [GROUP], "displayName": "x"},
    }
    bodies = {"POST": written, "PUT": written}
    named = {"/ResourceTypes/{resource_id}": "User", "/Schemas/{resource_id}": USER}  # the resource of a non-collection route
    calls = []
    for route in SCIM_ROUTES:
        if route.pattern in ("/ServiceProviderConfig",) or route.pattern.startswith("/Me") or route.pattern == "/Bulk":
            continue  # public discovery (checked below); /Me and /Bulk are not offered (501)
        for endpoint in ("Users", "Groups") if "{endpoint}" in route.pattern else ("",):
            path = route.pattern.replace("{endpoint}", endpoint)
            resource = ids.get(endpoint) or named.get(route.pattern)
            path = path.replace("{resource_id}", resource or "")
            body = None
            if route.operation.value == "search_with_body":
                body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}
            elif route.method in bodies:
                body = bodies[route.method][endpoint]
            elif route.method == "PATCH":
                body = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "pwned"}]}
            own = "{resource_id}" not in route.pattern or "/ResourceTypes" in route.pattern or "/Schemas" in route.pattern
            calls.append(Call("/scim/{org}/{path}", route.method, f"/scim/{slug}/v2{path}", body, own))
    return calls


def fill(path: str, b: Tenant) -> tuple[str, bool]:
    """A route's path with B's ids in it; whether it names no resource at all."""
    values = {"{org}": b.slug, "{member_id}": b.member_id, "{conflict_id}": b.conflict_id, "{action}": "acquire"}
    own = not any(key in path for key in ("{member_id}", "{conflict_id}"))
    for key, value in values.items():
        path = path.replace(key, value)
    return path, own


ADMIN_BODIES = {
    ("PATCH", "/admin/v1/org/settings"): {"scim_enabled": False},
    ("POST", "/admin/v1/org/members"): {"email": "intruder@example.com"},
    ("PUT", "/admin/v1/org/sso/oidc"): {"issuer": "https://idp.invalid", "client_id": "a", "client_secret": "b"},
    ("PUT", "/admin/v1/org/sso/saml"): {"metadata_url": "https://idp.invalid/metadata"},
    ("POST", "/internal/v1/logins"): "login",
    ("POST", "/internal/v1/accounts"): {"email": "intruder@example.com"},
}


def b_state(engine, org_id: str) -> dict[str, Any]:
    """Every row of org B in every table with an org_id (the audit trail and the IdP health it feeds
    aside: they record requests, refused ones included, and B's own seeding requests land in them a
    batch later), its org row and its outbox events."""
    state: dict[str, Any] = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            if "org_id" in table.c and "audit" not in table.name and table.name != "scim_health":
                state[table.name] = sorted(str(tuple(r)) for r in conn.execute(select(table).where(table.c.org_id == org_id)))
        state["orgs"] = [str(tuple(r)) for r in conn.execute(text("SELECT * FROM orgs WHERE id = :o"), {"o": org_id})]
        state["outbox"] = sorted(
            str(tuple(r))
            for r in conn.execute(text("SELECT id, payload::text FROM outbox WHERE payload->>'orgid' = :o"), {"o": org_id})
        )
    return state


@pytest.fixture(scope="module")
def matrix_orgs(settings, engine, app_client):
    """Orgs of their own: the matrix changes A's settings and tokens."""
    return seed(settings, engine, app_client, "iso-a"), seed(settings, engine, app_client, "iso-b")


def test_every_route_is_classified(app_client):
    unknown = sorted({path for path, _ in app_routes(app_client.app) if family(path) is None})
    assert not unknown, f"classify these routes in tests/security/test_isolation.py (PUBLIC or FAMILIES): {unknown}"


def test_isolation_matrix(settings, engine, app_client, matrix_orgs, service_token):
    a, b = matrix_orgs
    client = app_client
    # B's data: the marker is in B's user names, emails and group names. B's resource ids are not in
    # the list: every request here carries them, and A's own audit trail records what A sent.
    secrets_of_b = {b.marker, b.scim_token, b.admin_token, b.id}
    before = b_state(engine, b.id)
    routes = app_routes(create_app(settings, engine))
    assert len(routes) > 30 and any(f == "scim" for f in map(family, (p for p, _ in routes)))

    # credential kinds: (name, headers, cookies, the family it is the right kind for)
    bearer = lambda token: {"Authorization": f"Bearer {token}"}  # noqa: E731
    credentials = [
        ("none", {}, {}, None),
        ("A scim", bearer(a.scim_token), {}, "scim"),
        ("B scim", bearer(b.scim_token), {}, "scim"),
        ("A admin", bearer(a.admin_token), {"provisioner_console": a.admin_token}, "admin"),
        ("B admin", bearer(b.admin_token), {"provisioner_console": b.admin_token}, "admin"),
        ("service", bearer(service_token), {"provisioner_console": service_token}, "service"),
        ("A scim as cookie", {}, {"provisioner_console": a.scim_token}, None),
    ]
    cells: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    failures: list[str] = []

    for path, method in routes:
        kind = family(path)
        if kind == "public":
            continue
        if kind == "scim" and path != "/scim/{org}/{path:path}":
            continue  # the root `/scim/{org}` serves the same endpoint; its operations are listed below
        for call in _calls(path, method, kind, a, b):
            for name, headers, cookies, right_kind in credentials:
                if _not_an_attack(kind, name, right_kind):
                    continue
                send_headers, data = _request_parts(kind, method, headers, cookies)
                # A's credential on A's own root (the second set of SCIM calls) is "own" for collections
                a_root = call.url.startswith(f"/scim/{a.slug}/")
                own_org = (name == "A scim" and kind == "scim" and a_root) or (name == "A admin" and kind in ("admin", "console"))
                response = client.request(
                    call.method, call.url, headers=send_headers,
                    json=call.body if data is None and call.body is not None else None, data=data,
                    follow_redirects=False,
                )
                client.cookies.clear()
                sent = f"{name} {call.method} {call.url}"
                leaked = [s for s in secrets_of_b if s in response.text]
                if leaked:
                    failures.append(f"{sent}: B's data in the answer ({response.status_code}): {leaked}")
                label, failure = _label(kind, response, own_org, own_org and call.own)
                if failure:
                    failures.append(f"{sent}: {failure}")
                cells[(kind, name)][label] += 1

    after = b_state(engine, b.id)
    changed = [table for table in before if before[table] != after[table]]
    _print_matrix(cells, [c[0] for c in credentials])
    assert not failures, "\n".join(failures[:40])
    assert not changed, f"org B's rows changed in {changed}"


def _calls(path: str, method: str, kind: str | None, a: Tenant, b: Tenant) -> list[Call]:
    """The requests a route gets, aimed at B's resources (SCIM's also through A's own root)."""
    if kind == "scim":
        return scim_calls(b, b.slug) + [
            Call(c.route, c.method, c.url, c.body, c.own) for c in scim_calls(b, a.slug)  # A's own root, B's ids
        ]
    url, own = fill(path, b)
    body = ADMIN_BODIES.get((method, path))
    if body == "login":
        body = {"org": b.slug, "email": f"{b.marker}@example.com"}
    return [Call(path, method, url, body, own)]


def _not_an_attack(kind: str | None, name: str, right_kind: str | None) -> bool:
    """Credential cells the matrix leaves out, each for its reason."""
    if kind == "service" and name == "service":
        return True  # a service token is global: the app's backend names the org in the body
    if kind == "console" and name in ("A scim", "B scim"):
        return True  # the console reads no Authorization header: same as "none"
    # B's own credential of the right kind is not an attack
    return name.startswith("B ") and right_kind == {"console": "admin"}.get(kind, kind)


def _request_parts(
    kind: str | None, method: str, headers: dict[str, str], cookies: dict[str, str]
) -> tuple[dict[str, str], dict[str, str] | None]:
    """The headers and form a credential is sent with: the console takes its session as a cookie."""
    if kind != "console":
        return dict(headers), None
    send_headers: dict[str, str] = {}
    data: dict[str, str] | None = None
    if cookies:
        send_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    if method == "POST":
        data = {"csrf": _csrf_for(cookies.get("provisioner_console", "")), "email": "intruder@example.com"}
    return send_headers, data


def _label(kind: str | None, response: Any, own_org: bool, own_resource: bool) -> tuple[str, str | None]:
    """The matrix cell's label for an answer, and what is wrong with it (None when it is a refusal)."""
    status = response.status_code
    if kind == "console" and status == 303:
        where = response.headers["location"]
        label = "303 sign-in" if where == "/console/login" else "303 notice"
        if not (where == "/console/login" or (own_org and where.startswith("/console"))):
            return label, f"redirected to {where}"
        return label, None
    if status in (401, 404):
        return str(status), None
    if own_resource and status < 500:
        return "own", None  # A's own org: served or refused by its rules (409, 400...), checked for B's data
    return str(status), f"{status} {response.text[:200]}"


def _print_matrix(cells: dict[tuple[str, str], Counter[str]], names: list[str]) -> None:
    families = sorted({k for k, _ in cells})
    width = 22
    print("\nIsolation matrix (requests per answer; every cell aimed at org B's resources)")
    print("family   | " + " | ".join(n.ljust(width) for n in names))
    for kind in families:
        row = []
        for name in names:
            counts = cells.get((kind, name))
            row.append((", ".join(f"{k}x{v}" for k, v in sorted(counts.items())) if counts else "-").ljust(width))
        print(f"{kind:<8} | " + " | ".join(row))


def test_public_routes_hold_no_org_data(engine, app_client, org_a, org_b):
    """The routes without a credential: discovery and metrics name no org's data."""
    secrets = {org_b.marker, org_b.user_id, org_b.scim_token, org_b.admin_token, org_b.id}
    for url in ("/healthz", "/metrics", f"/scim/{org_b.slug}/v2/ServiceProviderConfig", "/admin/v1/openapi.json"):
        response = app_client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        assert not [s for s in secrets if s in response.text], url
