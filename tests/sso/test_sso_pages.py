"""The SSO pages tell nobody which orgs exist, and nobody but the browser that started a sign-in can end it."""

import re
import uuid
from urllib.parse import urljoin

import httpx
import pytest

from domain import orgs
from tests.conftest import ScimOrg
from tests.sso.conftest_oidc import Browser, OidcOrg, outbox_events, query_of, redirect_uri

pytestmark = pytest.mark.sso


def _answers(base: str, slug: str) -> list[tuple[int, str]]:
    with httpx.Client(timeout=15, follow_redirects=False) as client:
        replies = [
            client.get(f"{base}/sso/{slug}/oidc/login"),
            client.get(f"{base}/sso/{slug}/oidc/callback", params={"state": "s", "code": "c"}),
            client.get(f"{base}/sso/{slug}/saml/login"),
            client.post(f"{base}/sso/{slug}/saml/acs", data={"SAMLResponse": "eA=="}),
        ]
    return [(r.status_code, r.text) for r in replies]


def test_an_unknown_org_and_an_org_without_sso_get_the_same_pages(settings, scim_org: ScimOrg):
    unknown = "t-" + uuid.uuid4().hex[:12]
    assert _answers(settings.public_url, unknown) == _answers(settings.public_url, scim_org.slug)
    assert {status for status, _ in _answers(settings.public_url, unknown)} == {404}


def test_sp_metadata_does_not_tell_orgs_apart(settings, scim_org: ScimOrg):
    unknown = "t-" + uuid.uuid4().hex[:12]
    known = httpx.get(f"{settings.public_url}/sso/{scim_org.slug}/saml/metadata", timeout=15)
    made_up = httpx.get(f"{settings.public_url}/sso/{unknown}/saml/metadata", timeout=15)
    assert known.status_code == made_up.status_code == 200
    assert f"/sso/{unknown}/saml/acs" in made_up.text and f"/sso/{scim_org.slug}/saml/acs" in known.text


def test_another_browser_cannot_cancel_a_sign_in_in_flight(settings, engine, oidc_org: OidcOrg, browser: Browser):
    orgs.update_settings(engine, oidc_org.slug, sso_provisioning=True)
    started = browser.request("GET", f"{settings.public_url}/sso/{oidc_org.slug}/oidc/login")
    authorize = started.headers["location"]
    state = query_of(authorize)["state"]

    for cookie in (None, "x" * 43):  # no cookie, and another browser's cookie
        other = httpx.Client(timeout=15, cookies={"provisioner_oidc": cookie} if cookie else None)
        with other:
            stolen = other.get(redirect_uri(settings, oidc_org.slug), params={"state": state, "code": "x"})
        assert stolen.status_code == 400 and "another browser" in stolen.text

    callback = redirect_uri(settings, oidc_org.slug)  # the first browser goes on and signs in with the same state
    page = browser.follow(browser.request("GET", authorize), stop_at=callback)
    action = urljoin(str(page.url), re.search(r'action="([^"]+)"', page.text).group(1))
    to_callback = browser.follow(browser.request("POST", action, data={"email": "still.mine@example.com"}), stop_at=callback)
    assert query_of(to_callback.headers["location"])["state"] == state
    done = browser.request("GET", urljoin(str(to_callback.url), to_callback.headers["location"]))
    assert done.status_code == 302 and done.headers["location"] == settings.app_url.format(org=oidc_org.slug), done.text
    assert [e["type"] for e in outbox_events(engine, oidc_org.scim.id)] == ["io.provisioner.login.succeeded"]
