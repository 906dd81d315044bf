"""The console's Users page at scale, in Chromium: pages of 50, Previous/Next, search by email or
name, the status filter with its counts, and names as the IdP sent them."""

import re
import uuid

import pytest
from playwright.sync_api import expect
from sqlalchemy import text

from tests.console.conftest import login

pytestmark = pytest.mark.console

PAGE = 50


def seed(engine, org_id: str, count: int) -> None:
    """`count` members in one statement: member n is `m{n:04}@crowd.example`, named Given{n} Family{n},
    every fifth deactivated, created in n order."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO members (id, org_id, scim_user_id, user_name, email, email_ci, given_name, family_name, status,"
                " source, created_at)"
                " SELECT gen_random_uuid(), :org, 'u' || n, 'm' || lpad(n::text, 4, '0'), 'M' || lpad(n::text, 4, '0')"
                " || '@Crowd.example', 'm' || lpad(n::text, 4, '0') || '@crowd.example', 'Given' || n, 'Family' || n,"
                " CASE WHEN n % 5 = 0 THEN 'deactivated' ELSE 'provisioned' END, 'scim',"
                " timestamptz '2026-01-01' + n * interval '1 second'"
                " FROM generate_series(1, :count) AS n"
            ),
            {"org": org_id, "count": count},
        )


def rows(page):
    return page.locator("tbody tr[data-member]")


def test_the_user_list_pages_forward_and_back(page, org, engine):
    seed(engine, org.id, 2 * PAGE + 20)
    login(page, org.admin_token)
    page.goto("/console/users")
    expect(page.locator("#user-count")).to_have_text("120 users")
    expect(rows(page)).to_have_count(PAGE)
    expect(rows(page).first).to_contain_text("Given1 Family1")  # the IdP's names, the email beneath
    expect(rows(page).first).to_contain_text("M0001@Crowd.example")
    expect(page.get_by_role("link", name="Previous page")).to_have_count(0)

    page.get_by_role("link", name="Next page").click()
    expect(rows(page)).to_have_count(PAGE)
    expect(rows(page).first).to_contain_text("Given51 Family51")
    page.get_by_role("link", name="Next page").click()
    expect(rows(page)).to_have_count(20)
    expect(rows(page).last).to_contain_text("Given120 Family120")
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)

    page.get_by_role("link", name="Previous page").click()
    expect(rows(page).first).to_contain_text("Given51 Family51")
    page.get_by_role("link", name="Previous page").click()
    expect(rows(page).first).to_contain_text("Given1 Family1")
    expect(page.get_by_role("link", name="Previous page")).to_have_count(0)


def test_search_and_the_status_filter_narrow_the_pages(page, org, engine):
    seed(engine, org.id, 2 * PAGE + 20)
    login(page, org.admin_token)
    page.goto("/console/users")
    status = page.get_by_label("Status")
    expect(status.locator("option[value='deactivated']")).to_have_text("Deactivated (24)")
    expect(status.locator("option[value='provisioned']")).to_have_text("Provisioned (96)")
    expect(status.locator("option[value='']")).to_have_text("All users (120)")

    page.get_by_label("Search").fill("given7 ")  # any case; the blank is trimmed
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"q=given7"))
    expect(rows(page)).to_have_count(11)  # Given7, Given70-79
    expect(page.locator("#user-count")).to_contain_text("matching 'given7'")

    status.select_option("deactivated")  # keeps the search
    expect(page).to_have_url(re.compile(r"status=deactivated"))
    expect(rows(page)).to_have_count(2)  # Given70, Given75
    expect(page.locator("tbody")).to_contain_text("Given75 Family75")

    page.goto("/console/users?status=deactivated")
    expect(rows(page)).to_have_count(24)
    expect(page.locator("#user-count")).to_have_text("24 users")
    page.goto("/console/users?q=crowd.example&status=provisioned")
    expect(rows(page)).to_have_count(PAGE)
    page.get_by_role("link", name="Next page").click()
    expect(page).to_have_url(re.compile(r"status=provisioned.*q=crowd.example|q=crowd.example.*status=provisioned"))
    expect(rows(page)).to_have_count(46)

    page.goto("/console/users?q=" + "x" * 201)
    expect(page.get_by_role("alert")).to_contain_text("at most 200 characters")
    page.goto("/console/users?q=nobody-at-all")
    expect(page.locator("tbody")).to_contain_text("No users match 'nobody-at-all'.")


def test_a_page_link_that_is_not_ours_shows_the_first_page(page, org, engine):
    seed(engine, org.id, 3)
    login(page, org.admin_token)
    response = page.goto("/console/users?after=" + uuid.uuid4().hex)
    assert response.status == 400
    expect(page.get_by_role("alert")).to_contain_text("That page link is not valid here")
    expect(rows(page)).to_have_count(3)


def test_a_user_without_a_user_name_or_names_is_not_an_empty_row(page, org, engine):
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO members (id, org_id, scim_user_id, user_name, email, email_ci, display_name, given_name, status,"
                " source) VALUES (gen_random_uuid(), :org, 'blank', '', NULL, NULL, '  ', '', 'provisioned', 'scim'),"
                " (gen_random_uuid(), :org, 'named', '', 'only@mail.example', 'only@mail.example', NULL, NULL,"
                " 'provisioned', 'scim')"
            ),
            {"org": org.id},
        )
    login(page, org.admin_token)
    page.goto("/console/users")
    expect(page.locator("tbody a.who")).to_have_text(["(no name)", "only@mail.example"])
