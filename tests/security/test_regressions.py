"""Each 5xx the fuzzers found, replayed: now a clear 4xx (or a correct answer), nothing written."""

import json

import pytest

from tests.security.conftest import USER, snapshot

pytestmark = pytest.mark.security

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def scim(app_client, org, method, path, body=None, **kwargs):
    headers = {**org.scim_auth, "Content-Type": "application/scim+json"}
    content = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    return app_client.request(method, org.scim(path), headers=headers, content=content, **kwargs)


def test_nul_characters_are_refused_or_match_nothing(engine, app_client, org_a):
    """PostgreSQL refuses U+0000 in text and jsonb: it was a 500 in ids, values and filters."""
    before = snapshot(engine, org_a.id)
    assert scim(app_client, org_a, "GET", "/Users/%00").status_code == 404
    assert scim(app_client, org_a, "DELETE", "/Groups/a%00b").status_code == 404
    for body in ({"schemas": [USER], "userName": "nul\u0000x"}, {"schemas": [USER], "userName": "ok-nul", "title": "a\u0000"}):
        r = scim(app_client, org_a, "POST", "/Users", body)
        assert r.status_code == 400 and r.json()["scimType"] == "invalidValue" and "U+0000" in r.json()["detail"], r.text
    patch = {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": "\u0000"}]}]}
    r = scim(app_client, org_a, "PATCH", f"/Groups/{org_a.group_id}", patch)
    assert r.status_code == 400 and r.json()["scimType"] == "invalidValue", r.text
    found = scim(app_client, org_a, "GET", "/Users", params={"filter": r'userName eq "\u0000" or externalId eq "a\u0000"'})
    assert found.status_code == 200 and found.json()["totalResults"] == 0, found.text
    assert snapshot(engine, org_a.id) == before


def test_a_huge_start_index_is_invalid_value(app_client, org_a):
    """It overflowed PostgreSQL's OFFSET (plain listing) and orjson's integers (sorted listing)."""
    for params in ({"startIndex": "99999999999999999999"}, {"startIndex": "99999999999999999999", "sortBy": "userName"}):
        r = scim(app_client, org_a, "GET", "/Users", params=params)
        assert r.status_code == 400 and r.json()["scimType"] == "invalidValue", r.text
    search = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "startIndex": 99999999999999999999}
    assert scim(app_client, org_a, "POST", "/.search", search).status_code == 400


def test_a_path_outside_latin_1_gets_a_percent_encoded_location(app_client, org_a):
    """The Location header echoed the decoded path, and non-Latin-1 headers crashed the response."""
    r = scim(app_client, org_a, "GET", "/Users/%C3%A9%F0%9F%98%80")
    assert r.status_code == 404 and r.json()["schemas"] == [ERROR]
    assert r.headers["location"].endswith("/Users/%C3%A9%F0%9F%98%80")


def test_unrouted_paths_and_methods_get_json_errors(app_client, org_a):
    """A path with a line break matches no route, OPTIONS matched none: the router answered in plain text."""
    r = scim(app_client, org_a, "OPTIONS", "/Users")
    assert r.status_code == 405 and r.json()["schemas"] == [ERROR] and "GET" in r.headers["allow"], r.text
    r = scim(app_client, org_a, "GET", "/Users/a%0Ab")
    assert r.status_code == 404 and r.json()["schemas"] == [ERROR], r.text
    r = app_client.post("/admin/v1/org/conflicts/a%0Ab/acquire", headers=org_a.admin_auth)
    assert r.status_code == 404 and r.json() == {"status": 404, "detail": "no such endpoint"}, r.text


def test_admin_api_odd_times_and_bytes_are_422_or_served(app_client, org_a):
    """An offset beyond PostgreSQL's ±15:59 was a 500; a body that is not UTF-8 was an undocumented 400."""
    r = app_client.get("/admin/v1/org/scim-audit", params={"until": "2520-11-12T06:06:30.1+23:35"}, headers=org_a.admin_auth)
    assert r.status_code == 200, r.text
    r = app_client.get("/admin/v1/org/scim-audit", params={"since": "0001-01-01T00:00:00+23:00"}, headers=org_a.admin_auth)
    assert r.status_code == 422 and r.json()["detail"] == "query.since: out of range", r.text
    json_type = {**org_a.admin_auth, "Content-Type": "application/json"}
    r = app_client.patch("/admin/v1/org/settings", content=b"\xff", headers=json_type)
    assert r.status_code == 422 and "not valid JSON" in r.json()["detail"], r.text
