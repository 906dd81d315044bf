"""A real headless browser for the console tests: Debian's Chromium driven by Playwright.

Playwright never downloads a browser here: `setup.sh` installs the distribution's `chromium`
when it is missing and Playwright launches that binary. Each test gets its own browser
context (fresh cookies and storage) and its own org with an admin token.
"""

import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine

from core.settings import Settings
from domain import admin, orgs
from tests.conftest import ScimOrg, make_org

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    subprocess.run(["bash", str(Path(__file__).with_name("setup.sh"))], check=True)
    executable = shutil.which("chromium")
    assert executable, "setup.sh did not install chromium"
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    # launch() gives the browser a fresh, temporary user-data-dir of its own, removed on close.
    browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture
def context(chromium, server: str) -> Iterator[object]:
    context = chromium.new_context(base_url=server, viewport={"width": 1280, "height": 900}, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(10_000)
    yield context
    context.close()


@pytest.fixture
def page(context) -> object:
    page = context.new_page()
    page.on("dialog", lambda dialog: pytest.fail(f"unexpected dialog: {dialog.message}"))
    return page


@dataclass
class AdminOrg:
    scim: ScimOrg
    admin_token: str

    @property
    def id(self) -> str:
        return self.scim.id

    @property
    def slug(self) -> str:
        return self.scim.slug


@pytest.fixture
def org(settings: Settings, engine: Engine, server: str) -> Iterator[AdminOrg]:
    scim = make_org(settings, engine)
    yield AdminOrg(scim, admin.create_admin_token(engine, scim.slug))
    scim.client.close()


@pytest.fixture
def named_org(settings: Settings, engine: Engine, server: str) -> Iterator[AdminOrg]:
    """An org with a display name, for pictures."""
    slug = "acme-" + uuid.uuid4().hex[:6]
    created, token = orgs.create(engine, slug, "Acme Inc.")
    import httpx

    base = orgs.scim_base_url(settings.public_url, slug)
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    yield AdminOrg(ScimOrg(created.id, slug, token, base, client), admin.create_admin_token(engine, slug))
    client.close()


def login(page, token: str) -> None:
    from playwright.sync_api import expect

    page.goto("/console/login")
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/console$"))
    expect(page.get_by_role("heading", name="Provisioning", level=1)).to_be_visible()
