"""SCIM preview on the console's Provisioning page, in Chromium: start it, see what going live
would do while the IdP pushes, go live."""

import pytest
from playwright.sync_api import expect
from sqlalchemy import text

from tests.console.conftest import login

pytestmark = pytest.mark.console

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def test_an_admin_previews_a_sync_and_goes_live(page, org, engine):
    login(page, org.admin_token)
    card = page.locator("[data-preview]")
    expect(card).to_have_attribute("data-preview", "off")
    page.get_by_role("button", name="Start a preview").click()
    expect(page.locator("[data-preview]")).to_have_attribute("data-preview", "on")
    expect(page.locator(".notice")).to_contain_text("SCIM is in preview")

    for i in range(3):
        body = {"schemas": [USER], "userName": f"pv{i}-{org.slug}@example.test", "active": i != 2}
        assert org.scim.client.post("/Users", json=body).status_code == 201
    page.reload()
    expect(page.locator("[data-preview-new-members]")).to_contain_text("create 3 members (2 provisioned, 1 deactivated)")
    expect(page.locator("[data-preview-conflicts]")).to_contain_text("flag 0 email conflicts")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM members WHERE org_id = :o"), {"o": org.id}).scalar() == 0

    page.get_by_role("button", name="Go live").click()
    expect(page.locator("[data-preview]")).to_have_attribute("data-preview", "off")
    expect(page.locator("body")).to_contain_text("SCIM is live: 3 held changes applied in order.")
    with engine.connect() as conn:
        held = conn.execute(text("SELECT count(*) FROM held_events WHERE org_id = :o"), {"o": org.id}).scalar()
        moved = conn.execute(text("SELECT count(*) FROM outbox WHERE payload->>'orgid' = :o"), {"o": org.id}).scalar()
    assert held == 0 and moved >= 3
