"""One org's stalled IdP holds only that org's few SSO slots: other orgs' SCIM and sign-ins go on.

Org A's token endpoint (a loopback server) holds every request until the test lets go. 45 browsers
finish their sign-in at once against the real ingest: at most `idp_calls_per_org` reach the token
endpoint, the others get a 503 page with Retry-After, and while A's calls are held, org B's SCIM
request and org B's sign-in page are answered.
"""

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from ingest.sso import oidc
from tests.conftest import ScimOrg, wait_for
from tests.sso.conftest_oidc import query_of

pytestmark = pytest.mark.integration

CALLBACKS = 45


class StalledProvider:
    """Two OpenID Providers on one loopback server: `/fast` answers, `/slow`'s token endpoint waits for `release`."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.in_flight = self.most_in_flight = self.token_requests = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                name = self.path.split("/")[1]
                base = f"{provider.url}/{name}"
                if self.path.endswith("/.well-known/openid-configuration"):
                    self._json(200, {"issuer": base, "authorization_endpoint": f"{base}/authorize",
                                     "token_endpoint": f"{base}/token", "jwks_uri": f"{base}/jwks"})
                else:
                    self._json(200, {"keys": []})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with provider.lock:
                    provider.token_requests += 1
                    provider.in_flight += 1
                    provider.most_in_flight = max(provider.most_in_flight, provider.in_flight)
                try:
                    provider.release.wait(timeout=60)
                    self._json(400, {"error": "invalid_grant"})
                finally:
                    with provider.lock:
                        provider.in_flight -= 1

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider() -> Iterator[StalledProvider]:
    p = StalledProvider()
    yield p
    p.close()


def test_a_stalled_idp_holds_only_its_own_orgs_slots(settings, engine, scim_org: ScimOrg, other_org: ScimOrg, provider):
    a, b = scim_org, other_org
    oidc.configure(engine, settings, a.slug, issuer=f"{provider.url}/slow", client_id="a", client_secret="s")
    oidc.configure(engine, settings, b.slug, issuer=f"{provider.url}/fast", client_id="b", client_secret="s")
    sso = f"{settings.public_url}/sso"
    browsers = [httpx.Client(timeout=60, follow_redirects=False) for _ in range(CALLBACKS)]
    try:
        states = []
        for browser in browsers:  # each sign-in started in its own browser: its state is bound to its cookie
            started = browser.get(f"{sso}/{a.slug}/oidc/login")
            assert started.status_code == 302, started.text
            states.append(query_of(started.headers["location"])["state"])

        def finish(i: int) -> httpx.Response:
            return browsers[i].get(f"{sso}/{a.slug}/oidc/callback", params={"state": states[i], "code": "c"})

        cap = settings.idp_calls_per_org
        with ThreadPoolExecutor(CALLBACKS) as pool:
            futures = [pool.submit(finish, i) for i in range(CALLBACKS)]
            wait_for(lambda: provider.in_flight == cap, timeout=30, message="org A's slots to fill")

            scim = b.client.get("/Users", params={"count": 1})
            b_login = httpx.get(f"{sso}/{b.slug}/oidc/login", timeout=30)
            held = provider.in_flight  # A's calls were still waiting on their IdP all along
            assert scim.status_code == 200, scim.text
            assert b_login.status_code == 302 and b_login.headers["location"].startswith(f"{provider.url}/fast/authorize")
            assert held == cap

            wait_for(lambda: sum(f.done() for f in futures) >= CALLBACKS - cap, timeout=60, message="A's queue to give up")
            provider.release.set()
            replies = [f.result() for f in futures]
    finally:
        for browser in browsers:
            browser.close()
    busy = [r for r in replies if r.status_code == 503]
    assert provider.most_in_flight <= cap
    assert busy and all(r.headers.get("retry-after") and "try again" in r.text for r in busy)
    assert {r.status_code for r in replies} <= {401, 502, 503}, {r.status_code for r in replies}
    assert provider.token_requests == CALLBACKS - len(busy)
