"""RFC 9865 cursor pagination on SCIM lists, on the real server and PostgreSQL: announced in
/ServiceProviderConfig, a walk of 10,000 users while others are created and deleted returns each
user that existed throughout exactly once, previousCursor goes back, and a bad cursor is a 400."""

import threading
import uuid

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import ScimOrg

pytestmark = pytest.mark.integration

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PEOPLE = 10_000


def _seed(engine, org: ScimOrg, n: int) -> set[str]:
    """n users stored as the storage stores them: clones of one created over SCIM, each its own id and userName."""
    created = org.client.post("/Users", json={"schemas": [USER], "userName": "template@crowd.example"})
    assert created.status_code == 201, created.text
    template = created.json()["id"]
    with engine.begin() as conn:
        conn.execute(text("""
            INSERT INTO scim_resources (org_id, id, resource_type, version, data, user_name_ci, emails_ci, created_at, updated_at)
            SELECT org_id, md5(random()::text || n), resource_type, version,
                   jsonb_set(data, '{userName}', to_jsonb('u' || n || '@crowd.example')), 'u' || n || '@crowd.example',
                   emails_ci, created_at, updated_at
            FROM scim_resources, generate_series(1, :n) AS n
            WHERE org_id = :org AND id = :template
        """), {"org": org.id, "template": template, "n": n - 1})  # fmt: skip
        conn.execute(text("UPDATE scim_resources SET data = jsonb_set(data, '{id}', to_jsonb(id)) WHERE org_id = :o"),
                     {"o": org.id})  # fmt: skip
        ids = conn.execute(text("SELECT id FROM scim_resources WHERE org_id = :o"), {"o": org.id}).scalars().all()
    return set(ids)


def test_cursor_pagination_is_announced(scim_org):
    config = scim_org.client.get("/ServiceProviderConfig").json()
    assert config["pagination"]["cursor"] is True and config["pagination"]["index"] is True
    assert config["pagination"]["defaultPaginationMethod"] == "index" and config["pagination"]["cursorTimeout"] > 0


def test_a_walk_under_concurrent_writes_returns_each_lasting_user_exactly_once(engine, scim_org):
    lasting = _seed(engine, scim_org, PEOPLE)
    doomed = set()
    for i in range(40):  # users deleted during the walk
        made = scim_org.client.post("/Users", json={"schemas": [USER], "userName": f"doomed{i}@crowd.example"})
        doomed.add(made.json()["id"])
    lasting -= doomed
    stop = threading.Event()
    writes: list[int] = []

    def churn() -> None:
        with httpx.Client(base_url=scim_org.base_url, headers=dict(scim_org.client.headers), timeout=10) as client:
            victims = list(doomed)
            while not stop.is_set():
                made = client.post("/Users", json={"schemas": [USER], "userName": f"new-{uuid.uuid4().hex}@crowd.example"})
                writes.append(made.status_code)
                if victims:
                    writes.append(client.delete(f"/Users/{victims.pop()}").status_code)

    writer = threading.Thread(target=churn)
    writer.start()
    seen: list[str] = []
    try:
        cursor, pages = "", 0
        while cursor is not None:
            page = scim_org.client.get("/Users", params={"cursor": cursor, "count": 500, "attributes": "userName"})
            assert page.status_code == 200, page.text
            body = page.json()
            seen += [r["id"] for r in body.get("Resources", [])]
            cursor, pages = body.get("nextCursor"), pages + 1
    finally:
        stop.set()
        writer.join()
    assert writes and set(writes) <= {201, 204}  # the writes did happen, during the walk
    assert len(seen) == len(set(seen)), "a user came twice"
    assert lasting <= set(seen), f"{len(lasting - set(seen))} lasting users never came"
    assert pages >= PEOPLE // 500


def test_previous_cursor_goes_back_and_the_last_page_has_no_next(engine, scim_org):
    _seed(engine, scim_org, 25)
    first = scim_org.client.get("/Users", params={"cursor": "", "count": 10}).json()
    assert "previousCursor" not in first and first["itemsPerPage"] == 10 and first["totalResults"] == 25
    second = scim_org.client.get("/Users", params={"cursor": first["nextCursor"], "count": 10}).json()
    back = scim_org.client.get("/Users", params={"cursor": second["previousCursor"], "count": 10}).json()
    assert [r["id"] for r in back["Resources"]] == [r["id"] for r in first["Resources"]]
    third = scim_org.client.get("/Users", params={"cursor": second["nextCursor"], "count": 10}).json()
    assert len(third["Resources"]) == 5 and "nextCursor" not in third
    ids = [r["id"] for page in (first, second, third) for r in page["Resources"]]
    assert len(set(ids)) == 25


@pytest.mark.parametrize(
    "params, scim_type",
    [
        ({"cursor": "not-a-cursor"}, "invalidCursor"),
        ({"cursor": "", "startIndex": "1"}, None),
    ],
)
def test_a_bad_cursor_is_a_400_that_says_why(scim_org, params, scim_type):
    response = scim_org.client.get("/Users", params=params)
    assert response.status_code == 400, response.text
    if scim_type:
        assert response.json()["scimType"] == scim_type


def test_a_cursor_is_for_its_query_only(engine, scim_org):
    _seed(engine, scim_org, 12)
    first = scim_org.client.get("/Users", params={"cursor": "", "count": 5}).json()
    other = scim_org.client.get("/Users", params={"cursor": first["nextCursor"], "count": 6})
    assert other.status_code == 400 and other.json()["scimType"] in ("invalidCursor", "invalidCount"), other.text


def test_a_filtered_search_pages_by_cursor_too(engine, scim_org):
    _seed(engine, scim_org, 30)
    query = {"filter": 'userName sw "u1"', "cursor": "", "count": 4}
    seen: list[str] = []
    while True:
        body = scim_org.client.get("/Users", params=query).json()
        seen += [r["userName"] for r in body["Resources"]]
        if "nextCursor" not in body:
            break
        query["cursor"] = body["nextCursor"]
    expected = {f"u{n}@crowd.example" for n in range(1, 30) if str(n).startswith("1")}
    assert sorted(seen) == sorted(expected)
