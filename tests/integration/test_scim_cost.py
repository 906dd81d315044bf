"""SCIM cost limits, the request deadline and the input rules, on the real PostgreSQL.

An ingest app of its own (in process): the shipped limits on attribute names, values and PATCH
operations (the issue's probes are refused as sent), small ones on group members and sort
candidates so each is reached with a few rows. Every refusal is a SCIM error that changes nothing.
"""

import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from starlette.testclient import TestClient

from core.db import make_engine
from core.settings import Settings
from ingest.app import create_app
from ingest.scim import paging
from ingest.scim.storage import PgStorage
from tests.conftest import make_org, wait_for
from tests.integration.test_scim_limits import rows, scim_error

pytestmark = pytest.mark.integration

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def client_for(settings: Settings, engine) -> tuple[TestClient, str, str]:
    org = make_org(settings, engine)
    org.client.close()
    client = TestClient(create_app(settings, engine))
    client.headers.update({"Authorization": f"Bearer {org.token}", "Content-Type": "application/scim+json"})
    return client, f"/scim/{org.slug}/v2", org.id


@pytest.fixture(scope="module")
def costly(settings, engine):
    small = settings.model_copy(update={"scim_max_members": 3, "scim_max_candidates": 3, "scim_max_patch_work": 6})
    client, base, org_id = client_for(small, engine)
    with client:
        ids = [client.post(f"{base}/Users", json={"schemas": [USER], "userName": f"u{i}"}).json()["id"] for i in range(4)]
        yield client, base, org_id, ids


def patch(*operations):
    return {"schemas": [PATCH], "Operations": list(operations)}


def test_attribute_lists_over_the_limit_are_refused_at_once(costly, engine):
    client, base, org_id, _ = costly
    made_up = [f"madeUp{i}" for i in range(5000)]  # the probe: 875-925 s on the server before
    started = time.monotonic()
    searched = client.post(f"{base}/.search", json={"schemas": [SEARCH], "attributes": made_up})
    elapsed = time.monotonic() - started
    assert "names 5000 attributes; at most 100" in scim_error(searched, 400, "invalidValue")
    print(f"POST /.search with 5,000 attribute names: {searched.status_code} in {elapsed * 1000:.0f} ms")
    for key in ("attributes", "excludedAttributes"):
        scim_error(client.get(f"{base}/Users", params={key: ",".join(made_up[:101])}), 400, "invalidValue")
        search = {"schemas": [SEARCH], key: made_up[:101]}
        scim_error(client.post(f"{base}/Users/.search", json=search), 400, "invalidValue")
    at_limit = ",".join(["userName"] + made_up[:99])
    assert client.get(f"{base}/Users", params={"attributes": at_limit}).status_code == 200


def test_multi_valued_attributes_are_bounded_on_every_write(costly, engine):
    client, base, org_id, ids = costly
    before = rows(engine, org_id)
    emails = [{"value": f"a{i}@example.com"} for i in range(10_000)]  # the 480 KB user
    started = time.monotonic()
    refused = client.post(f"{base}/Users", json={"schemas": [USER], "userName": "many", "emails": emails})
    print(f"POST a 10,000-email user: {refused.status_code} in {(time.monotonic() - started) * 1000:.0f} ms")
    assert "emails has 10000 values; at most 100" in scim_error(refused, 400, "invalidValue")
    phones = [{"value": f"+1555{i:07d}"} for i in range(101)]
    put = client.put(f"{base}/Users/{ids[0]}", json={"schemas": [USER], "userName": "u0", "phoneNumbers": phones})
    scim_error(put, 400, "invalidValue")
    scim_error(client.patch(f"{base}/Users/{ids[0]}", json=patch({"op": "add", "path": "emails", "value": emails[:101]})), 400)
    scim_error(client.patch(f"{base}/Users/{ids[0]}", json=patch({"op": "add", "value": {"emails": emails[:101]}})), 400)
    assert rows(engine, org_id) == before
    # a resource cannot grow past the limit one PATCH at a time either: the stored result is checked
    hundred = patch({"op": "add", "path": "emails", "value": emails[:100]})
    assert client.patch(f"{base}/Users/{ids[0]}", json=hundred).status_code == 204
    grown = client.patch(f"{base}/Users/{ids[0]}", json=patch({"op": "add", "path": "emails", "value": [emails[200]]}))
    assert "emails has 101 values" in scim_error(grown, 400, "invalidValue")
    assert len(client.get(f"{base}/Users/{ids[0]}").json()["emails"]) == 100


def test_group_members_have_their_own_larger_limit(costly, engine):
    client, base, org_id, ids = costly
    members = [{"value": i} for i in ids]
    before = rows(engine, org_id)
    big = {"schemas": [GROUP], "displayName": "big", "members": members}
    scim_error(client.post(f"{base}/Groups", json=big), 400, "invalidValue")
    assert rows(engine, org_id) == before
    group = client.post(f"{base}/Groups", json={"schemas": [GROUP], "displayName": "three", "members": members[:3]})
    assert group.status_code == 201, group.text
    gid = group.json()["id"]
    more = client.patch(f"{base}/Groups/{gid}", json=patch({"op": "add", "path": "members", "value": members[3:]}))
    assert "members has 4 values; at most 3" in scim_error(more, 400, "invalidValue")
    assert len(client.get(f"{base}/Groups/{gid}").json()["members"]) == 3
    # each PATCH operation is applied to the whole group: operations x members is bounded (6 here)
    before = rows(engine, org_id)
    renames = [{"op": "replace", "path": "displayName", "value": f"n{i}"} for i in range(3)]
    costly = client.patch(f"{base}/Groups/{gid}", json=patch(*renames))
    assert "3 PATCH operations on a group of 3 members" in scim_error(costly, 400, "tooMany")
    assert rows(engine, org_id) == before
    assert client.patch(f"{base}/Groups/{gid}", json=patch(*renames[:2])).status_code == 204


def test_patch_operations_are_bounded(costly, engine):
    client, base, org_id, ids = costly
    before = rows(engine, org_id)
    many = [{"op": "replace", "path": "title", "value": f"t{i}"} for i in range(1001)]
    refused = client.patch(f"{base}/Users/{ids[1]}", json=patch(*many))
    assert "1001 PATCH operations; at most 1000" in scim_error(refused, 400, "invalidValue")
    assert rows(engine, org_id) == before
    assert client.patch(f"{base}/Users/{ids[1]}", json=patch(*many[:1000])).status_code == 204


def test_sorts_and_scans_are_bounded_by_their_candidates(costly):
    client, base, _, _ = costly  # four users, at most three candidates
    # what only scim2-models can evaluate (in memory) is bounded by its candidates
    for params in ({"filter": "title pr"}, {"sortBy": "emails"}, {"sortBy": "active", "count": 1}):
        assert "more than 3 resources" in scim_error(client.get(f"{base}/Users", params=params), 400, "tooMany")
    search = {"schemas": [SEARCH], "sortBy": "emails"}
    scim_error(client.post(f"{base}/Users/.search", json=search), 400, "tooMany")
    # indexed filters and plain listings are not scans: served
    assert client.get(f"{base}/Users", params={"filter": 'userName eq "u1"', "sortBy": "title"}).json()["totalResults"] == 1
    assert client.get(f"{base}/Users", params={"count": 2}).json()["totalResults"] == 4


def test_a_sort_postgresql_orders_as_the_library_pages_in_sql(settings, engine):
    """Only the page is read: any number of resources; a value outside ASCII sends the sort back to memory."""
    small = settings.model_copy(update={"scim_max_candidates": 3})
    client, base, _ = client_for(small, engine)
    with client:
        titles = ["b", "B2", None, "a", "c"]
        for i, title in enumerate(titles):
            body = {"schemas": [USER], "userName": f"S{4 - i}", **({"title": title} if title else {})}
            assert client.post(f"{base}/Users", json=body).status_code == 201

        def names(**params):
            page = client.get(f"{base}/Users", params=params)
            assert page.status_code == 200, page.text
            assert page.json()["totalResults"] == 5
            return [r["userName"] for r in page.json().get("Resources", [])]

        assert names(sortBy="title") == ["S1", "S4", "S3", "S0", "S2"]  # without case; the one without a title last
        assert names(sortBy="title", sortOrder="descending", count=2) == ["S2", "S0"]
        assert names(sortBy="userName", startIndex=2, count=2) == ["S1", "S2"]
        search = client.post(f"{base}/Users/.search", json={"schemas": [SEARCH], "sortBy": "title", "count": 1})
        assert [r["userName"] for r in search.json()["Resources"]] == ["S1"]
        assert client.post(f"{base}/Users", json={"schemas": [USER], "userName": "S5", "title": "Émile"}).status_code == 201
        assert "more than 3 resources" in scim_error(client.get(f"{base}/Users", params={"sortBy": "title"}), 400, "tooMany")
        assert client.get(f"{base}/Users", params={"sortBy": "userName", "count": 1}).status_code == 200


@pytest.mark.parametrize("blank", ["", " ", "\t \n"])
def test_a_blank_user_name_is_invalid_on_every_write(costly, engine, blank):
    client, base, org_id, ids = costly
    before = rows(engine, org_id)
    scim_error(client.post(f"{base}/Users", json={"schemas": [USER], "userName": blank}), 400, "invalidValue")
    scim_error(client.put(f"{base}/Users/{ids[2]}", json={"schemas": [USER], "userName": blank}), 400, "invalidValue")
    replaced = client.patch(f"{base}/Users/{ids[2]}", json=patch({"op": "replace", "path": "userName", "value": blank}))
    assert "userName must not be empty" in scim_error(replaced, 400, "invalidValue")
    pathless = client.patch(f"{base}/Users/{ids[2]}", json=patch({"op": "Replace", "value": {"userName": blank}}))
    scim_error(pathless, 400, "invalidValue")
    assert rows(engine, org_id) == before
    assert client.get(f"{base}/Users/{ids[2]}").json()["userName"] == "u2"


def test_a_group_cannot_contain_itself_directly_or_through_nested_groups(costly, engine):
    client, base, org_id, _ = costly

    def group(name, *member_ids):
        body = {"schemas": [GROUP], "displayName": name, "members": [{"value": m, "type": "Group"} for m in member_ids]}
        created = client.post(f"{base}/Groups", json=body)
        assert created.status_code == 201, created.text
        return created.json()["id"]

    c = group("c")
    b = group("b", c)
    a = group("a", b)  # a > b > c: nesting is allowed
    before = rows(engine, org_id)
    itself = client.patch(f"{base}/Groups/{a}", json=patch({"op": "add", "path": "members", "value": [{"value": a}]}))
    assert "member of itself" in scim_error(itself, 400, "invalidValue")
    cycle = client.patch(f"{base}/Groups/{c}", json=patch({"op": "add", "path": "members", "value": [{"value": a}]}))
    assert "through nested groups" in scim_error(cycle, 400, "invalidValue")
    put = client.put(f"{base}/Groups/{b}", json={"schemas": [GROUP], "displayName": "b", "members": [{"value": c}, {"value": a}]})
    scim_error(put, 400, "invalidValue")
    assert rows(engine, org_id) == before
    assert [m["value"] for m in client.get(f"{base}/Groups/{c}").json().get("members", [])] == []


def _slow_listing(monkeypatch, seconds: float) -> None:
    """A listing whose SQL takes `seconds` (pg_sleep): the test hook for a slow query."""
    original = paging._plain_page

    def slow(storage, where, search_request):
        storage.conn.execute(text("SELECT pg_sleep(:s)"), {"s": seconds})
        return original(storage, where, search_request)

    monkeypatch.setattr(paging, "_plain_page", slow)


def sleeping(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'")).scalar_one()


def test_a_slow_request_is_cancelled_at_its_deadline_and_its_connection_returns(settings, monkeypatch):
    quick = settings.model_copy(update={"scim_request_deadline_seconds": 1.0, "db_pool_size": 3})
    own = make_engine(quick)  # its own pool, so what is checked out is this test's alone
    try:
        client, base, org_id = client_for(quick, own)
        with client:
            assert client.get(f"{base}/Users").status_code == 200
            _slow_listing(monkeypatch, 30)
            started = time.monotonic()
            late = client.get(f"{base}/Users")
            elapsed = time.monotonic() - started
            assert "past its 1 s deadline" in scim_error(late, 503)
            assert late.headers["Retry-After"] == "5"
            assert 0.9 < elapsed < 2.5, elapsed  # near its deadline, not the 30 s the statement asked for
            print(f"a 30 s statement under a 1 s deadline: {late.status_code} after {elapsed:.2f} s")
            wait_for(lambda: own.pool.checkedout() == 0, timeout=5, message="the connection back in the pool")
            assert sleeping(own) == 0  # PostgreSQL cancelled it; it does not run on
            monkeypatch.undo()
            for _ in range(5):  # every pooled connection still serves, without a leftover timeout
                assert client.get(f"{base}/Users").status_code == 200
    finally:
        own.dispose()


def test_python_side_work_is_bounded_by_the_deadline_too(settings, engine, monkeypatch):
    quick = settings.model_copy(update={"scim_request_deadline_seconds": 0.5})
    client, base, _ = client_for(quick, engine)
    with client:
        for i in range(3):
            client.post(f"{base}/Users", json={"schemas": [USER], "userName": f"slow{i}"})
        original = PgStorage._resource

        def slow(self, row, members=None):
            time.sleep(0.3)  # a costly evaluation, in Python, of each candidate
            return original(self, row, members)

        monkeypatch.setattr(PgStorage, "_resource", slow)
        monkeypatch.setattr("ingest.scim.paging.CHECK_EVERY", 1)
        started = time.monotonic()
        late = client.get(f"{base}/Users", params={"sortBy": "title"})
        assert late.status_code == 503 and time.monotonic() - started < 1.5, late.text


def test_the_ingest_engine_bounds_every_statement(settings):
    bounded = make_engine(settings.model_copy(update={"ingest_statement_timeout_seconds": 0.2}), pool_size=1, bounded=True)
    try:
        with bounded.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "200ms"
            assert conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar_one() == "30s"
            with pytest.raises(OperationalError, match="statement timeout"):
                conn.execute(text("SELECT pg_sleep(2)"))
    finally:
        bounded.dispose()


_STORED = """
INSERT INTO scim_resources (org_id, id, resource_type, version, data, user_name_ci, emails_ci)
VALUES (:org, :id, 'User', 1, CAST(:data AS jsonb), :name, CAST(:emails AS text[]))
"""


def _store_beyond_the_limits(engine, org_id: str, user_name: str, emails: int) -> str:
    """A user stored before the limits existed (no write path stores one now)."""
    import json
    import uuid

    user_id = uuid.uuid4().hex
    values = [{"value": f"{user_name}{i}@legacy.example", "type": "work"} for i in range(emails)]
    data = {"schemas": [USER], "userName": user_name, "emails": values, "id": user_id, "meta": {"resourceType": "User"}}
    with engine.begin() as conn:
        conn.execute(text(_STORED), {"org": org_id, "id": user_id, "data": json.dumps(data), "name": user_name,
                                     "emails": "{" + ",".join(v["value"] for v in values) + "}"})
    return user_id


def test_a_resource_stored_beyond_the_limits_is_not_served_but_can_be_replaced_or_deleted(settings, engine):
    client, base, org_id = client_for(settings, engine)
    with client:
        big = _store_beyond_the_limits(engine, org_id, "legacy", 10_000)
        other = _store_beyond_the_limits(engine, org_id, "legacy2", 101)
        detail = scim_error(client.get(f"{base}/Users/{big}"), 400, "tooMany")
        assert "holds 10000 values, more than the 100" in detail and "replace it (PUT) or delete it" in detail
        ok = client.post(f"{base}/Users", json={"schemas": [USER], "userName": "ok"}).json()["id"]
        scim_error(client.get(f"{base}/Users", params={"sortBy": "userName", "count": 1}), 400, "tooMany")  # on the page
        served = client.get(f"{base}/Users", params={"sortBy": "userName", "sortOrder": "descending", "count": 1})
        assert [r["userName"] for r in served.json()["Resources"]] == ["ok"]  # a page without them is served
        scim_error(client.get(f"{base}/Users", params={"filter": "emails pr", "sortBy": "userName"}), 400, "tooMany")
        untitled = client.get(f"{base}/Users", params={"filter": "title pr", "sortBy": "userName"})  # emails not read
        assert untitled.status_code == 200 and untitled.json()["totalResults"] == 0
        assert client.get(f"{base}/Users", params={"filter": 'userName eq "ok"', "sortBy": "title"}).status_code == 200
        assert client.delete(f"{base}/Users/{ok}").status_code == 204
        scim_error(client.get(f"{base}/Users", params={"filter": 'userName eq "legacy"'}), 400, "tooMany")
        scim_error(client.patch(f"{base}/Users/{big}", json=patch({"op": "replace", "path": "title", "value": "x"})), 400)
        replaced = client.put(f"{base}/Users/{big}", json={"schemas": [USER], "userName": "legacy",
                                                          "emails": [{"value": "legacy@legacy.example"}]})
        assert replaced.status_code == 200, replaced.text
        assert [e["value"] for e in client.get(f"{base}/Users/{big}").json()["emails"]] == ["legacy@legacy.example"]
        assert client.delete(f"{base}/Users/{other}").status_code == 204
        listed = client.get(f"{base}/Users").json()
        assert [r["userName"] for r in listed["Resources"]] == ["legacy"]
