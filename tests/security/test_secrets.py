"""No secret leaves through logs, metrics, events or the audit trail; the database keeps only
hashes of tokens and a sealed OIDC client secret.

An ingest process of its own, logging at DEBUG with its stderr captured, serves SCIM, the admin
API, the internal API and an OIDC sign-in (against a small OpenID Provider on loopback whose
token endpoint records the credentials it receives) with every kind of credential, right and
wrong. Then every place a secret could end up is searched for each secret whole and for its
random body without the prefix: the log lines, /metrics, the outbox, the audit rows, and every
column of every table.
"""

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from sqlalchemy import select, text

from core import sealed
from core.settings import free_port, to_env
from core.tables import admin_tokens, scim_audit, scim_tokens, sso_configs
from core.tables import service_tokens as service_tokens_table
from domain import admin, orgs, service_tokens
from tests.conftest import _die_with_parent, _http_ok, wait_for

pytestmark = pytest.mark.security

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class _Provider(BaseHTTPRequestHandler):
    """Discovery and a token endpoint that keeps what it was sent (and refuses the code)."""

    received: list[dict[str, str]] = []

    def do_GET(self):  # noqa: N802
        base = f"http://127.0.0.1:{self.server.server_port}"
        if self.path != "/.well-known/openid-configuration":
            self.send_error(404)
            return
        self._json(200, {"issuer": base, "authorization_endpoint": f"{base}/auth", "token_endpoint": f"{base}/token",
                         "jwks_uri": f"{base}/jwks", "token_endpoint_auth_methods_supported": ["client_secret_basic"]})

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        self.received.append({"authorization": self.headers.get("Authorization", ""), "body": body})
        self._json(400, {"error": "invalid_grant"})

    def _json(self, status: int, doc: dict) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def provider() -> Iterator[str]:
    _Provider.received = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def logged_ingest(settings, engine, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An ingest process at DEBUG whose log lines go to a file; returns its URL and that file."""
    port = free_port()
    own = settings.model_copy(update={"http_port": port, "public_url": f"http://127.0.0.1:{port}", "log_level": "DEBUG"})
    log_path = tmp_path / "ingest.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "cli", "serve"], env={**os.environ, **to_env(own)},
                                stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        try:
            wait_for(lambda: _http_ok(f"{own.public_url}/readyz"), timeout=30, message="ingest /readyz")
            yield own.public_url, log_path
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _body(secret: str) -> str:
    """What is left of a token without its prefix (`scim_`, `adm_`, `svc_`)."""
    return secret.split("_", 1)[1] if secret.split("_", 1)[0] in ("scim", "adm", "svc") else secret


def _leaks(haystack: str, named: dict[str, str]) -> list[str]:
    return [
        f"{name} ({'whole' if s in haystack else 'body'})" for name, s in named.items() if s in haystack or _body(s) in haystack
    ]


def test_no_secret_in_logs_metrics_events_audit_or_database(settings, engine, logged_ingest, provider):
    url, log_path = logged_ingest
    slug = "sec-" + uuid.uuid4().hex[:10]
    org, scim_token = orgs.create(engine, slug)
    admin_token = admin.create_admin_token(engine, slug, "secrets-test")
    service_token = service_tokens.create(engine, "secrets-test")
    client_secret = "oidc-client-secret-" + secrets.token_urlsafe(24)
    wrong = {name: f"{prefix}_{secrets.token_urlsafe(32)}" for name, prefix in
             (("wrong SCIM token", "scim"), ("wrong admin token", "adm"), ("wrong service token", "svc"))}
    scim = httpx.Client(base_url=f"{url}/scim/{slug}/v2", timeout=15,
                        headers={"Authorization": f"Bearer {scim_token}", "Content-Type": "application/scim+json"})
    api = httpx.Client(base_url=f"{url}/admin/v1", headers={"Authorization": f"Bearer {admin_token}"}, timeout=15)
    email = f"kim.{uuid.uuid4().hex[:6]}@example.com"

    # SCIM, right and wrong
    _use_scim(scim, email, scim_token, [wrong["wrong SCIM token"], admin_token, service_token, f"{scim_token}x"])

    # admin API: rotate (a new SCIM token), connect OIDC, read the audit trail; wrong credentials
    rotated = api.post("/org/scim-token/rotate")
    assert rotated.status_code == 200, rotated.text
    new_scim_token = rotated.json()["scim_token"]
    assert scim.get("/Users", headers={"Authorization": f"Bearer {new_scim_token}"}).status_code == 200
    configured = api.put("/org/sso/oidc", json={"issuer": provider, "client_id": "kim-client", "client_secret": client_secret})
    assert configured.status_code == 200, configured.text
    assert client_secret not in api.get("/org/sso").text
    assert api.get("/org/scim-audit").status_code == 200
    for token in (wrong["wrong admin token"], scim_token, service_token):
        assert api.get("/org", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    extra = {"issuer": provider, "client_id": "x", "client_secret": client_secret, "extra": client_secret}
    assert api.put("/org/sso/oidc", json=extra).status_code == 422

    # internal API, right and wrong
    login = {"org": slug, "email": email, "method": "password"}

    def sign_in(token: str) -> int:
        return httpx.post(f"{url}/internal/v1/logins", json=login, headers={"Authorization": f"Bearer {token}"}).status_code

    assert sign_in(service_token) in (200, 201, 202)
    for token in (wrong["wrong service token"], admin_token, scim_token):
        assert sign_in(token) == 401

    # an OIDC sign-in: the sealed secret must reach the provider, and only the provider
    with httpx.Client(timeout=15) as browser:
        start = browser.get(f"{url}/sso/{slug}/oidc/login")
        assert start.status_code in (302, 303), start.text
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        callback = browser.get(f"{url}/sso/{slug}/oidc/callback", params={"state": state, "code": "kim-code"})
        assert callback.status_code == 401 and "did not accept" in callback.text, callback.text
    (sent,) = _Provider.received
    user, _, password = base64.b64decode(sent["authorization"].removeprefix("Basic ")).decode().partition(":")
    assert (unquote(user), unquote(password)) == ("kim-client", client_secret)

    named = {"SCIM token": scim_token, "rotated SCIM token": new_scim_token, "admin token": admin_token,
             "service token": service_token, "OIDC client secret": client_secret, **wrong}

    # the process's log lines (captured, JSON, DEBUG): they exist, and hold none of it
    # five SCIM requests named the org (four with its first token, one with the rotated one); the
    # wrong tokens, the admin and service tokens on SCIM and the Basic credential named none
    wait_for(lambda: len(scim_audit_rows(engine, org.id)) >= 5, message="the audit rows written")
    log_text = log_path.read_text()
    lines = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    assert sum(1 for line in lines if line.get("message") == "request") >= 20, log_text[-2000:]
    assert _leaks(log_text, named) == []

    # metrics
    metrics_text = httpx.get(f"{url}/metrics", timeout=10).text
    assert "provisioner_http_requests_total" in metrics_text
    assert _leaks(metrics_text, named) == []

    # events (the outbox holds them as the relay will publish them) and the audit rows
    with engine.connect() as conn:
        query = text("SELECT payload::text FROM outbox WHERE payload->>'orgid' = :o")
        events = conn.execute(query, {"o": org.id}).scalars().all()
    assert events and _leaks("\n".join(events), named) == []
    rows = scim_audit_rows(engine, org.id)
    assert len(rows) == 5 and any("access_token=?" == r["query"] for r in rows)
    assert _leaks(json.dumps(rows, default=str), named) == []

    # every column of every table
    assert _database_leaks(engine, named) == []

    # what is stored instead: hashes of the tokens, the client secret sealed
    _assert_stored_protected(settings, engine, org.id, named)


def _assert_stored_protected(settings, engine, org_id: str, named: dict[str, str]) -> None:
    """The tokens are stored as their hashes and the OIDC client secret sealed."""
    with engine.connect() as conn:
        digests = set(conn.execute(select(scim_tokens.c.token_hash).where(scim_tokens.c.org_id == org_id)).scalars())
        assert {bytes(d) for d in digests} == {_sha(named["SCIM token"]), _sha(named["rotated SCIM token"])}
        admin_hash = _sha(named["admin token"])
        assert conn.execute(select(admin_tokens.c.token_hash).where(admin_tokens.c.token_hash == admin_hash)).first()
        service = select(service_tokens_table.c.name).where(service_tokens_table.c.token_hash == _sha(named["service token"]))
        assert conn.execute(service).scalar() == "secrets-test"
        oidc = select(sso_configs.c.config).where(sso_configs.c.org_id == org_id, sso_configs.c.protocol == "oidc")
        config = conn.execute(oidc).scalar()
    assert set(config) == {"issuer", "client_id", "client_secret_sealed"}
    assert sealed.open_sealed(settings, config["client_secret_sealed"]) == named["OIDC client secret"]


def _use_scim(scim: httpx.Client, email: str, scim_token: str, refused: list[str]) -> None:
    """SCIM with the org's token (four requests), then with credentials it must refuse."""
    created = scim.post("/Users", json={"schemas": [USER], "userName": email, "emails": [{"value": email, "type": "work"}]})
    assert created.status_code == 201, created.text
    assert scim.get("/Users", params={"filter": f'userName eq "{email}"'}).status_code == 200
    deactivate = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]}
    assert scim.patch(f"/Users/{created.json()['id']}", json=deactivate).status_code == 204
    assert scim.get("/Users", params={"access_token": scim_token}).status_code == 200  # a token where none belongs
    for token in refused:
        assert scim.get("/Users", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    basic = base64.b64encode(f"u:{scim_token}".encode()).decode()
    assert scim.get("/Users", headers={"Authorization": f"Basic {basic}"}).status_code == 401


def _sha(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def scim_audit_rows(engine, org_id: str) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(scim_audit).where(scim_audit.c.org_id == org_id)).mappings()]


def _database_leaks(engine, named: dict[str, str]) -> list[str]:
    """Each (table, column, secret) where the column, as text or as bytes, holds a secret or its body."""
    needles = {needle: name for name, secret in named.items() for needle in (secret, _body(secret))}
    found = []
    with engine.connect() as conn:
        columns = conn.execute(text(
            "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
            "JOIN information_schema.tables t USING (table_schema, table_name) "
            "WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'"
        )).all()
        assert len({t for t, _, _ in columns}) >= 15, "expected every table of the schema"
        for table, column, data_type in columns:
            match = (f'position(convert_to(n, \'UTF8\') in "{column}") > 0' if data_type == "bytea"
                     else f'strpos("{column}"::text, n) > 0')
            hits = conn.execute(
                text(f'SELECT n FROM unnest(CAST(:needles AS text[])) AS n WHERE EXISTS (SELECT 1 FROM "{table}" WHERE {match})'),
                {"needles": list(needles)},
            ).scalars()
            found += sorted({f"{table}.{column}: {needles[n]}" for n in hits})
    return found


def test_the_database_scan_finds_a_planted_secret(engine):
    """The scan above can fail: a token planted in clear in a text column is found."""
    planted = f"scim_{secrets.token_urlsafe(32)}"
    org, _ = orgs.create(engine, "plant-" + uuid.uuid4().hex[:10], name=f"Org named {planted}")
    assert _database_leaks(engine, {"planted": planted}) == ["orgs.name: planted"]
    with engine.begin() as conn:
        conn.execute(text("UPDATE orgs SET name = 'cleaned' WHERE id = :o"), {"o": org.id})
    assert _database_leaks(engine, {"planted": planted}) == []


def test_sealed_secrets_open_only_with_a_configured_key(settings):
    box = settings.model_copy(update={"secret_key": type(settings.secret_key)("new-key,old-key")})
    old = settings.model_copy(update={"secret_key": type(settings.secret_key)("old-key")})
    stranger = settings.model_copy(update={"secret_key": type(settings.secret_key)("another-key")})
    by_old = sealed.seal(old, "s3cret")
    assert "s3cret" not in by_old
    assert sealed.open_sealed(box, by_old) == "s3cret"  # rotation: the old key still opens
    with pytest.raises(sealed.SealError, match="does not open"):
        sealed.open_sealed(stranger, by_old)
    with pytest.raises(sealed.SealError, match="does not open"):
        sealed.open_sealed(old, sealed.seal(box, "sealed by the new key"))
