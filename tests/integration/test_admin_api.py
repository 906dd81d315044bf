"""The admin API over real HTTP (the live ingest server) on the real PostgreSQL.

Integration tests run no workers: a manual add is checked by its staged outbox event, and
conflicts are created in the database the way the conflict worker does.
"""

import datetime as dt
import json
import threading
import uuid
from base64 import b64encode
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from core.tables import accounts, conflicts, member_activity, members
from domain import admin, domains, orgs, service_tokens
from domain.postgres import SqlUnitOfWork

pytestmark = pytest.mark.integration

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ROOT = Path(__file__).resolve().parents[2]

ENDPOINTS = [
    ("GET", "/org", None),
    ("GET", "/org/health", None),
    ("GET", "/org/scim/preview", None),
    ("POST", "/org/scim/preview", None),
    ("POST", "/org/scim/go-live", None),
    ("PATCH", "/org/settings", {"scim_enabled": True}),
    ("POST", "/org/scim-token/rotate", None),
    ("GET", "/org/members", None),
    ("GET", "/org/members/counts", None),
    ("POST", "/org/members", {"email": "x@example.test"}),
    ("GET", f"/org/members/{uuid.uuid4()}/activity", None),
    ("GET", "/org/conflicts", None),
    ("POST", f"/org/conflicts/{uuid.uuid4()}/acquire", None),
    ("POST", f"/org/conflicts/{uuid.uuid4()}/dismiss", None),
    ("GET", "/org/sso", None),
    ("PUT", "/org/sso/oidc", {"issuer": "https://idp.example.test", "client_id": "a", "client_secret": "b"}),
    ("PUT", "/org/sso/saml", {"metadata_url": "https://idp.example.test/metadata"}),
    ("GET", "/org/scim-audit", None),
    ("POST", f"/org/conflicts/{uuid.uuid4()}/invite", None),
    ("GET", "/org/domains", None),
    ("POST", "/org/domains", {"domain": "example.test"}),
    ("POST", "/org/domains/example.test/verify", None),
    ("GET", "/org/tokens", None),
    ("DELETE", f"/org/tokens/{uuid.uuid4()}", None),
]


def _client(server: str, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=f"{server}/admin/v1", headers=headers, timeout=15)


@pytest.fixture
def api(server, engine, scim_org):
    with _client(server, admin.create_admin_token(engine, scim_org.slug)) as client:
        yield client


@pytest.fixture
def other_api(server, engine, other_org):
    with _client(server, admin.create_admin_token(engine, other_org.slug, "other")) as client:
        yield client


def problem(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"status", "detail"} and body["status"] == status and isinstance(body["detail"], str), body
    return body["detail"]


def events(engine, org_id: str, kind: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT payload FROM outbox WHERE payload->>'orgid' = :o ORDER BY id"), {"o": org_id}).scalars()
        return [p for p in rows if p["type"] == f"io.provisioner.{kind}"]


def add_member_row(engine, org_id: str, email: str, status: str = "provisioned", source: str = "scim") -> str:
    member_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(
            members.insert().values(
                id=member_id, org_id=org_id, email=email, email_ci=email.lower(), user_name=email, status=status, source=source,
                scim_user_id=str(uuid.uuid4()) if source == "scim" else None,
            )
        )
    return member_id


def open_conflict(engine, org_id: str, email: str) -> dict[str, str]:
    """An account outside the org and a member with its email, flagged as the conflict worker does."""
    member_id, account_id, conflict_id = add_member_row(engine, org_id, email), str(uuid.uuid4()), str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(accounts.insert().values(id=account_id, email=email, email_ci=email.lower()))
        conn.execute(
            conflicts.insert().values(
                id=conflict_id, org_id=org_id, member_id=member_id, account_id=account_id, email_ci=email.lower(),
                status="open", error=f"{email} already has an account that is not part of this organisation.",
            )
        )
        conn.execute(members.update().where(members.c.id == member_id).values(conflict_id=conflict_id))
    return {"member_id": member_id, "account_id": account_id, "conflict_id": conflict_id}


# -- the document ----------------------------------------------------------------------------


def test_openapi_document_is_served_valid_and_committed(server):
    r = httpx.get(f"{server}/admin/v1/openapi.json", timeout=10)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["openapi"].startswith("3.") and doc["info"] == {
        "title": "Provisioner admin API", "version": "1", "description": doc["info"]["description"],
    }
    expected = {
        "/org": {"get"}, "/org/health": {"get"}, "/org/settings": {"patch"}, "/org/scim-token/rotate": {"post"},
        "/org/scim/preview": {"get", "post"}, "/org/scim/go-live": {"post"},
        "/org/members": {"get", "post"},
        "/org/members/counts": {"get"}, "/org/members/{member_id}/activity": {"get"},
        "/org/members/{member_id}": {"delete"}, "/org/conflicts": {"get"},
        "/org/conflicts/{conflict_id}/acquire": {"post"}, "/org/conflicts/{conflict_id}/dismiss": {"post"},
        "/org/conflicts/{conflict_id}/invite": {"post"},
        "/org/domains": {"get", "post"}, "/org/domains/{domain}/verify": {"post"},
        "/org/sso": {"get"}, "/org/sso/oidc": {"put"}, "/org/sso/saml": {"put"}, "/org/scim-audit": {"get"},
        "/org/tokens": {"get"}, "/org/tokens/{token_id}": {"delete"},
    }
    assert {path: set(ops) for path, ops in doc["paths"].items()} == expected
    for ops in doc["paths"].values():
        for op in ops.values():
            assert op["security"] == [{"HTTPBearer": []}]
            assert op["responses"]["401"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]  # 422 has our error shape too
    committed = json.loads((ROOT / "schemas/openapi/admin.json").read_text())
    assert doc == committed, "regenerate schemas/openapi/admin.json (see docs/admin-api.md)"
    assert httpx.get(f"{server}/admin/v1/docs", timeout=10).status_code == 404


# -- authentication and isolation -----------------------------------------------------------


def test_every_endpoint_needs_an_admin_token(server, engine, scim_org):
    scim_token = scim_org.token
    service_token = service_tokens.create(engine, "app-backend")
    for token in (None, scim_token, service_token, "adm_" + "x" * 43, "not-a-token"):
        with _client(server, token) as client:
            for method, path, body in ENDPOINTS:
                r = client.request(method, path, json=body)
                detail = problem(r, 401)
                assert "admin token" in detail and r.headers["www-authenticate"] == "Bearer", (token, method, path)
    r = httpx.get(f"{server}/admin/v1/org", headers={"Authorization": f"Basic {scim_token}"}, timeout=10)
    problem(r, 401)


def test_an_admin_token_sees_only_its_own_org(api, other_api, engine, scim_org, other_org):
    assert api.get("/org").json()["id"] == scim_org.id
    assert other_api.get("/org").json()["id"] == other_org.id
    member_id = add_member_row(engine, scim_org.id, "mine@example.test")
    conflict = open_conflict(engine, scim_org.id, f"c-{uuid.uuid4().hex[:8]}@example.test")
    assert {m["id"] for m in other_api.get("/org/members").json()["members"]} == set()
    assert other_api.get("/org/conflicts", params={"status": "all"}).json()["conflicts"] == []
    problem(other_api.get(f"/org/members/{member_id}/activity"), 404)
    problem(other_api.get(f"/org/members/{conflict['member_id']}/activity"), 404)
    problem(other_api.post(f"/org/conflicts/{conflict['conflict_id']}/acquire"), 404)
    problem(other_api.post(f"/org/conflicts/{conflict['conflict_id']}/dismiss"), 404)
    # still open for its own org
    assert [c["id"] for c in api.get("/org/conflicts").json()["conflicts"]] == [conflict["conflict_id"]]


# -- org and settings ------------------------------------------------------------------------


def test_get_org(api, scim_org, settings):
    body = api.get("/org").json()
    assert body == {
        "id": scim_org.id, "slug": scim_org.slug, "name": scim_org.slug,
        "settings": {"manual_provisioning": True, "sso_provisioning": False, "scim_enabled": True, "seat_policy": "refuse"},
        "scim_base_url": f"{settings.public_url}/scim/{scim_org.slug}/v2",
    }


def test_settings_change_is_audited_with_before_and_after(api, engine, scim_org):
    r = api.patch("/org/settings", json={"sso_provisioning": True, "manual_provisioning": False})
    assert r.status_code == 200, r.text
    seats = {"seat_limit": None, "seat_policy": "refuse"}
    assert r.json() == {"manual_provisioning": False, "sso_provisioning": True, "scim_enabled": True, **seats}
    (event,) = events(engine, scim_org.id, "org.settings.changed")
    assert event["data"]["before"] == {"manual_provisioning": True, "sso_provisioning": False, "scim_enabled": True, **seats}
    assert event["data"]["after"] == {"manual_provisioning": False, "sso_provisioning": True, "scim_enabled": True, **seats}
    assert event["data"]["actor"] == "admin-api:admin"
    assert api.get("/org").json()["settings"] == {k: v for k, v in r.json().items() if v is not None}
    # nothing changes, nothing is recorded
    assert api.patch("/org/settings", json={"sso_provisioning": True}).status_code == 200
    assert api.patch("/org/settings", json={}).json() == r.json()
    assert len(events(engine, scim_org.id, "org.settings.changed")) == 1


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"billing": True}, "body.billing: unknown field"),
        ({"scim_enabled": "yes"}, "body.scim_enabled: Input should be a valid boolean"),
        ([True], "body: Input should be a valid dictionary"),
    ],
)
def test_settings_change_refuses_unknown_fields_and_non_booleans(api, engine, scim_org, body, words):
    assert words in problem(api.patch("/org/settings", json=body), 422)
    assert events(engine, scim_org.id, "org.settings.changed") == []


def test_malformed_json_is_a_readable_422(api):
    r = api.patch("/org/settings", content=b'{"scim_enabled": tru', headers={"Content-Type": "application/json"})
    assert problem(r, 422) == "body: not valid JSON"


def test_scim_disabled_through_the_api_refuses_scim(api, scim_org):
    assert scim_org.client.get("/Users").status_code == 200
    assert api.patch("/org/settings", json={"scim_enabled": False}).json()["scim_enabled"] is False
    assert scim_org.client.get("/Users").status_code == 401
    assert scim_org.client.post("/Users", json={"schemas": [USER], "userName": "off@example.test"}).status_code == 401
    assert "scim_base_url" not in api.get("/org").json()
    api.patch("/org/settings", json={"scim_enabled": True})
    assert scim_org.client.get("/Users").status_code == 200


def test_rotated_scim_token_works_and_the_old_one_keeps_working_during_the_overlap(api, scim_org, settings):
    r = api.post("/org/scim-token/rotate")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scim_token"].startswith("scim_") and body["scim_token"] != scim_org.token
    assert body["previous_tokens_valid_for_seconds"] == settings.token_overlap_seconds
    assert body["scim_base_url"] == scim_org.base_url
    fresh = httpx.get(f"{scim_org.base_url}/Users", headers={"Authorization": f"Bearer {body['scim_token']}"}, timeout=10)
    assert fresh.status_code == 200, fresh.text
    assert scim_org.client.get("/Users").status_code == 200  # the old token, within the overlap
    # the new SCIM token is no admin token
    with httpx.Client(base_url=str(api.base_url), headers={"Authorization": f"Bearer {body['scim_token']}"}) as client:
        problem(client.get("/org"), 401)


# -- members ---------------------------------------------------------------------------------


def test_manual_add_is_refused_while_off_and_staged_while_on(api, engine, scim_org):
    api.patch("/org/settings", json={"manual_provisioning": False})
    detail = problem(api.post("/org/members", json={"email": "hand@example.test"}), 403)
    assert "manual_provisioning" in detail
    assert events(engine, scim_org.id, "member.manually_added") == []

    api.patch("/org/settings", json={"manual_provisioning": True})
    r = api.post("/org/members", json={"email": " Hand@Example.test ", "display_name": "Hand"})
    assert r.status_code == 202, r.text
    assert r.json()["email"] == "Hand@Example.test"
    (event,) = events(engine, scim_org.id, "member.manually_added")
    assert event["id"] == r.json()["event_id"]
    assert event["data"] == {
        "member_id": r.json()["member_id"], "email": "Hand@Example.test", "display_name": "Hand", "actor": "admin-api:admin",
    }  # fmt: skip
    assert event["partitionkey"] == f"{scim_org.id}:{r.json()['member_id']}"


def test_manual_add_refuses_duplicates_and_bad_input(api, engine, scim_org):
    add_member_row(engine, scim_org.id, "There@example.test")
    assert "already a member" in problem(api.post("/org/members", json={"email": "there@EXAMPLE.test"}), 409)
    assert "valid email" in problem(api.post("/org/members", json={"email": "not an email"}), 400)
    assert "body.email: Field required" in problem(api.post("/org/members", json={"display_name": "x"}), 422)
    assert "body.email: String should have at most 320 characters" in problem(
        api.post("/org/members", json={"email": "a" * 400 + "@example.test"}), 422
    )
    assert "body.role: unknown field" in problem(api.post("/org/members", json={"email": "n@example.test", "role": "owner"}), 422)
    assert events(engine, scim_org.id, "member.manually_added") == []


def test_members_list_and_status_filter(api, engine, scim_org):
    a = add_member_row(engine, scim_org.id, "a@example.test", "provisioned")
    b = add_member_row(engine, scim_org.id, "b@example.test", "deactivated")
    gone = add_member_row(engine, scim_org.id, "gone@example.test", "removed")
    conflict = open_conflict(engine, scim_org.id, "c@example.test")
    listed = {m["id"]: m for m in api.get("/org/members").json()["members"]}
    assert set(listed) == {a, b, conflict["member_id"]}
    assert (listed[a]["status"], listed[a]["source"], listed[a]["error"]) == ("provisioned", "scim", None)
    assert listed[b]["status"] == "deactivated"
    c = listed[conflict["member_id"]]
    assert c["status"] == "conflict" and c["lifecycle_status"] == "provisioned" and "already has an account" in c["error"]
    assert [m["id"] for m in api.get("/org/members", params={"status": "conflict"}).json()["members"]] == [conflict["member_id"]]
    assert [m["id"] for m in api.get("/org/members", params={"status": "provisioned"}).json()["members"]] == [a]
    assert [m["id"] for m in api.get("/org/members", params={"status": "removed"}).json()["members"]] == [gone]
    assert api.get("/org/members", params={"status": "active"}).json()["members"] == []
    detail = problem(api.get("/org/members", params={"status": "asleep"}), 422)
    assert detail.startswith("query.status: Input should be 'provisioned', 'active', 'deactivated', 'conflict' or 'removed'")


def test_member_activity(api, engine, scim_org):
    member_id = add_member_row(engine, scim_org.id, "busy@example.test")
    with engine.begin() as conn:
        for n, (kind, source) in enumerate([("user.created", "scim"), ("login.succeeded", "sso")]):
            conn.execute(
                member_activity.insert().values(
                    org_id=scim_org.id, member_id=member_id, event_id=str(uuid.uuid4()), type=f"io.provisioner.{kind}",
                    source=source, summary={"n": n}, at=dt.datetime(2025, 1, 1 + n, tzinfo=dt.UTC),
                )
            )
    r = api.get(f"/org/members/{member_id}/activity")
    assert r.status_code == 200, r.text
    assert [(a["type"], a["source"], a["summary"]) for a in r.json()] == [
        ("io.provisioner.login.succeeded", "sso", {"n": 1}), ("io.provisioner.user.created", "scim", {"n": 0}),
    ]
    assert dt.datetime.fromisoformat(r.json()[0]["at"]) == dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
    assert api.get(f"/org/members/{add_member_row(engine, scim_org.id, 'quiet@example.test')}/activity").json() == []
    for bad in (str(uuid.uuid4()), "not-a-uuid", "1' OR '1'='1", "x" * 300):
        assert "no such member" in problem(api.get(f"/org/members/{bad}/activity"), 404)


# -- conflicts -------------------------------------------------------------------------------


def test_acquiring_a_conflict_makes_the_account_the_member(api, engine, scim_org, settings):
    domain = f"{scim_org.slug}.example"
    c = open_conflict(engine, scim_org.id, f"Taken@{domain}")
    (listed,) = api.get("/org/conflicts").json()["conflicts"]
    assert listed["id"] == c["conflict_id"] and listed["status"] == "open" and listed["email"] == f"Taken@{domain}"
    assert "has not verified the email domain" in problem(api.post(f"/org/conflicts/{c['conflict_id']}/acquire"), 409)
    with engine.begin() as conn:  # support's override: the org may acquire accounts on its domain
        org = orgs.get(conn, scim_org.slug)
        domains.add(SqlUnitOfWork(conn, settings.topics()), org, domain, "support:test", verified=True)
    assert listed["member_id"] == c["member_id"] and listed["account_id"] == c["account_id"] and listed["resolved_at"] is None

    r = api.post(f"/org/conflicts/{c['conflict_id']}/acquire")
    assert r.status_code == 200, r.text
    assert r.json() == {"id": c["conflict_id"], "status": "acquired", "member_id": c["member_id"], "account_id": c["account_id"]}
    (member,) = [m for m in api.get("/org/members").json()["members"] if m["id"] == c["member_id"]]
    assert member["status"] == "provisioned" and member["account_id"] == c["account_id"] and member["error"] is None
    with engine.connect() as conn:
        assert conn.execute(accounts.select().where(accounts.c.id == c["account_id"])).one().org_id == scim_org.id
    (event,) = events(engine, scim_org.id, "account.acquired")
    assert event["data"]["conflict_id"] == c["conflict_id"] and event["data"]["account_id"] == c["account_id"]
    assert event["data"]["actor"] == "admin-api:admin"

    assert api.get("/org/conflicts").json()["conflicts"] == []
    (done,) = api.get("/org/conflicts", params={"status": "acquired"}).json()["conflicts"]
    assert done["status"] == "acquired" and done["resolved_at"]
    assert [x["id"] for x in api.get("/org/conflicts", params={"status": "all"}).json()["conflicts"]] == [c["conflict_id"]]
    problem(api.post(f"/org/conflicts/{c['conflict_id']}/acquire"), 404)  # no longer open
    problem(api.post(f"/org/conflicts/{c['conflict_id']}/dismiss"), 404)


def test_dismissing_a_conflict_keeps_the_member_unlinked(api, engine, scim_org):
    c = open_conflict(engine, scim_org.id, "elsewhere@example.test")
    r = api.post(f"/org/conflicts/{c['conflict_id']}/dismiss")
    assert r.status_code == 200 and r.json()["status"] == "dismissed", r.text
    (member,) = [m for m in api.get("/org/members").json()["members"] if m["id"] == c["member_id"]]
    assert member["status"] == "provisioned" and member["account_id"] is None
    with engine.connect() as conn:
        assert conn.execute(accounts.select().where(accounts.c.id == c["account_id"])).one().org_id is None
    assert len(events(engine, scim_org.id, "member.conflict.dismissed")) == 1
    assert [x["status"] for x in api.get("/org/conflicts", params={"status": "dismissed"}).json()["conflicts"]] == ["dismissed"]


def test_unknown_and_malformed_conflict_ids_are_404(api, engine, scim_org):
    c = open_conflict(engine, scim_org.id, "kept@example.test")
    for bad in (str(uuid.uuid4()), "nope", "kept@example.test", c["member_id"]):
        for action in ("acquire", "dismiss"):
            problem(api.post(f"/org/conflicts/{bad}/{action}"), 404)
    assert "query.status" in problem(api.get("/org/conflicts", params={"status": "closed"}), 422)
    assert [x["status"] for x in api.get("/org/conflicts").json()["conflicts"]] == ["open"]


# -- SSO -------------------------------------------------------------------------------------


@pytest.fixture
def discovery():
    """A loopback OpenID Provider that serves only its discovery document."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            base = f"http://127.0.0.1:{self.server.server_port}"
            if self.path != "/.well-known/openid-configuration":
                self.send_error(404)
                return
            body = json.dumps({
                "issuer": base, "authorization_endpoint": f"{base}/auth", "token_endpoint": f"{base}/token",
                "jwks_uri": f"{base}/jwks",
            }).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def idp_metadata(entity_id: str = "https://idp.example.test/saml") -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test idp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    der = b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    return f"""<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"
    entityID="{entity_id}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>
      <ds:X509Certificate>{der}</ds:X509Certificate>
    </ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.test/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"""


def test_sso_urls_before_anything_is_configured(api, scim_org, settings):
    body = api.get("/org/sso").json()
    base = f"{settings.public_url}/sso/{scim_org.slug}"
    assert body == {
        "sso_provisioning": False,
        "oidc": {"configured": False, "issuer": None, "client_id": None, "login_url": f"{base}/oidc/login",
                 "redirect_uri": f"{base}/oidc/callback"},
        "saml": {"configured": False, "idp_entity_id": None, "idp_sso_url": None, "idp_metadata_url": None,
                 "login_url": f"{base}/saml/login", "acs_url": f"{base}/saml/acs", "entity_id": f"{base}/saml/metadata",
                 "metadata_url": f"{base}/saml/metadata"},
    }


def test_configure_oidc_never_returns_the_secret(api, discovery, scim_org, settings, engine):
    secret = "s3cr3t-" + uuid.uuid4().hex
    r = api.put("/org/sso/oidc", json={"issuer": discovery, "client_id": "client-1", "client_secret": secret})
    assert r.status_code == 200, r.text
    base = f"{settings.public_url}/sso/{scim_org.slug}/oidc"
    assert r.json() == {"login_url": f"{base}/login", "redirect_uri": f"{base}/callback", "issuer": discovery}
    shown = api.get("/org/sso")
    assert shown.json()["oidc"] == {
        "configured": True, "issuer": discovery, "client_id": "client-1", "login_url": f"{base}/login",
        "redirect_uri": f"{base}/callback",
    }
    assert secret not in shown.text and secret not in r.text
    (audited,) = events(engine, scim_org.id, "org.sso.configured")  # the change is audited, its secret never
    assert audited["data"]["actor"] == "admin-api:admin" and secret not in str(audited)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"issuer": "http://idp.example.test", "client_id": "a", "client_secret": "b"}, 400, "must be an https URL"),
        ({"issuer": "https://127.0.0.1:1", "client_id": "a", "client_secret": "b"}, 400, "the OpenID Provider cannot be used"),
        ({"issuer": "https://idp.exa\tmple.test", "client_id": "a", "client_secret": "b"}, 400, "not a usable URL"),
        ({"issuer": "https://idp.example.test", "client_id": "a"}, 422, "body.client_secret: Field required"),
        ({"issuer": "https://idp.example.test", "client_id": "", "client_secret": "b"}, 422, "body.client_id"),
    ],
)
def test_configure_oidc_refusals(api, body, status, words):
    assert words in problem(api.put("/org/sso/oidc", json=body), status)
    assert api.get("/org/sso").json()["oidc"]["configured"] is False


def test_configure_saml_from_metadata(api, scim_org, settings, engine):
    metadata = idp_metadata()
    r = api.put("/org/sso/saml", json={"metadata_xml": metadata})
    assert r.status_code == 200, r.text
    base = f"{settings.public_url}/sso/{scim_org.slug}/saml"
    assert r.json() == {"login_url": f"{base}/login", "acs_url": f"{base}/acs", "entity_id": f"{base}/metadata",
                        "metadata_url": f"{base}/metadata"}
    shown = api.get("/org/sso").json()["saml"]
    assert shown["configured"] is True and shown["idp_entity_id"] == "https://idp.example.test/saml"
    assert shown["idp_sso_url"] == "https://idp.example.test/sso" and shown["acs_url"] == f"{base}/acs"
    sp = httpx.get(shown["metadata_url"], timeout=10)
    assert sp.status_code == 200 and f"{base}/acs" in sp.text
    assert len(events(engine, scim_org.id, "org.sso.configured")) == 1
    assert api.put("/org/sso/saml", json={"metadata_xml": metadata}).status_code == 200  # the same again: no event
    assert len(events(engine, scim_org.id, "org.sso.configured")) == 1


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({}, 422, "give exactly one of metadata_xml and metadata_url"),
        ({"metadata_xml": "<x/>", "metadata_url": "https://idp.example.test/m"}, 422, "give exactly one"),
        ({"metadata_xml": "<not-metadata"}, 400, "not valid SAML metadata"),
        ({"metadata_url": "http://idp.example.test/metadata"}, 400, "must be https"),
        ({"metadata_url": "ftp://idp.example.test/metadata"}, 400, "must be https"),
        ({"metadata_url": "https://idp.exa\tmple.test/metadata"}, 400, "not a usable URL"),
        ({"metadata_url": "https://idp..example.test/metadata"}, 400, "idna"),
    ],
)
def test_configure_saml_refusals(api, body, status, words):
    assert words in problem(api.put("/org/sso/saml", json=body), status)
    assert api.get("/org/sso").json()["saml"]["configured"] is False


# -- limits and stray requests ---------------------------------------------------------------


def test_bodies_over_64_kib_are_413(api, engine, scim_org):
    big = {"metadata_xml": "<x>" + "a" * 70_000 + "</x>"}
    assert "exceeds 65536 bytes" in problem(api.put("/org/sso/saml", json=big), 413)

    def chunks():  # no Content-Length: counted as it streams
        yield b'{"email": "'
        for _ in range(20):
            yield b"a" * 4096
        yield b'@example.test"}'

    r = api.post("/org/members", content=chunks(), headers={"Content-Type": "application/json"})
    problem(r, 413)
    assert events(engine, scim_org.id, "member.manually_added") == []
    # just under the limit is read as usual
    assert api.put("/org/sso/saml", json={"metadata_xml": "<x>" + "a" * 60_000 + "</x>"}).status_code == 400


def test_unknown_routes_and_methods_use_the_error_shape(api):
    problem(api.get("/org/nothing"), 404)
    problem(api.delete("/org"), 405)


def test_seat_limit_and_policy_are_settings_with_their_bounds(api, engine, scim_org):
    r = api.patch("/org/settings", json={"seat_limit": 25, "seat_policy": "allow"})
    assert r.status_code == 200, r.text
    assert (r.json()["seat_limit"], r.json()["seat_policy"]) == (25, "allow")
    (event,) = events(engine, scim_org.id, "org.settings.changed")
    assert (event["data"]["before"]["seat_limit"], event["data"]["after"]["seat_limit"]) == (None, 25)
    for bad in ({"seat_limit": -1}, {"seat_limit": "ten"}, {"seat_limit": 10.5}, {"seat_policy": "block"}, {"seat_limit": True}):
        refused = api.patch("/org/settings", json=bad)
        assert refused.status_code == 422, (bad, refused.text)
    assert api.patch("/org/settings", json={"seat_limit": None}).json()["seat_limit"] is None  # null: no limit
    assert api.patch("/org/settings", json={"remove_sso_members": True}).status_code == 422
    assert len(events(engine, scim_org.id, "org.settings.changed")) == 2


def test_an_admin_removes_a_manual_member_but_not_a_scim_one(api, engine, scim_org):
    hand = add_member_row(engine, scim_org.id, "hand@example.test", status="active", source="manual")
    pushed = add_member_row(engine, scim_org.id, "scim@example.test", status="active", source="scim")
    r = api.delete(f"/org/members/{hand}")
    assert r.status_code == 202, r.text
    (removal,) = events(engine, scim_org.id, "member.manually_removed")
    assert removal["data"] == {"member_id": hand, "actor": "admin-api:admin"}
    assert removal["partitionkey"] == f"{scim_org.id}:{hand}"
    refused = api.delete(f"/org/members/{pushed}")
    assert refused.status_code == 409 and "SCIM" in refused.json()["detail"]
    assert api.delete("/org/members/00000000-0000-4000-8000-000000000000").status_code == 404
    assert api.delete("/org/members/not-an-id").status_code in (404, 422)
    assert len(events(engine, scim_org.id, "member.manually_removed")) == 1
