"""Single sign-on on the console, in Chromium: the values to paste into the IdP, connecting OpenID
Connect and SAML against the real test IdPs (and a refusal that says why), and test sign-ins that
report what the IdP sent and the verdict without signing anyone in."""

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import text

from core.tables import sso_test_results
from domain import orgs
from tests.console.conftest import login
from tests.sso.conftest_oidc import openid_provider
from tests.sso.conftest_saml import idp

pytestmark = pytest.mark.console

__all__ = ["idp", "openid_provider"]  # the session fixtures, registered for this module


def nothing_signed_in(engine, org_id: str) -> None:
    with engine.connect() as conn:
        logins = conn.execute(
            text("SELECT count(*) FROM outbox WHERE payload->>'orgid' = :o AND payload->>'type' LIKE 'io.provisioner.login.%'"),
            {"o": org_id},
        ).scalar_one()
        members = conn.execute(text("SELECT count(*) FROM members WHERE org_id = :o"), {"o": org_id}).scalar_one()
    assert (logins, members) == (0, 0)


def test_the_values_to_paste_and_connecting_an_openid_provider(page, org, settings, openid_provider):
    login(page, org.admin_token)
    card = page.get_by_role("region", name="Single sign-on")
    redirect = f"{settings.public_url}/sso/{org.slug}/oidc/callback"
    oidc_values = card.get_by_role("table", name="OpenID Connect: values to paste")
    expect(oidc_values.locator("input").first).to_have_value(redirect)
    saml_values = card.get_by_role("table", name="SAML 2.0: values to paste")
    expect(saml_values.locator("input").first).to_have_value(f"{settings.public_url}/sso/{org.slug}/saml/acs")
    expect(card.locator('[data-sso="oidc"]')).to_contain_text("Not connected")

    # refused: the issuer is not an OpenID Provider; the reason is shown, nothing is stored
    card.get_by_label("Issuer").fill("https://")
    card.get_by_label("Client ID").fill("x")
    card.get_by_label("Client secret").fill("y")
    card.get_by_role("button", name="Connect OpenID Connect").click()
    expect(page.get_by_role("alert")).to_contain_text("OpenID Connect was not connected")
    expect(card.locator('[data-sso="oidc"]')).to_contain_text("Not connected")

    client_id, secret = openid_provider.register(redirect)
    card.get_by_label("Issuer").fill(openid_provider.issuer)
    card.get_by_label("Client ID").fill(client_id)
    card.get_by_label("Client secret").fill(secret)
    card.get_by_role("button", name="Connect OpenID Connect").click()
    expect(page.locator(".notice.ok")).to_contain_text("OpenID Connect is connected")
    expect(card.locator('[data-sso="oidc"]')).to_contain_text("Connected")
    expect(card.locator('[data-sso="oidc"]')).to_contain_text(openid_provider.issuer)
    assert secret not in page.content()


def test_saml_needs_exactly_one_of_url_and_xml(page, org):
    login(page, org.admin_token)
    card = page.get_by_role("region", name="Single sign-on")
    card.get_by_role("button", name="Connect SAML").click()
    expect(page.get_by_role("alert")).to_contain_text("either the IdP's metadata URL or its metadata XML")
    card.get_by_label("IdP metadata URL").fill("http://idp.example.test/metadata")
    card.get_by_role("button", name="Connect SAML").click()
    expect(page.get_by_role("alert")).to_contain_text("SAML was not connected")
    expect(card.locator('[data-sso="saml"]')).to_contain_text("Not connected")


def test_an_openid_connect_test_sign_in_reports_what_the_provider_sent(page, org, settings, engine, openid_provider):
    orgs.update_settings(engine, org.slug, sso_provisioning=True)
    login(page, org.admin_token)
    card = page.get_by_role("region", name="Single sign-on")
    client_id, secret = openid_provider.register(f"{settings.public_url}/sso/{org.slug}/oidc/callback")
    card.get_by_label("Issuer").fill(openid_provider.issuer)
    card.get_by_label("Client ID").fill(client_id)
    card.get_by_label("Client secret").fill(secret)
    card.get_by_role("button", name="Connect OpenID Connect").click()
    expect(page.locator(".notice.ok")).to_contain_text("OpenID Connect is connected")

    page.get_by_role("button", name="Test OpenID Connect sign-in").click()
    page.locator('input[name="email"]').fill("Trial.Person@example.com")  # the OpenID Provider's own form
    page.locator('input[name="email"]').press("Enter")
    expect(page.get_by_role("heading", name="Test sign-in: OpenID Connect")).to_be_visible()
    expect(page.locator("[data-verdict]")).to_have_attribute("data-verdict", "accepted")
    expect(page.locator("[data-verdict]")).to_contain_text("just in time")
    sent = page.get_by_role("table", name="What the identity provider sent")
    expect(sent).to_contain_text("Trial.Person@example.com")
    expect(sent).to_contain_text(openid_provider.issuer)
    expect(page.get_by_text("Verified: signed by your identity provider")).to_be_visible()
    nothing_signed_in(engine, org.id)



def test_a_saml_test_sign_in_reports_the_assertion(page, org, settings, engine, idp):
    login(page, org.admin_token)
    card = page.get_by_role("region", name="Single sign-on")
    card.get_by_label("IdP metadata URL").fill(f"{idp}/metadata")
    card.get_by_role("button", name="Connect SAML").click()
    expect(page.locator(".notice.ok")).to_contain_text("SAML is connected")
    sp_metadata = httpx.get(f"{settings.public_url}/sso/{org.slug}/saml/metadata", timeout=10)
    assert httpx.post(f"{idp}/sp", content=sp_metadata.content, timeout=10).status_code == 204

    page.get_by_role("button", name="Test SAML 2.0 sign-in").click()
    page.locator('input[name="user"]').fill("saml.trial@example.com")  # the IdP's login form, then its auto-POST
    page.locator('input[name="user"]').press("Enter")
    expect(page.get_by_role("heading", name="Test sign-in: SAML 2.0")).to_be_visible()
    expect(page.locator("[data-verdict]")).to_have_attribute("data-verdict", "refused")
    expect(page.locator("[data-verdict]")).to_contain_text("SSO provisioning is off")
    expect(page.get_by_role("table", name="What the identity provider sent")).to_contain_text("saml.trial@example.com")
    nothing_signed_in(engine, org.id)


def test_a_result_is_not_shown_to_another_org(page, org, named_org, settings, engine):
    with engine.begin() as conn:
        conn.execute(sso_test_results.insert().values(id="t" * 24, org_id=named_org.id, report={"protocol": "oidc"}))
    login(page, org.admin_token)
    response = page.goto(f"{settings.public_url}/console/sso/tests/{'t' * 24}")
    assert response.status == 404
    expect(page.get_by_text("unknown, or older than an hour")).to_be_visible()
