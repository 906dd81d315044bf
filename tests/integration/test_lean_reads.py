"""The lean User reads (ingest/scim/lean.py) answer exactly as the library does.

Two apps on the same database and org, one with `scim_lean_reads` and one without, get the same
requests; status, body and the headers the library sets must be equal. The users cover every
User attribute shape Entra ID and Okta send, the enterprise extension, a manager reference,
non-ASCII and escaped userNames, and a Kelvin sign (U+212A, which NFC makes an ASCII K); the
requests cover the lean ones and their near misses, which the library answers.
"""

import pytest
from starlette.testclient import TestClient

from ingest.app import create_app
from ingest.scim import lean
from tests.conftest import make_org
from tests.integration.test_scim_cost import _store_beyond_the_limits

pytestmark = pytest.mark.integration

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def _users(manager_id: str) -> list[dict]:
    return [
        {"schemas": [USER], "userName": "minimal@lean.example"},
        {"schemas": [USER, ENTERPRISE], "userName": "Entra.Shaped@Lean.Example", "externalId": "8f0c-AbC", "active": True,
         "displayName": "Entra Shaped", "title": "Engineer",
         "name": {"givenName": "Entra", "familyName": "Shaped", "formatted": "Entra Shaped"},
         "emails": [{"value": "Entra.Shaped@Lean.Example", "type": "work", "primary": True}],
         "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}, {"value": "+1 555 0101", "type": "mobile"}],
         "addresses": [{"type": "work", "streetAddress": "1 Main St", "locality": "Springfield", "postalCode": "12345",
                        "country": "US", "formatted": "1 Main St\nSpringfield"}],
         ENTERPRISE: {"department": "R&D", "employeeNumber": "1001", "costCenter": "CC1", "organization": "Org",
                      "division": "Div", "manager": {"value": manager_id}}},
        {"schemas": [USER], "userName": "okta.shaped@lean.example", "externalId": "00u1abcd", "active": False,
         "nickName": "okta", "profileUrl": "https://lean.example/okta", "userType": "Employee", "locale": "en-US",
         "preferredLanguage": "en", "timezone": "America/Los_Angeles",
         "name": {"givenName": "Okta", "familyName": "Shaped", "middleName": "M", "honorificPrefix": "Dr."},
         "emails": [{"value": "okta.shaped@lean.example", "type": "work", "primary": True},
                    {"value": "okta.home@lean.example", "type": "home"}],
         "ims": [{"value": "okta-im", "type": "xmpp"}], "photos": [{"value": "https://lean.example/p.png", "type": "photo"}],
         "entitlements": [{"value": "e1"}], "roles": [{"value": "admin", "primary": True}],
         "password": "not-returned-1A!"},
        {"schemas": [USER], "userName": "Zoë.Ünïcode@lean.example", "displayName": "Zoë Ünïcode", "externalId": "zoë"},
        {"schemas": [USER], "userName": 'o"brien\\back@lean.example', "externalId": 'q"uote'},
        {"schemas": [USER], "userName": "\u212aelvin@lean.example"},
    ]


@pytest.fixture(scope="module")
def clients(settings, engine):
    org = make_org(settings, engine)
    org.client.close()
    pair = []
    for lean_reads in (True, False):
        client = TestClient(create_app(settings.model_copy(update={"scim_lean_reads": lean_reads}), engine))
        client.headers.update({"Authorization": f"Bearer {org.token}", "Content-Type": "application/scim+json"})
        pair.append(client)
    base = f"/scim/{org.slug}/v2"
    with pair[0], pair[1]:
        manager = pair[1].post(f"{base}/Users", json={"schemas": [USER], "userName": "manager@lean.example"}).json()
        ids = []
        for body in _users(manager["id"]):
            created = pair[1].post(f"{base}/Users", json=body)
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        group = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "lean",
                 "members": [{"value": ids[0]}, {"value": ids[2]}]}
        assert pair[1].post(f"{base}/Groups", json=group).status_code == 201  # members: what a User's groups would show
        legacy = _store_beyond_the_limits(engine, org.id, "legacy@lean.example", 1000)
        yield pair[0], pair[1], base, [manager["id"], *ids], legacy


def answered_by(monkeypatch, lean_class) -> list[bool]:
    """Whether the lean path answered itself (not None), for each request of the test it serves."""
    answered: list[bool] = []
    original = lean_class.serve

    def spy(self, *args, **kwargs):
        response = original(self, *args, **kwargs)
        answered.append(response is not None)
        return response

    monkeypatch.setattr(lean_class, "serve", spy)
    return answered


@pytest.fixture
def served(monkeypatch):
    return answered_by(monkeypatch, lean.LeanReads)


def _same(lean_client: TestClient, library: TestClient, url: str, **params) -> dict:
    ours, theirs = lean_client.get(url, params=params), library.get(url, params=params)
    assert ours.status_code == theirs.status_code, (url, params, ours.text, theirs.text)
    assert ours.json() == theirs.json(), (url, params)
    for header in ("ETag", "Content-Location", "Content-Type"):
        assert ours.headers.get(header) == theirs.headers.get(header), (header, url, params)
    return ours.json()


def test_a_user_by_id_is_the_library_s_answer(clients, served):
    lean_client, library, base, ids, legacy = clients
    for user_id in ids:
        assert _same(lean_client, library, f"{base}/Users/{user_id}")["id"] == user_id
    assert served.count(True) >= len(ids) - 1  # all but the one holding a manager reference
    for missing in ("0" * 32, "x", "%00"):
        _same(lean_client, library, f"{base}/Users/{missing}")
    _same(lean_client, library, f"{base}/Users/{legacy}")  # stored beyond the limits: the library's 400
    _same(lean_client, library, f"{base}/Users/{ids[2]}", attributes="userName")


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_lookups_are_the_library_s_answers(clients, served):
    lean_client, library, base, ids, _ = clients
    users = [library.get(f"{base}/Users/{i}").json() for i in ids]
    for user in users:
        for name in (user["userName"], user["userName"].upper(), user["userName"].lower()):
            for params in ({}, {"startIndex": "1", "count": "100"}, {"count": "0"}, {"count": "1"}):
                found = _same(lean_client, library, f"{base}/Users", filter=f"userName eq {_quoted(name)}", **params)
                if params.get("count") != "0":
                    assert [r["id"] for r in found["Resources"]] == [user["id"]], (name, params)
        if "externalId" in user:
            for value in (user["externalId"], user["externalId"].upper()):
                _same(lean_client, library, f"{base}/Users", filter=f"externalId eq {_quoted(value)}")
    assert served.count(True) >= 3 * 4 * (len(users) - 1)  # all but the user holding a manager reference
    kelvin = _same(lean_client, library, f"{base}/Users", filter='userName eq "kelvin@lean.example"')
    assert kelvin["totalResults"] == 1  # NFC makes U+212A an ASCII K, for the lean path as for the library


@pytest.mark.parametrize("params", [
    {"filter": 'userName eq "nobody@lean.example"'},
    {"filter": 'USERNAME EQ "minimal@lean.example"'},
    {"filter": 'userName eq "minimal@lean.example"', "startIndex": "2"},
    {"filter": 'userName eq "minimal@lean.example"', "count": "-1"},
    {"filter": 'userName eq "minimal@lean.example"', "count": "100000"},
    {"filter": 'userName eq "minimal@lean.example"', "attributes": "userName"},
    {"filter": 'userName eq "minimal@lean.example"', "sortBy": "userName"},
    {"filter": 'userName eq "legacy@lean.example"'},
    {"filter": 'userName eq "bad\\escape"'},
    {"filter": 'userName eq "unterminated'},
    {"filter": 'userName co "lean"'},
    {"filter": 'displayName eq "Zoë Ünïcode"'},
    {"filter": "userName eq 42"},
    {"filter": 'emails.value eq "okta.home@lean.example"'},
    {"count": "1"},
])
def test_near_misses_are_the_library_s_answers(clients, params):
    lean_client, library, base, _, _ = clients
    _same(lean_client, library, f"{base}/Users", **params)
