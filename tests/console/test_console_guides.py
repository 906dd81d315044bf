"""The IdP setup guides in the console, in Chromium: the Provisioning page shows what to paste into
the IdP the admin picks and links its guide; each guide renders as an escaped console page."""

import re

import pytest
from playwright.sync_api import expect

from tests.console.conftest import login

pytestmark = pytest.mark.console


def test_the_scim_panel_shows_each_idps_fields_and_links_its_guide(page, org, settings):
    base_url = f"{settings.public_url}/scim/{org.slug}/v2"
    login(page, org.admin_token)
    expect(page.get_by_label("Your identity provider")).to_have_value("entra-id")
    paste = page.get_by_role("table", name="Values to paste into Microsoft Entra ID")
    expect(paste.get_by_role("row", name=re.compile("Tenant URL"))).to_be_visible()
    expect(paste.locator("input").first).to_have_value(base_url)
    expect(paste).to_contain_text("Secret Token")

    page.get_by_label("Your identity provider").select_option("okta")  # the script submits on change
    expect(page).to_have_url(re.compile(r"idp=okta"))
    paste = page.get_by_role("table", name="Values to paste into Okta")
    for label in ("SCIM connector base URL", "Unique identifier field for users", "Authentication Mode"):
        expect(paste).to_contain_text(label)
    expect(paste).to_contain_text("userName")
    page.get_by_role("link", name="Setup guide for Okta").click()
    expect(page).to_have_url(re.compile(r"/console/guides/okta$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Okta")
    expect(page.locator("article.guide table").first).to_be_visible()  # the attribute mapping, as a table


def test_a_rotated_token_is_offered_in_the_idps_own_field(page, org):
    login(page, org.admin_token)
    page.goto("/console?idp=onelogin")
    page.get_by_role("button", name="Rotate token").click()
    token = page.locator("#new-token").input_value()
    assert token.startswith("scim_")
    paste = page.get_by_role("table", name="Values to paste into OneLogin")
    expect(paste.get_by_role("row", name=re.compile("SCIM Bearer Token")).locator("input")).to_have_value(token)


def test_guides_link_each_other_and_unknown_ones_are_404(page, org):
    login(page, org.admin_token)
    page.goto("/console/guides/README")
    page.get_by_role("link", name="okta.md").first.click()
    expect(page).to_have_url(re.compile(r"/console/guides/okta$"))
    for name in ("entra-id", "onelogin", "generic-scim"):
        response = page.goto(f"/console/guides/{name}")
        assert response.status == 200 and "<script" not in page.locator("article.guide").inner_html()
    for bad in ("nosuch", "..%2F..%2Fpyproject", "README.md"):
        assert page.goto(f"/console/guides/{bad}").status == 404
