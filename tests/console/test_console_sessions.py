"""Console sessions in a real browser: the cookie is a session id, never the admin token; sign-out ends the
session server-side (a copy of the old cookie no longer works), and revoking the admin token ends its sessions."""

import re

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import Engine, select

from core.tables import admin_tokens
from domain import admin
from domain.postgres import SqlUnitOfWork
from tests.console.conftest import login

pytestmark = pytest.mark.console


def _cookie(page) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == "provisioner_console")


def _works(server: str, cookie: str) -> bool:
    """Whether a copy of the cookie, sent from elsewhere, still opens the console."""
    reply = httpx.get(f"{server}/console", cookies={"provisioner_console": cookie}, follow_redirects=False, timeout=10)
    return reply.status_code == 200


def test_sign_out_ends_the_session_and_revoking_the_token_ends_the_others(
    page, context, chromium, server, settings, engine: Engine, org
):
    login(page, org.admin_token)
    first = _cookie(page)
    assert first.startswith("cs_") and org.admin_token not in first
    assert _works(server, first)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_contain_text("signed out")
    assert not _works(server, first)  # ended server-side, not only forgotten by this browser

    # two sessions of the same admin token, in two browsers; the token is revoked: both end
    login(page, org.admin_token)
    other = chromium.new_context(base_url=server)
    try:
        second_page = other.new_page()
        login(second_page, org.admin_token)
        sessions = [_cookie(page), _cookie(second_page)]
        assert all(_works(server, s) for s in sessions) and sessions[0] != sessions[1]
        with engine.connect() as conn:
            token_id = str(conn.execute(select(admin_tokens.c.id).where(admin_tokens.c.org_id == org.id)).scalar_one())
        with SqlUnitOfWork.begin(engine, settings.topics()) as uow:
            admin.revoke_token(uow, "cli", token_id, ("admin",))
        assert not any(_works(server, s) for s in sessions)
        second_page.goto("/console")
        expect(second_page).to_have_url(re.compile(r"/console/login$"))
    finally:
        other.close()
