"""Single sign-on on the console, in Chromium: the values to paste into the IdP, and connecting
OpenID Connect against the real test OpenID Provider (and a refusal that says why)."""


import pytest
from playwright.sync_api import expect

from tests.console.conftest import login
from tests.sso.conftest_oidc import openid_provider

pytestmark = pytest.mark.console

__all__ = ["openid_provider"]  # the session fixture, registered for this module


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
