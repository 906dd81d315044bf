"""Limits on SCIM requests, on the real PostgreSQL: filter length and depth, `count`, body size.

An ingest app of its own (in process) with small limits, so each is reached with a few rows.
"""

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from ingest.app import create_app
from tests.conftest import make_org

pytestmark = pytest.mark.integration

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


@pytest.fixture(scope="module")
def limited(settings, engine):
    small = settings.model_copy(update={"max_results": 2, "max_filter_length": 80, "max_filter_depth": 3, "max_body_bytes": 4096})
    org = make_org(small, engine)
    org.client.close()
    with TestClient(create_app(small, engine)) as client:
        client.headers.update({"Authorization": f"Bearer {org.token}", "Content-Type": "application/scim+json"})
        base = f"/scim/{org.slug}/v2"
        for name in ("u1", "u2", "u3"):
            assert client.post(f"{base}/Users", json={"schemas": [USER], "userName": name}).status_code == 201
        yield client, base, org


def rows(engine, org_id):
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT (SELECT count(*) FROM scim_resources WHERE org_id = :o), "
                "(SELECT count(*) FROM outbox WHERE payload->>'orgid' = :s)"
            ),
            {"o": org_id, "s": org_id},
        ).one()


def scim_error(response, status, scim_type=None):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["schemas"] == [ERROR] and body["status"] == str(status), body
    if scim_type:
        assert body["scimType"] == scim_type, body
    return body["detail"]


def test_count_is_capped_and_announced(limited):
    client, base, _ = limited
    spc = client.get(f"{base}/ServiceProviderConfig").json()
    assert spc["filter"] == {"supported": True, "maxResults": 2}
    for params in ({"count": 1000}, {"count": 99999999999999999999}, {}, {"count": 5, "sortBy": "userName"}):
        page = client.get(f"{base}/Users", params=params).json()
        assert page["totalResults"] == 3 and page["itemsPerPage"] == 2 and len(page["Resources"]) == 2, (params, page)
    search = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "count": 50}
    searched = client.post(f"{base}/Users/.search", json=search)
    assert searched.json()["itemsPerPage"] == 2
    rest = client.get(f"{base}/Users", params={"startIndex": 3, "count": 1000}).json()
    assert rest["itemsPerPage"] == 1  # the next page holds the rest


def test_long_or_deep_filters_are_invalid_filter_and_change_nothing(limited, engine):
    client, base, org = limited
    before = rows(engine, org.id)
    long_filter = 'userName eq "' + "x" * 80 + '"'
    too_long = client.get(f"{base}/Users", params={"filter": long_filter})
    assert "at most 80 are allowed" in scim_error(too_long, 400, "invalidFilter")
    deep = "not (not (not (not (title pr))))"
    too_deep = client.get(f"{base}/Groups", params={"filter": deep})
    assert "nests 4 levels deep; at most 3" in scim_error(too_deep, 400, "invalidFilter")
    bracketed = '((((userName eq "u1"))))'
    scim_error(client.get(f"{base}/Users", params={"filter": bracketed}), 400, "invalidFilter")
    search = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": deep}
    scim_error(client.post(f"{base}/.search", json=search), 400, "invalidFilter")
    user_id = client.get(f"{base}/Users", params={"filter": 'userName eq "u1"'}).json()["Resources"][0]["id"]
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "remove", "path": 'emails[not (not (not (not (type eq "work"))))]'}]}
    assert "path nests" in scim_error(client.patch(f"{base}/Users/{user_id}", json=patch), 400, "invalidPath")
    # at the limits, a filter is served
    assert client.get(f"{base}/Users", params={"filter": "not (not (not (title pr)))"}).status_code == 200
    assert rows(engine, org.id) == before


def test_start_index_beyond_any_org_is_invalid_value(limited):
    client, base, _ = limited
    for params in ({"startIndex": "99999999999999999999"}, {"startIndex": "99999999999999999999", "sortBy": "userName"}):
        assert "startIndex must be at most" in scim_error(client.get(f"{base}/Users", params=params), 400, "invalidValue")
    assert client.get(f"{base}/Users", params={"startIndex": 2147483647}).json()["Resources"] == []


def test_bodies_over_the_limit_are_413_scim_errors_and_change_nothing(limited, engine):
    client, base, org = limited
    before = rows(engine, org.id)
    big = {"schemas": [USER], "userName": "big", "displayName": "x" * 5000}
    assert "exceeds 4096 bytes" in scim_error(client.post(f"{base}/Users", json=big), 413)

    def chunks():  # no Content-Length: the limit holds for a streamed body too
        yield b'{"schemas": ["' + USER.encode() + b'"], "userName": "streamed", "title": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    scim_error(client.post(f"{base}/Users", content=chunks()), 413)
    assert rows(engine, org.id) == before
