"""The admin console in a real headless Chromium, against ingest over real HTTP and the real
PostgreSQL. No workers run here: members and conflicts are inserted as the membership and
conflict workers would write them, and console actions are checked in the database and outbox.
"""

import os
import re
import shutil
import struct
import uuid
import zlib
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import select, text, update

from core.tables import accounts, conflicts, member_activity, members
from domain import admin, domains, orgs
from domain.postgres import SqlUnitOfWork
from tests.conftest import wait_for
from tests.console.conftest import login
from workers.conflicts import ERROR

pytestmark = pytest.mark.console

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "console-settings.png"


# -- helpers ---------------------------------------------------------------------------------


def insert_member(engine, org_id, email, status="provisioned", source="scim", display_name=None, first_login=False):
    """A member row as the membership worker writes it."""
    member_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(
            members.insert().values(
                id=member_id, org_id=org_id, scim_user_id=str(uuid.uuid4()) if source == "scim" else None,
                user_name=email, email=email, email_ci=email.lower(), display_name=display_name, status=status,
                source=source, first_login_at=datetime.now(UTC) if first_login else None,
            )
        )
    return member_id


def insert_conflict(engine, org_id, email, display_name=None):
    """An account outside the org, the org's member with its email, and the open conflict, as the
    conflict worker records them."""
    member_id = insert_member(engine, org_id, email, display_name=display_name)
    account_id, conflict_id = str(uuid.uuid4()), str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(accounts.insert().values(id=account_id, email=email, email_ci=email.lower()))
        conn.execute(
            conflicts.insert().values(
                id=conflict_id, org_id=org_id, member_id=member_id, account_id=account_id, email_ci=email.lower(),
                status="open", error=ERROR.format(email=email),
            )
        )
        conn.execute(update(members).where(members.c.id == member_id).values(conflict_id=conflict_id))
    return member_id, account_id, conflict_id


def outbox(engine, org_id):
    with engine.connect() as conn:
        query = text("SELECT payload FROM outbox WHERE payload->>'orgid' = :o ORDER BY id")
        return [r[0] for r in conn.execute(query, {"o": org_id})]


def current_org(engine, slug):
    with engine.connect() as conn:
        return orgs.get(conn, slug)


def email(tag):
    return f"{tag}-{uuid.uuid4().hex[:6]}@example.com"


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium writes) into rows of pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + length
    assert header is not None, "no IHDR"
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, f"unexpected PNG format {header}"
    bpp = 3 if color == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        filt, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if filt == 1:
                line[i] = (line[i] + a) & 0xFF
            elif filt == 2:
                line[i] = (line[i] + b) & 0xFF
            elif filt == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif filt == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, rows


# -- sign-in ---------------------------------------------------------------------------------


def test_console_needs_a_session(page, server):
    for path in ("/console", "/console/users"):
        page.goto(path)
        expect(page).to_have_url(re.compile(r"/console/login$"))
    expect(page.get_by_label("Admin token")).to_be_visible()


def test_login_with_a_bad_token_is_refused(page, org):
    page.goto("/console/login")
    page.get_by_label("Admin token").fill("adm_not-a-real-token")
    with page.expect_response(lambda r: r.url.endswith("/console/login") and r.request.method == "POST") as answer:
        page.get_by_role("button", name="Sign in").click()
    assert answer.value.status == 401
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    assert not [c for c in page.context.cookies() if c["name"] == "provisioner_console"]

    # A SCIM token is a credential of the org, but never an admin one.
    page.get_by_label("Admin token").fill(org.scim.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("SCIM bearer token")
    page.goto("/console")
    expect(page).to_have_url(re.compile(r"/console/login$"))


def test_login_form_needs_its_own_csrf_nonce(context, org):
    # A cross-site form cannot sign the victim in to the attacker's org: no nonce cookie, no sign-in.
    r = context.request.post("/console/login", form={"token": org.admin_token, "csrf": "x"}, max_redirects=0)
    assert r.status == 403 and "expired" in r.text()
    assert not [c for c in context.cookies() if c["name"] == "provisioner_console"]


def test_cookies_are_secure_behind_https(settings, engine, org):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from ingest.console import console_routes

    https = settings.model_copy(update={"public_url": "https://console.example.com"})
    with TestClient(Starlette(routes=console_routes(https, engine)), base_url="https://testserver") as client:
        page = client.get("/console/login")
        nonce = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        assert "secure" in page.headers["set-cookie"].lower()
        r = client.post("/console/login", data={"token": org.admin_token, "csrf": nonce}, follow_redirects=False)
        assert r.status_code == 303
        session = next(c for c in r.headers.get_list("set-cookie") if c.startswith("provisioner_console="))
        assert all(flag in session.lower() for flag in ("secure", "httponly", "samesite=strict", "path=/console"))


def test_login_sets_a_strict_http_only_cookie_and_logout_ends_it(page, org):
    login(page, org.admin_token)
    cookie = next(c for c in page.context.cookies() if c["name"] == "provisioner_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert page.evaluate("document.cookie") == ""
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_contain_text("signed out")
    page.goto("/console")
    expect(page).to_have_url(re.compile(r"/console/login$"))


# -- provisioning settings -------------------------------------------------------------------


def test_settings_page_shows_toggles_and_scim_base_url(page, org, settings):
    login(page, org.admin_token)
    manual = page.get_by_role("switch", name="Manual provisioning")
    sso = page.get_by_role("switch", name="Provisioning through SSO")
    scim = page.get_by_role("switch", name="Provisioning through SCIM")
    expect(manual).to_have_attribute("aria-checked", "true")
    expect(sso).to_have_attribute("aria-checked", "false")
    expect(scim).to_have_attribute("aria-checked", "true")
    expect(page.get_by_label("Base URL")).to_have_value(orgs.scim_base_url(settings.public_url, org.slug))
    expect(page.get_by_role("button", name="Rotate token")).to_be_visible()
    expect(page.get_by_label("New bearer token")).to_have_count(0)


def test_toggling_sso_provisioning_persists(page, org, engine):
    login(page, org.admin_token)
    page.get_by_role("switch", name="Provisioning through SSO").click()
    expect(page.get_by_role("status")).to_contain_text("Provisioning through SSO is now on")
    expect(page.get_by_role("switch", name="Provisioning through SSO")).to_have_attribute("aria-checked", "true")
    assert current_org(engine, org.slug).sso_provisioning is True
    changed = [p for p in outbox(engine, org.id) if p["type"] == "io.provisioner.org.settings.changed"]
    assert changed[-1]["data"]["after"]["sso_provisioning"] is True
    assert changed[-1]["data"]["actor"].startswith("console:")

    page.reload()
    expect(page.get_by_role("switch", name="Provisioning through SSO")).to_have_attribute("aria-checked", "true")
    expect(page.get_by_role("status")).to_have_count(0)  # the message was shown once

    page.get_by_role("switch", name="Provisioning through SSO").click()
    expect(page.get_by_role("switch", name="Provisioning through SSO")).to_have_attribute("aria-checked", "false")
    assert current_org(engine, org.slug).sso_provisioning is False


def test_disabling_scim_hides_its_details(page, org, engine):
    login(page, org.admin_token)
    page.get_by_role("switch", name="Provisioning through SCIM").click()
    expect(page.get_by_role("switch", name="Provisioning through SCIM")).to_have_attribute("aria-checked", "false")
    expect(page.get_by_label("Base URL")).to_have_count(0)
    assert current_org(engine, org.slug).scim_enabled is False
    # SCIM refuses the org's token once the toggle is off (ingest caches verified tokens briefly).
    wait_for(lambda: org.scim.client.get("/Users").status_code == 401, timeout=15, interval=0.5, message="SCIM refusal")
    page.get_by_role("switch", name="Provisioning through SCIM").click()
    expect(page.get_by_label("Base URL")).to_be_visible()


def test_rotated_token_is_shown_once_and_works_on_scim(page, org):
    login(page, org.admin_token)
    page.get_by_role("button", name="Rotate token").click()
    field = page.get_by_label("New bearer token")
    expect(field).to_be_visible()
    expect(page.get_by_text("it will not be shown again")).to_be_visible()
    expect(page.get_by_role("button", name="Copy").last).to_be_visible()
    token = field.input_value()
    assert token.startswith("scim_") and token != org.scim.token

    page.reload()
    expect(page.get_by_label("Base URL")).to_be_visible()
    expect(page.get_by_label("New bearer token")).to_have_count(0)
    assert token not in page.content()

    r = httpx.get(f"{org.scim.base_url}/Users", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text
    assert org.scim.client.get("/Users").status_code == 200  # the old token overlaps for a while


def test_copy_button_copies_the_base_url(page, org, context, settings):
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    login(page, org.admin_token)
    copy = page.locator('button[data-copy="scim-base-url"]')
    expect(copy).to_have_accessible_name("Copy")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == orgs.scim_base_url(settings.public_url, org.slug)


# -- users -----------------------------------------------------------------------------------


def test_user_list_shows_statuses_and_filters(page, org, engine):
    provisioned = insert_member(engine, org.id, email("prov"), display_name="Pat Provisioned")
    active = insert_member(engine, org.id, email("act"), status="active", source="sso", first_login=True)
    deactivated = insert_member(engine, org.id, email("deact"), status="deactivated", display_name="Dee Activated")
    conflicted, _, _ = insert_conflict(engine, org.id, email("conf"))
    login(page, org.admin_token)
    page.get_by_role("navigation").get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", name="Users", level=1)).to_be_visible()

    def badge(member_id):
        return page.locator(f'tr[data-member="{member_id}"] .badge')

    expect(badge(provisioned)).to_have_text("Provisioned")
    expect(badge(active)).to_have_text("Active")
    expect(badge(deactivated)).to_have_text("Deactivated")
    expect(badge(conflicted)).to_have_text("Conflict")
    expect(page.locator(f'tr[data-member="{active}"]')).to_contain_text("SSO")

    page.get_by_label("Status").select_option("deactivated")  # the script submits on change
    expect(page).to_have_url(re.compile(r"status=deactivated"))
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(badge(deactivated)).to_be_visible()

    page.goto("/console/users?status=nonsense")
    expect(page.get_by_role("alert")).to_contain_text("no status")
    expect(page.locator("tbody tr")).to_have_count(4)


def test_acquire_resolves_a_conflict(page, org, engine, settings):
    address = f"taken-{uuid.uuid4().hex[:6]}@{org.slug}.example"
    member_id, account_id, conflict_id = insert_conflict(engine, org.id, address)
    login(page, org.admin_token)
    page.goto("/console/users")
    row = page.locator(f'tr[data-member="{member_id}"]')
    expect(row.locator(".badge")).to_have_text("Conflict")
    expect(row).to_contain_text(ERROR.format(email=address))
    row.get_by_role("button", name="Acquire").click()
    # refused until the org has verified the address's domain: the conflict stays
    expect(page.get_by_role("alert")).to_contain_text(f"has not verified the email domain {org.slug}.example")
    expect(row.locator(".badge")).to_have_text("Conflict")
    with engine.begin() as conn:
        uow = SqlUnitOfWork(conn, settings.topics())
        domains.add(uow, current_org(engine, org.slug), f"{org.slug}.example", "support:t", verified=True)
    row.get_by_role("button", name="Acquire").click()

    expect(page.get_by_role("status")).to_contain_text(f"Acquired the existing account of {address.lower()}")
    expect(row.locator(".badge")).to_have_text("Provisioned")
    expect(row.get_by_role("button", name="Acquire")).to_have_count(0)
    with engine.connect() as conn:
        conflict = conn.execute(select(conflicts).where(conflicts.c.id == conflict_id)).one()
        member = conn.execute(select(members).where(members.c.id == member_id)).one()
        account = conn.execute(select(accounts).where(accounts.c.id == account_id)).one()
    assert conflict.status == "acquired" and conflict.resolved_by.startswith("console:")
    assert member.conflict_id is None and member.account_id == account_id
    assert account.org_id == org.id
    assert "io.provisioner.account.acquired" in [p["type"] for p in outbox(engine, org.id)]


def test_dismiss_and_a_stale_resolution(page, org, engine):
    member_id, _, conflict_id = insert_conflict(engine, org.id, email("dismiss"))
    login(page, org.admin_token)
    page.goto("/console/users?status=conflict")
    csrf = page.locator('input[name="csrf"]').first.input_value()
    row = page.locator(f'tr[data-member="{member_id}"]')
    row.get_by_role("button", name="Dismiss").click()
    expect(page.get_by_role("status")).to_contain_text("Dismissed the conflict")
    expect(page).to_have_url(re.compile(r"status=conflict"))
    expect(page.locator("tbody")).to_contain_text("No users with the status Conflict")
    with engine.connect() as conn:
        assert conn.execute(select(conflicts.c.status).where(conflicts.c.id == conflict_id)).scalar() == "dismissed"

    # The same button sent again (another tab, a double post): a readable message, not a 500.
    r = page.context.request.post(f"/console/conflicts/{conflict_id}/acquire", form={"csrf": csrf})
    assert r.status == 200 and "No open conflict" in r.text()
    r = page.context.request.post("/console/conflicts/not-a-uuid/acquire", form={"csrf": csrf})
    assert r.status == 200 and "No open conflict" in r.text()


def test_manual_add_refused_while_off_and_staged_while_on(page, org, engine, settings):
    with engine.begin() as conn:
        admin.change_settings(
            SqlUnitOfWork(conn, settings.topics()), current_org(engine, org.slug), "test", manual_provisioning=False
        )
    address = email("manual")
    login(page, org.admin_token)
    page.goto("/console/users")
    expect(page.get_by_text("Manual provisioning is off")).to_be_visible()
    page.get_by_label("Email").fill(address)
    page.get_by_label("Name").fill("Manny Manual")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Add user").click()
    assert answer.value.status == 403
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("manual_provisioning")
    expect(alert).to_contain_text("Manual provisioning")
    expect(page.get_by_label("Email")).to_have_value(address)  # kept for a retry
    assert not [p for p in outbox(engine, org.id) if p["type"] == "io.provisioner.member.manually_added"]

    page.get_by_role("navigation").get_by_role("link", name="Provisioning").click()
    page.get_by_role("switch", name="Manual provisioning").click()
    expect(page.get_by_role("switch", name="Manual provisioning")).to_have_attribute("aria-checked", "true")
    page.get_by_role("navigation").get_by_role("link", name="Users").click()
    page.get_by_label("Email").fill(address)
    page.get_by_label("Name").fill("Manny Manual")
    page.get_by_role("button", name="Add user").click()
    expect(page.get_by_role("status")).to_contain_text(f"{address} was added")
    added = [p for p in outbox(engine, org.id) if p["type"] == "io.provisioner.member.manually_added"]
    assert len(added) == 1
    assert added[0]["data"]["email"] == address and added[0]["data"]["display_name"] == "Manny Manual"

    page.get_by_label("Email").fill("not an email")
    page.get_by_label("Email").evaluate("el => el.type = 'text'")  # past the browser's own check
    page.get_by_role("button", name="Add user").click()
    expect(page.get_by_role("alert")).to_contain_text("valid email address")


def test_member_activity(page, org, engine):
    member_id = insert_member(engine, org.id, email("act"), display_name="Ada Activity")
    with engine.begin() as conn:
        conn.execute(
            member_activity.insert().values(
                org_id=org.id, member_id=member_id, event_id=str(uuid.uuid4()), type="io.provisioner.user.created",
                source="scim", summary={"active": True},
            )
        )
    login(page, org.admin_token)
    page.goto("/console/users")
    page.get_by_role("link", name="Ada Activity").click()
    expect(page.get_by_role("heading", name="Ada Activity")).to_be_visible()
    expect(page.get_by_role("heading", name="Recent activity")).to_be_visible()
    expect(page.locator("ol.activity")).to_contain_text("User created")
    page.goto("/console/users/not-a-uuid")
    expect(page.get_by_role("alert")).to_contain_text("no such user")


# -- safety ----------------------------------------------------------------------------------


def test_html_is_escaped_everywhere(page, org, engine):
    hostile = "<script>window.__owned = 1</script>"
    member_id = insert_member(engine, org.id, f"{hostile}@example.com", display_name=f"Eve {hostile}")
    conflicted, _, _ = insert_conflict(engine, org.id, f"<img src=x onerror=window.__owned=2>{uuid.uuid4().hex[:4]}@e.com")
    login(page, org.admin_token)
    page.goto("/console/users")
    row = page.locator(f'tr[data-member="{member_id}"]')
    expect(row).to_contain_text(f"Eve {hostile}")
    expect(row).to_contain_text(f"{hostile}@example.com")
    expect(page.locator(f'tr[data-member="{conflicted}"]')).to_contain_text("<img src=x")
    assert page.evaluate("window.__owned") is None
    assert page.locator("main script, main img").count() == 0

    page.get_by_label("Email").fill(f"{hostile}@x")
    page.get_by_label("Email").evaluate("el => el.type = 'text'")
    page.get_by_label("Name").fill(hostile)
    page.get_by_role("button", name="Add user").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_label("Name")).to_have_value(hostile)
    page.goto(f"/console/users?status={hostile}")
    expect(page.get_by_role("alert")).to_contain_text(hostile)
    assert page.evaluate("window.__owned") is None


def test_posts_need_the_csrf_token(page, org, engine):
    login(page, org.admin_token)
    request = page.context.request  # the browser's cookies, without a form from the page
    r = request.post("/console/settings", form={"setting": "sso_provisioning", "value": "on"})
    assert r.status == 403 and "security token" in r.text()
    r = request.post("/console/settings", form={"setting": "sso_provisioning", "value": "on", "csrf": "forged"})
    assert r.status == 403
    r = request.post("/console/scim/rotate", form={})
    assert r.status == 403
    assert current_org(engine, org.slug).sso_provisioning is False
    assert request.get("/console/settings").status == 405  # state changes are POST only

    # Bad input is a readable 4xx, never a 500.
    csrf = page.locator('input[name="csrf"]').first.input_value()
    r = request.post("/console/settings", form={"setting": "billing", "value": "on", "csrf": csrf})
    assert r.status == 400 and "Unknown setting" in r.text()
    r = request.post("/console/settings", data=b'{"a": 1}', headers={"Content-Type": "application/json"})
    assert r.status == 415
    r = request.post("/console/users", data="x=" + "a" * 20_000, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 413

    # Without a session, a post goes to the sign-in page and changes nothing.
    page.context.clear_cookies()
    r = request.post("/console/settings", form={"setting": "sso_provisioning", "value": "on", "csrf": csrf}, max_redirects=0)
    assert r.status == 303 and r.headers["location"].endswith("/console/login")
    assert current_org(engine, org.slug).sso_provisioning is False


def test_pages_send_security_headers(page, org):
    login(page, org.admin_token)
    response = page.goto("/console")
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store"
    assert headers["x-frame-options"] == "DENY"


def test_settings_page_lists_the_orgs_domains(page, org, engine, settings):
    with engine.begin() as conn:
        uow, current = SqlUnitOfWork(conn, settings.topics()), current_org(engine, org.slug)
        pending = domains.add(uow, current, f"pending-{org.slug}.example", "cli")
        domains.add(uow, current, f"proved-{org.slug}.example", "support:t", verified=True)
    login(page, org.admin_token)
    waiting = page.locator(f'tr[data-domain="pending-{org.slug}.example"]')
    expect(waiting.locator(".badge")).to_have_text("Pending")
    expect(waiting).to_contain_text(pending["record"]["name"])
    expect(waiting).to_contain_text(pending["record"]["value"])
    proved = page.locator(f'tr[data-domain="proved-{org.slug}.example"]')
    expect(proved.locator(".badge")).to_have_text("Verified")
    expect(proved).to_contain_text("By support")


def test_the_seat_limit_is_shown_and_set_on_the_settings_page(page, org, engine, settings):
    login(page, org.admin_token)
    expect(page.locator("[data-seats-in-use]")).to_have_text("0")
    page.fill("#seat-limit", "12")
    page.select_option("#seat-policy", "allow")
    page.get_by_role("button", name="Save seats").click()
    expect(page.locator(".notice")).to_contain_text("Seats saved: 12 seats.")
    expect(page.locator("[data-seat-limit]")).to_have_text("12")
    current = current_org(engine, org.slug)
    assert (current.seat_limit, current.seat_policy) == (12, "allow")
    page.fill("#seat-limit", "twelve")
    page.get_by_role("button", name="Save seats").click()
    expect(page.locator(".notice")).to_contain_text("whole number")
    assert current_org(engine, org.slug).seat_limit == 12  # nothing changed
    page.fill("#seat-limit", "")
    page.get_by_role("button", name="Save seats").click()
    expect(page.locator(".notice")).to_contain_text("no seat limit")
    assert current_org(engine, org.slug).seat_limit is None


# -- picture ---------------------------------------------------------------------------------


def test_settings_page_screenshot(page, named_org, engine, tmp_path):
    insert_conflict(engine, named_org.id, email("jo"))
    login(page, named_org.admin_token)
    shot = tmp_path / "console-settings.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    width, height, rows = png_pixels(data)
    assert width == 1280 and 700 <= height <= 4000, (width, height)
    assert 20_000 < len(data) < 2_000_000
    colours = {row[i : i + 3] for row in rows[::7] for i in range(0, len(row), 3 * 11)}
    assert len(colours) > 20, "the page looks blank"
    top_left, mid = rows[5][:3], rows[height // 3][width // 2 * 3 : width // 2 * 3 + 3]
    assert top_left != mid or len(colours) > 50
    if os.environ.get("PROVISIONER_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)
