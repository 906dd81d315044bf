"""Fixtures for the OpenID Connect tests (imported by test_oidc.py).

`openid_provider` is real IdP software: the `oidc-provider` npm package (tests/idp/oidc), run on
this machine's Node.js on loopback for the whole session. Each test registers its own client
with it (dynamic client registration), as an org's IdP admin would.

`forging_provider` is for the refusals a real OP will not produce (alg none, a foreign key,
a wrong issuer...): a small discovery/JWKS/token server in the test process whose token endpoint
returns whatever ID token the test built.
"""

import json
import os
import secrets
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from sqlalchemy import Engine, text

from core.settings import Settings
from ingest.sso import oidc
from tests.conftest import ScimOrg, _free_port, wait_for

OP_DIR = Path(__file__).resolve().parent.parent / "idp" / "oidc"


@dataclass
class OpenIdProvider:
    issuer: str
    registration_token: str

    def register(self, redirect_uri: str) -> tuple[str, str]:
        """A new confidential client for redirect_uri; returns (client_id, client_secret)."""
        response = httpx.post(
            f"{self.issuer}/reg",
            json={"redirect_uris": [redirect_uri], "grant_types": ["authorization_code"], "response_types": ["code"]},
            headers={"Authorization": f"Bearer {self.registration_token}"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return response.json()["client_id"], response.json()["client_secret"]


def _discovery_ok(issuer: str) -> bool:
    try:
        return httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=1).json().get("issuer") == issuer
    except (httpx.HTTPError, ValueError):
        return False


@pytest.fixture(scope="session")
def openid_provider() -> Iterator[OpenIdProvider]:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("the OIDC tests need Node.js (>= 20.19) and npm to run the test OpenID Provider")
    subprocess.run(["bash", str(OP_DIR / "setup.sh")], check=True, timeout=300)
    port = _free_port()
    op = OpenIdProvider(issuer=f"http://127.0.0.1:{port}", registration_token=secrets.token_urlsafe(24))
    env = {**os.environ, "OP_REGISTRATION_TOKEN": op.registration_token, "NODE_NO_WARNINGS": "1"}
    proc = subprocess.Popen(["node", "provider.js", str(port)], cwd=OP_DIR, env=env, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: proc.poll() is not None or _discovery_ok(op.issuer), timeout=30, message="the OpenID Provider")
        assert proc.poll() is None, "the OpenID Provider exited at start"
        yield op
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class OidcOrg:
    scim: ScimOrg
    issuer: str
    client_id: str
    client_secret: str

    @property
    def slug(self) -> str:
        return self.scim.slug


def redirect_uri(settings: Settings, slug: str) -> str:
    return f"{settings.public_url}/sso/{slug}/oidc/callback"


@pytest.fixture
def oidc_org(settings: Settings, engine: Engine, scim_org: ScimOrg, openid_provider: OpenIdProvider) -> OidcOrg:
    """A fresh org whose OIDC connection points at the real OpenID Provider."""
    client_id, secret = openid_provider.register(redirect_uri(settings, scim_org.slug))
    oidc.configure(engine, settings, scim_org.slug, issuer=openid_provider.issuer, client_id=client_id, client_secret=secret)
    return OidcOrg(scim_org, openid_provider.issuer, client_id, secret)


class Browser:
    """A browser without JavaScript: one cookie jar per host:port, redirects followed by hand."""

    def __init__(self) -> None:
        self.clients: dict[str, httpx.Client] = {}

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        netloc = urlsplit(url).netloc
        if netloc not in self.clients:
            self.clients[netloc] = httpx.Client(follow_redirects=False, timeout=15)
        return self.clients[netloc].request(method, url, **kwargs)

    def follow(self, response: httpx.Response, stop_at: str) -> httpx.Response:
        """Follow redirects until a page, or a redirect to a URL starting with stop_at."""
        while response.is_redirect:
            target = urljoin(str(response.url), response.headers["location"])
            if target.startswith(stop_at):
                return response
            response = self.request("GET", target)
        return response

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    b = Browser()
    yield b
    b.close()


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@dataclass
class ForgingProvider:
    """Discovery, JWKS and a token endpoint that hands out `id_token`, on loopback."""

    url: str
    claimed_issuer: str
    keys: list[dict[str, Any]] = field(default_factory=list)
    id_token: str = ""
    jwks_hits: int = 0
    token_requests: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def forging_provider() -> Iterator[ForgingProvider]:
    port = _free_port()
    fp = ForgingProvider(url=f"http://127.0.0.1:{port}", claimed_issuer=f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                self._json(200, {
                    "issuer": fp.claimed_issuer,
                    "authorization_endpoint": f"{fp.url}/authorize",
                    "token_endpoint": f"{fp.url}/token",
                    "jwks_uri": f"{fp.url}/jwks",
                    "token_endpoint_auth_methods_supported": ["client_secret_post"],
                })
            elif self.path == "/jwks":
                fp.jwks_hits += 1
                self._json(200, {"keys": fp.keys})
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            fp.token_requests.append(form)
            self._json(200, {"access_token": uuid.uuid4().hex, "token_type": "Bearer", "id_token": fp.id_token})

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield fp
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def outbox_events(engine: Engine, org_id: str) -> list[dict[str, Any]]:
    """The org's staged events after its SSO setup (configuring the IdP is audited: org.sso.configured)."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT payload FROM outbox WHERE payload->>'orgid' = :o ORDER BY id"), {"o": org_id})
        return [row.payload for row in rows if row.payload["type"] != "io.provisioner.org.sso.configured"]

