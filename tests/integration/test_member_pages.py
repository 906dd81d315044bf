"""Members, conflicts and dead letters a page at a time: the admin API over real HTTP and the CLI,
on the real PostgreSQL. Keyset pages: every row once, in (created_at, id) order, whatever is
added meanwhile; a cursor from elsewhere is a clear 422 (CLI: exit 2)."""

import json
import subprocess
import sys
import uuid

import httpx
import pytest
from sqlalchemy import select, text

from core.settings import to_env
from core.tables import members
from domain import admin
from domain.members import SEARCHED, count_members
from tests.integration.test_admin_api import open_conflict, problem

pytestmark = pytest.mark.integration

NAMES = [("Ann", "Lee"), ("Bob", "Stone"), ("Céline", "Dion"), ("Dev", "Patel"), ("Eve", "100%"), ("Fay", "a_b")]
STATUSES = ["provisioned", "active", "deactivated", "removed"]


@pytest.fixture
def api(server, engine, scim_org):
    token = admin.create_admin_token(engine, scim_org.slug)
    with httpx.Client(base_url=f"{server}/admin/v1", headers={"Authorization": f"Bearer {token}"}, timeout=15) as client:
        yield client


def _add(engine, org_id: str, n: int, **values) -> str:
    member_id = str(uuid.uuid4())
    given, family = NAMES[n % len(NAMES)]
    row = {
        "id": member_id, "org_id": org_id, "email": f"Person{n}@Pages.example", "email_ci": f"person{n}@pages.example",
        "user_name": f"person{n}", "given_name": given, "family_name": family, "status": STATUSES[n % 4], "source": "scim",
        "scim_user_id": str(uuid.uuid4()), **values,
    }  # fmt: skip
    with engine.begin() as conn:
        conn.execute(members.insert().values(**row))
    return member_id


@pytest.fixture
def crowd(engine, scim_org) -> list[str]:
    """31 members: status `STATUSES[n % 4]`, names `NAMES[n % 6]`, oldest first."""
    return [_add(engine, scim_org.id, n) for n in range(31)]


def _emails(name_index: int, *, removed: bool = False) -> set[str]:
    """The crowd's emails with the name `NAMES[name_index]`, removed ones or the others."""
    return {f"Person{n}@Pages.example" for n in range(31) if n % 6 == name_index and (n % 4 == 3) == removed}


def _in_order(engine, org_id: str, *, removed: bool = False) -> list[str]:
    query = select(members.c.id).where(members.c.org_id == org_id).order_by(members.c.created_at, members.c.id)
    if not removed:
        query = query.where(members.c.status != "removed")
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


def _walk(api, **params) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        body = api.get("/org/members", params={**params, **({"cursor": cursor} if cursor else {})}).json()
        pages.append([m["id"] for m in body["members"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "the cursors do not end"


def test_pages_hold_every_member_once_in_order(api, engine, scim_org, crowd):
    pages = _walk(api, limit=4)
    expected = _in_order(engine, scim_org.id)
    assert [m for page in pages for m in page] == expected and len(expected) == 24  # 31 less the 7 removed
    assert all(len(page) == 4 for page in pages[:-1]) and 1 <= len(pages[-1]) <= 4
    assert [m for page in _walk(api, limit=5, status="removed") for m in page] == [m for i, m in enumerate(crowd) if i % 4 == 3]


def test_previous_cursor_goes_back_one_page(api, crowd):
    first = api.get("/org/members", params={"limit": 5}).json()
    assert first["previous_cursor"] is None
    second = api.get("/org/members", params={"limit": 5, "cursor": first["next_cursor"]}).json()
    third = api.get("/org/members", params={"limit": 5, "cursor": second["next_cursor"]}).json()
    back = api.get("/org/members", params={"limit": 5, "before": third["previous_cursor"]}).json()
    assert [m["id"] for m in back["members"]] == [m["id"] for m in second["members"]]
    assert back["next_cursor"] == second["next_cursor"]
    home = api.get("/org/members", params={"limit": 5, "before": back["previous_cursor"]}).json()
    assert [m["id"] for m in home["members"]] == [m["id"] for m in first["members"]] and home["previous_cursor"] is None


def test_a_member_added_while_paging_is_on_the_last_page_and_none_repeats(api, engine, scim_org, crowd):
    first = api.get("/org/members", params={"limit": 6}).json()
    late = _add(engine, scim_org.id, 100, status="provisioned")
    rest, cursor = [], first["next_cursor"]
    while cursor:
        body = api.get("/org/members", params={"limit": 6, "cursor": cursor}).json()
        rest += [m["id"] for m in body["members"]]
        cursor = body["next_cursor"]
    seen = [m["id"] for m in first["members"]] + rest
    assert rest[-1] == late and len(seen) == len(set(seen)) == 25


def test_search_matches_email_user_name_and_names_in_any_case_and_takes_wildcards_literally(api, crowd):
    def found(q: str, **params) -> set[str]:
        return {m["email"] for m in api.get("/org/members", params={"q": q, "limit": 1000, **params}).json()["members"]}

    assert found("PERSON12@pages") == {"Person12@Pages.example"}  # email, any case
    assert found("céline dion") == _emails(2)  # given and family name
    assert found("céline", status="removed") == _emails(2, removed=True)
    assert found("100%") == _emails(4)  # % is a character, not a wildcard
    assert found("a_b") == _emails(5)  # and so is _
    assert found("a%b") == set() and found("nobody") == set()
    assert len(_emails(2)) >= 2 and _emails(5)
    (member,) = api.get("/org/members", params={"q": "person9@"}).json()["members"]
    assert (member["given_name"], member["family_name"], member["user_name"]) == ("Dev", "Patel", "person9")


def test_counts_per_status_agree_with_the_lists(api, engine, scim_org, crowd):
    conflict = open_conflict(engine, scim_org.id, f"clash-{uuid.uuid4().hex[:8]}@pages.example")
    counts = api.get("/org/members/counts").json()
    for status in ("provisioned", "active", "deactivated", "removed", "conflict"):
        listed = [m for page in _walk(api, limit=50, status=status) for m in page]
        assert counts[status] == len(listed), status
    assert counts["conflict"] == 1 and conflict["member_id"] in [m for p in _walk(api, status="conflict") for m in p]
    assert counts["total"] == len(_in_order(engine, scim_org.id))


def test_bad_page_parameters_are_422_and_name_the_parameter(api, crowd):
    assert problem(api.get("/org/members", params={"cursor": "not-a-cursor"}), 422).startswith("query.cursor:")
    assert problem(api.get("/org/members", params={"before": "bm90fGE"}), 422).startswith("query.before:")
    page = api.get("/org/members", params={"limit": 2}).json()
    both = {"cursor": page["next_cursor"], "before": page["next_cursor"]}
    assert "either cursor or before" in problem(api.get("/org/members", params=both), 422)
    assert problem(api.get("/org/members", params={"limit": 0}), 422).startswith("query.limit")
    assert problem(api.get("/org/members", params={"limit": 1001}), 422).startswith("query.limit")
    assert problem(api.get("/org/members", params={"q": "x" * 201}), 422).startswith("query.q")
    assert problem(api.get("/org/conflicts", params={"cursor": "x" * 300}), 422).startswith("query.cursor")


def test_conflicts_page_too(api, engine, scim_org):
    made = [open_conflict(engine, scim_org.id, f"c{n}-{uuid.uuid4().hex[:8]}@pages.example")["conflict_id"] for n in range(5)]
    seen, cursor = [], None
    while True:
        body = api.get("/org/conflicts", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [c["id"] for c in body["conflicts"]]
        if not (cursor := body["next_cursor"]):
            break
    assert seen == made


def test_cli_pages_and_streams_every_member(settings, engine, scim_org, crowd):
    env = to_env(settings)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli", "members", "list", scim_org.slug, *args], env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    streamed = [json.loads(line)["id"] for line in cli("--all").stdout.splitlines()]
    assert streamed == _in_order(engine, scim_org.id)
    with_removed = [json.loads(line)["id"] for line in cli("--all", "--include-removed").stdout.splitlines()]
    assert with_removed == _in_order(engine, scim_org.id, removed=True)
    first = cli("--json", "--limit", "10")
    assert [m["id"] for m in json.loads(first.stdout)] == streamed[:10]
    cursor = first.stderr.strip().removeprefix("more: --cursor ")
    after = cli("--json", "--limit", "10", "--cursor", cursor)
    assert [m["id"] for m in json.loads(after.stdout)] == streamed[10:20]
    searched = [json.loads(line)["email"] for line in cli("--all", "--search", "DEV PATEL").stdout.splitlines()]
    assert set(searched) == _emails(3) and len(searched) == len(_emails(3)) >= 2
    bad = cli("--cursor", "nope")
    assert bad.returncode == 2 and "--cursor" in bad.stderr and bad.stdout == ""
    assert cli("--status", "asleep").returncode == 2


def test_counts_follow_every_write_to_members(engine, scim_org, crowd):
    """The trigger-kept counts equal a count of the rows after inserts, status changes, a conflict
    opened and closed, and deletes, in batches and one by one."""

    def counted() -> dict[str, int]:
        with engine.connect() as conn:
            return count_members(conn, scim_org.id)

    def scanned() -> dict[str, int]:
        shown = text("SELECT CASE WHEN conflict_id IS NULL THEN status ELSE 'conflict' END, count(*) FROM members"
                     " WHERE org_id = :o GROUP BY 1")  # fmt: skip
        with engine.connect() as conn:
            found = dict(conn.execute(shown, {"o": scim_org.id}).all())
        return {s: int(found.get(s, 0)) for s in ("provisioned", "active", "deactivated", "removed", "conflict")}

    assert counted() == scanned() and sum(counted().values()) == 31
    with engine.begin() as conn:
        conn.execute(members.update().where(members.c.id.in_(crowd[:6])).values(status="active"))
        conn.execute(members.update().where(members.c.id == crowd[6]).values(email="renamed@pages.example"))  # no change
    assert counted() == scanned()
    conflict = open_conflict(engine, scim_org.id, f"clash-{uuid.uuid4().hex[:8]}@pages.example")
    assert counted() == scanned() and counted()["conflict"] == 1
    with engine.begin() as conn:
        conn.execute(members.update().where(members.c.id == conflict["member_id"]).values(conflict_id=None))
        conn.execute(members.delete().where(members.c.id.in_(crowd[10:20])))
    assert counted() == scanned() and sum(counted().values()) == 22


def test_a_search_can_be_answered_from_the_trigram_index(engine, scim_org, crowd):
    """The expression a search matches is the trigram index's own (else a search scans the org)."""
    from sqlalchemy.dialects import postgresql

    searched = SEARCHED.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        conn.execute(text("SET LOCAL enable_indexscan = off"))
        plan = "\n".join(r[0] for r in conn.execute(text(f"EXPLAIN SELECT id FROM members WHERE {searched} LIKE '%given42%'")))
    assert "ix_members_search" in plan, plan
