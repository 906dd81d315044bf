"""The IdP connection's health on the console's Provisioning page, in Chromium."""

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select, update

from core.tables import scim_tokens
from domain import tokens
from tests.conftest import wait_for
from tests.console.conftest import login

pytestmark = pytest.mark.console

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def test_the_provisioning_page_shows_the_idps_health(page, org, engine):
    login(page, org.admin_token)
    health = page.locator(".idp-health")
    expect(health).to_have_attribute("data-health", "not_connected")

    client = org.scim.client
    assert client.post("/Users", json={"schemas": [USER], "userName": f"h-{org.slug}@example.test"}).status_code == 201

    def shown(state: str) -> bool:
        page.reload()
        return health.get_attribute("data-health") == state

    wait_for(lambda: shown("healthy"), timeout=30, interval=0.5, message="healthy")
    expect(health).to_contain_text("Healthy: your identity provider is syncing.")
    expect(health).to_contain_text("1 served")

    with engine.begin() as conn:
        tokens.revoke(conn, "scim", conn.execute(select(scim_tokens).where(scim_tokens.c.org_id == org.id)).first())
    assert client.get("/Users").status_code == 401
    wait_for(lambda: shown("failing_auth"), timeout=60, interval=0.5, message="failing auth")
    expect(health.locator(".badge")).to_have_text("Failing auth")
    expect(health).to_contain_text("Rotate the token and paste the new one.")
    expect(health).to_contain_text("1 refused for the token")


def test_a_token_with_a_lifetime_shows_its_end_and_a_warning_near_it(page, org, engine):
    login(page, org.admin_token)
    page.get_by_label("New token expires").select_option("90")
    page.get_by_role("button", name="Rotate token").click()
    new_token = page.locator("#new-token").input_value()
    with engine.connect() as conn:
        newest = select(scim_tokens).where(scim_tokens.c.org_id == org.id).order_by(scim_tokens.c.created_at.desc())
        row = conn.execute(newest).first()
    assert row.expires_at is not None and row.expires_at - datetime.now(UTC) > timedelta(days=89)
    assert new_token.startswith(row.prefix)
    end = page.locator(f'[data-token-expiry="{row.prefix}"]')
    expect(end).to_contain_text("stops working on")
    expect(end).not_to_contain_text("Rotate it now")

    with engine.begin() as conn:  # ten days before its end
        soon = datetime.now(UTC) + timedelta(days=10)
        conn.execute(update(scim_tokens).where(scim_tokens.c.id == row.id).values(expires_at=soon))
    page.reload()
    expect(end).to_contain_text("Rotate it now and paste the new one into your identity provider.")
    expect(end).to_have_class("warning")
