"""OpenID Connect sign-in against a real OpenID Provider (oidc-provider on Node.js, on loopback).

The happy paths drive the whole browser flow with plain HTTP: our /login, the OP's authorization
endpoint, its login form, its consent, our callback, then the redirect to the app. Forged ID
tokens come from a token endpoint the test controls; every refusal must leave no event.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
import uuid
from typing import Any
from urllib.parse import urlencode, urljoin

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Engine, text

from core.settings import Settings, to_env
from domain import orgs
from ingest.sso import oidc
from tests.conftest import ScimOrg
from tests.sso.conftest_oidc import (
    Browser,
    ForgingProvider,
    OidcOrg,
    OpenIdProvider,
    outbox_events,
    query_of,
    redirect_uri,
)

pytestmark = pytest.mark.sso

SUCCEEDED = "io.provisioner.login.succeeded"
REFUSED = "io.provisioner.login.refused"


def sign_in(browser: Browser, settings: Settings, slug: str, email: str, *, tamper=None, form_extra=None):
    """Run the browser flow; returns our callback's response."""
    started = browser.request("GET", f"{settings.public_url}/sso/{slug}/oidc/login")
    assert started.status_code == 302, started.text
    authorize = started.headers["location"]
    params = query_of(authorize)
    assert params["response_type"] == "code" and params["code_challenge_method"] == "S256"
    assert set(params["scope"].split()) == {"openid", "email", "profile"}
    assert params["redirect_uri"] == redirect_uri(settings, slug)
    callback = redirect_uri(settings, slug)
    page = browser.follow(browser.request("GET", tamper(authorize) if tamper else authorize), stop_at=callback)
    assert page.status_code == 200 and "<form" in page.text, page.text
    action = urljoin(str(page.url), re.search(r'action="([^"]+)"', page.text).group(1))
    submitted = browser.request("POST", action, data={"email": email, **(form_extra or {})})
    to_callback = browser.follow(submitted, stop_at=callback)
    assert to_callback.is_redirect, to_callback.text
    return browser.request("GET", urljoin(str(to_callback.url), to_callback.headers["location"]))


def types(engine: Engine, org_id: str) -> list[str]:
    return [e["type"] for e in outbox_events(engine, org_id)]


# --- the real OpenID Provider ---------------------------------------------------------------


def test_new_person_is_provisioned_just_in_time(settings, engine, oidc_org: OidcOrg, browser):
    orgs.update_settings(engine, oidc_org.slug, sso_provisioning=True)
    response = sign_in(browser, settings, oidc_org.slug, "Newcomer@Example.com")
    assert response.status_code == 302
    assert response.headers["location"] == settings.app_url.format(org=oidc_org.slug)
    [event] = outbox_events(engine, oidc_org.scim.id)
    assert event["type"] == SUCCEEDED
    data = event["data"]
    assert data["jit"] is True and data["sso"] is True and data["method"] == "oidc"
    assert data["email"] == "Newcomer@Example.com" and data["idp"] == oidc_org.issuer and data["subject"]


def test_non_member_is_refused_while_sso_provisioning_is_off(settings, engine, oidc_org: OidcOrg, browser):
    response = sign_in(browser, settings, oidc_org.slug, "stranger@example.com")
    assert response.status_code == 403
    assert "SSO provisioning is off" in response.text
    assert types(engine, oidc_org.scim.id) == [REFUSED]


def test_scim_provisioned_user_is_accepted_with_the_toggle_off(settings, engine, oidc_org: OidcOrg, browser):
    created = oidc_org.scim.client.post(
        "/Users",
        json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "member@example.com", "active": True},
    )
    assert created.status_code == 201, created.text
    before = len(outbox_events(engine, oidc_org.scim.id))
    response = sign_in(browser, settings, oidc_org.slug, "Member@Example.com")
    assert response.status_code == 302
    [event] = outbox_events(engine, oidc_org.scim.id)[before:]
    assert event["type"] == SUCCEEDED and event["data"]["jit"] is False


def test_callback_replayed_is_refused_and_writes_nothing_more(settings, engine, oidc_org: OidcOrg, browser):
    orgs.update_settings(engine, oidc_org.slug, sso_provisioning=True)
    response = sign_in(browser, settings, oidc_org.slug, "once@example.com")
    assert response.status_code == 302
    replay = browser.request("GET", str(response.request.url))
    assert replay.status_code == 400 and "already used" in replay.text
    assert types(engine, oidc_org.scim.id) == [SUCCEEDED]


def test_nonce_changed_on_the_way_is_refused(settings, engine, oidc_org: OidcOrg, browser):
    orgs.update_settings(engine, oidc_org.slug, sso_provisioning=True)

    def other_nonce(url: str) -> str:
        base, _, _ = url.partition("?")
        return base + "?" + urlencode({**query_of(url), "nonce": "not-the-one-we-sent"})

    response = sign_in(browser, settings, oidc_org.slug, "nonce@example.com", tamper=other_nonce)
    assert response.status_code == 401 and "nonce" in response.text
    assert outbox_events(engine, oidc_org.scim.id) == []


def test_provider_error_response_is_refused(settings, engine, oidc_org: OidcOrg, browser):
    started = browser.request("GET", f"{settings.public_url}/sso/{oidc_org.slug}/oidc/login")
    callback = redirect_uri(settings, oidc_org.slug)
    answer = browser.follow(browser.request("GET", started.headers["location"] + "&prompt=none"), stop_at=callback)
    assert query_of(answer.headers["location"])["error"] == "login_required"
    response = browser.request("GET", answer.headers["location"])
    assert response.status_code == 401 and "login_required" in response.text
    assert outbox_events(engine, oidc_org.scim.id) == []


def test_unverified_email_is_refused(settings, engine, oidc_org: OidcOrg, browser):
    orgs.update_settings(engine, oidc_org.slug, sso_provisioning=True)
    response = sign_in(browser, settings, oidc_org.slug, "unverified@example.com", form_extra={"email_verified": "false"})
    assert response.status_code == 401 and "not verified" in response.text
    assert outbox_events(engine, oidc_org.scim.id) == []


def test_wrong_client_secret_is_refused(settings, engine, oidc_org: OidcOrg, browser):
    orgs.update_settings(engine, oidc_org.slug, sso_provisioning=True)
    oidc.configure(engine, settings, oidc_org.slug, issuer=oidc_org.issuer, client_id=oidc_org.client_id, client_secret="wrong")
    response = sign_in(browser, settings, oidc_org.slug, "secret@example.com")
    assert response.status_code == 401 and "invalid_client" in response.text
    assert outbox_events(engine, oidc_org.scim.id) == []


def test_unknown_expired_and_foreign_states_are_refused(settings, engine, oidc_org: OidcOrg, other_org: ScimOrg, browser):
    base = f"{settings.public_url}/sso/{oidc_org.slug}/oidc"
    unknown = browser.request("GET", f"{base}/callback", params={"state": "no-such-state", "code": "x"})
    assert unknown.status_code == 400
    assert browser.request("GET", f"{base}/callback").status_code == 400

    # a state started for this org, presented to another org configured on the same OP
    oidc.configure(engine, settings, other_org.slug, issuer=oidc_org.issuer, client_id=oidc_org.client_id,
                   client_secret=oidc_org.client_secret)
    state = query_of(browser.request("GET", f"{base}/login").headers["location"])["state"]
    foreign = browser.request(
        "GET", f"{settings.public_url}/sso/{other_org.slug}/oidc/callback", params={"state": state, "code": "x"}
    )
    assert foreign.status_code == 400

    # an expired state
    state = query_of(browser.request("GET", f"{base}/login").headers["location"])["state"]
    with engine.begin() as conn:
        conn.execute(text("UPDATE sso_states SET expires_at = now() - interval '1 second' WHERE state = :s"), {"s": state})
    expired = browser.request("GET", f"{base}/callback", params={"state": state, "code": "x"})
    assert expired.status_code == 400 and "expired" in expired.text
    assert outbox_events(engine, oidc_org.scim.id) == [] and outbox_events(engine, other_org.id) == []


def test_state_from_another_browser_is_refused(settings, engine, oidc_org: OidcOrg, browser):
    state = query_of(browser.request("GET", f"{settings.public_url}/sso/{oidc_org.slug}/oidc/login").headers["location"])
    other = Browser()
    try:
        response = other.request(
            "GET", redirect_uri(settings, oidc_org.slug), params={"state": state["state"], "code": "x"}
        )
    finally:
        other.close()
    assert response.status_code == 400 and "another browser" in response.text


def test_unknown_and_unconfigured_orgs_are_404(settings, scim_org: ScimOrg, browser, server):
    for slug in ("no-such-org-" + uuid.uuid4().hex[:8], scim_org.slug, "%00", "x" * 300):
        for path in ("login", "callback?state=x&code=y"):
            assert browser.request("GET", f"{settings.public_url}/sso/{slug}/oidc/{path}").status_code == 404


def test_odd_callback_parameters_are_400_not_500(settings, oidc_org: OidcOrg, browser):
    for query in ("state=%00&code=%00", "state=" + "a" * 5000, "state=a%0A&code=x", "error=access_denied&state=zz"):
        response = browser.request("GET", f"{redirect_uri(settings, oidc_org.slug)}?{query}")
        assert response.status_code == 400, (query, response.text)


def test_configure_checks_the_issuer(settings, engine, scim_org: ScimOrg, openid_provider: OpenIdProvider, server):
    with pytest.raises(ValueError, match="https"):
        oidc.configure(engine, settings, scim_org.slug, issuer="http://idp.example.com", client_id="a", client_secret="b")
    with pytest.raises(ValueError, match="exactly"):
        oidc.configure(engine, settings, scim_org.slug, issuer=openid_provider.issuer + "/", client_id="a", client_secret="b")
    with pytest.raises(ValueError, match="no org"):
        oidc.configure(engine, settings, "no-such-org", issuer=openid_provider.issuer, client_id="a", client_secret="b")


def test_cli_configure_prints_the_redirect_uri(settings, scim_org: ScimOrg, openid_provider: OpenIdProvider):
    args = ["sso", "configure", scim_org.slug, "--oidc-issuer", openid_provider.issuer,
            "--oidc-client-id", "cli-client", "--oidc-client-secret", "cli-secret", "--json"]
    env = {**os.environ, **to_env(settings)}
    done = subprocess.run([sys.executable, "-m", "cli", *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)["oidc"]
    assert out["redirect_uri"] == redirect_uri(settings, scim_org.slug)
    assert out["login_url"] == f"{settings.public_url}/sso/{scim_org.slug}/oidc/login"
    bad = subprocess.run([sys.executable, "-m", "cli", *args[:4], "http://idp.example.com", *args[5:]],
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "https" in bad.stderr


# --- forged ID tokens -----------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwk(private_key: Any, kid: str, alg: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(private_key.public_key()))
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ROGUE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def forged(settings, engine, scim_org: ScimOrg, forging_provider: ForgingProvider):
    """An org configured on the forging provider; returns a function that runs one sign-in."""
    fp = forging_provider
    fp.keys = [_jwk(RSA_KEY, "rsa-1", "RS256"), _jwk(EC_KEY, "ec-1", "ES256")]
    oidc.configure(engine, settings, scim_org.slug, issuer=fp.url, client_id="forged-client", client_secret="s3cret")
    orgs.update_settings(engine, scim_org.slug, sso_provisioning=True)
    browser = Browser()

    def run(build) -> Any:
        started = browser.request("GET", f"{settings.public_url}/sso/{scim_org.slug}/oidc/login")
        assert started.status_code == 302 and started.headers["location"].startswith(f"{fp.url}/authorize?")
        params = query_of(started.headers["location"])
        now = int(time.time())
        claims = {"iss": fp.url, "aud": "forged-client", "sub": "forged-1", "email": "forged@example.com",
                  "email_verified": True, "nonce": params["nonce"], "iat": now, "exp": now + 300}
        fp.id_token = build(claims)
        return browser.request("GET", params["redirect_uri"], params={"state": params["state"], "code": "c0de"})

    yield run, fp, scim_org
    browser.close()


def sign(claims: dict[str, Any], key: Any = RSA_KEY, alg: str = "RS256", kid: str | None = "rsa-1") -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid} if kid else None)


def unsigned(claims: dict[str, Any], alg: str, secret: bytes = b"") -> str:
    head = _b64(json.dumps({"alg": alg, "typ": "JWT", "kid": "rsa-1"}).encode()) + "." + _b64(json.dumps(claims).encode())
    mac = hmac.new(secret, head.encode(), hashlib.sha256).digest() if alg == "HS256" else b""
    return head + "." + _b64(mac)


@pytest.mark.parametrize("alg,key,kid", [("RS256", RSA_KEY, "rsa-1"), ("ES256", EC_KEY, "ec-1"), ("PS256", RSA_KEY, "rsa-ps")])
def test_a_properly_signed_token_is_accepted(forged, engine, settings, alg, key, kid):
    run, fp, org = forged
    if alg == "PS256":
        fp.keys.append(_jwk(RSA_KEY, "rsa-ps", "PS256"))
    response = run(lambda c: sign(c, key, alg, kid))
    assert response.status_code == 302 and response.headers["location"] == settings.app_url.format(org=org.slug)
    assert types(engine, org.id) == [SUCCEEDED]
    [request] = fp.token_requests  # client_secret_post, with the PKCE verifier
    assert request["client_id"] == "forged-client" and request["client_secret"] == "s3cret"
    assert request["grant_type"] == "authorization_code" and len(request["code_verifier"]) >= 43


PUBLIC_PEM = RSA_KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)

FORGERIES = {
    "alg none": lambda c: unsigned(c, "none"),
    "HS256 keyed with the public key": lambda c: unsigned(c, "HS256", PUBLIC_PEM),
    "wrong issuer": lambda c: sign({**c, "iss": "http://127.0.0.1:1"}),
    "wrong audience": lambda c: sign({**c, "aud": "someone-else"}),
    "several audiences, no azp": lambda c: sign({**c, "aud": ["forged-client", "someone-else"]}),
    "expired": lambda c: sign({**c, "iat": c["iat"] - 900, "exp": c["iat"] - 61}),
    "issued in the future": lambda c: sign({**c, "iat": c["iat"] + 600, "exp": c["iat"] + 900}),
    "bad signature": lambda c: sign(c, ROGUE_KEY, kid="rsa-1"),
    "unknown key": lambda c: sign(c, ROGUE_KEY, kid="rogue"),
    "nonce mismatch": lambda c: sign({**c, "nonce": "another"}),
    "no nonce": lambda c: sign({k: v for k, v in c.items() if k != "nonce"}),
    "email not verified": lambda c: sign({**c, "email_verified": False}),
    "no email": lambda c: sign({k: v for k, v in c.items() if k != "email"}),
    "control characters in the email": lambda c: sign({**c, "email": "a\x00b@example.com"}),
    "garbage": lambda c: "not.a.jwt",
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_forged_tokens_are_refused_and_write_nothing(forged, engine, forgery):
    run, fp, org = forged
    response = run(FORGERIES[forgery])
    assert response.status_code == 401, response.text
    assert "<h1>Sign-in failed</h1>" in response.text
    assert outbox_events(engine, org.id) == []


def test_rotated_key_is_fetched_once(forged, engine):
    run, fp, org = forged
    assert run(lambda c: sign(c)).status_code == 302
    hits = fp.jwks_hits
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fp.keys = [_jwk(new_key, "rsa-2", "RS256")]
    assert run(lambda c: sign(c, new_key, kid="rsa-2")).status_code == 302
    assert fp.jwks_hits == hits + 1  # the cached JWKS did not know rsa-2: refetched once
    assert run(lambda c: sign(c, ROGUE_KEY, kid="rogue")).status_code == 401
    assert fp.jwks_hits == hits + 2  # and once, not more, for a key nobody publishes
    assert types(engine, org.id) == [SUCCEEDED, SUCCEEDED]
