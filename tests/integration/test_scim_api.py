"""The SCIM service provider over real HTTP and the real PostgreSQL (RFC 7644)."""

import concurrent.futures
import json

import pytest
from sqlalchemy import text

from events.catalogue import BY_TYPE
from tests.unit.test_event_schemas import validator

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

pytestmark = pytest.mark.integration


def new_user(client, user_name, **extra):
    body = {"schemas": [USER], "userName": user_name, "active": True, **extra}
    r = client.post("/Users", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def outbox_payloads(engine, org_id):
    with engine.connect() as conn:
        return [
            row[0]
            for row in conn.execute(text("SELECT payload FROM outbox WHERE payload->>'orgid' = :o ORDER BY id"), {"o": org_id})
        ]


def outbox_types(engine, org_id):
    with engine.connect() as conn:
        return [
            row[0]
            for row in conn.execute(
                text("SELECT payload->>'type' FROM outbox WHERE payload->>'orgid' = :o ORDER BY id"), {"o": org_id}
            )
        ]


def test_discovery_endpoints(scim_org):
    spc = scim_org.client.get("/ServiceProviderConfig").json()
    assert spc["patch"]["supported"] is True and spc["etag"]["supported"] is True
    assert spc["filter"]["maxResults"] > 0
    types = scim_org.client.get("/ResourceTypes").json()
    assert {r["name"] for r in types["Resources"]} == {"User", "Group"}
    schemas = scim_org.client.get("/Schemas").json()
    assert ENTERPRISE in {s["id"] for s in schemas["Resources"]}
    # RFC 7643 §8.7.1's names and descriptions
    described = {s["id"]: (s["name"], s["description"]) for s in schemas["Resources"]}
    assert described == {
        "urn:ietf:params:scim:schemas:core:2.0:User": ("User", "User Account"),
        "urn:ietf:params:scim:schemas:core:2.0:Group": ("Group", "Group"),
        ENTERPRISE: ("EnterpriseUser", "Enterprise User"),
    }
    one = scim_org.client.get(f"/Schemas/{ENTERPRISE}").json()
    assert one["description"] == "Enterprise User"


def test_create_then_lookup_by_username_externalid_and_email(scim_org):
    c = scim_org.client
    assert c.get("/Users", params={"filter": 'userName eq "ALICE@example.com"'}).json()["totalResults"] == 0
    user = new_user(
        c, "alice@example.com", externalId="ext-1", emails=[{"value": "Alice@Example.com", "type": "work", "primary": True}]
    )
    assert user["meta"]["location"].endswith(f"/Users/{user['id']}")
    for expr in (
        'userName eq "ALICE@example.com"', 'externalId eq "ext-1"',
        'emails[type eq "work"].value eq "alice@example.com"', 'emails.value eq "ALICE@EXAMPLE.COM"',
    ):
        found = c.get("/Users", params={"filter": expr}).json()
        assert found["totalResults"] == 1, expr
        assert found["Resources"][0]["id"] == user["id"]
    assert c.get("/Users", params={"filter": 'externalId eq "EXT-1"'}).json()["totalResults"] == 0  # case-exact


def _stored_emails(engine, org_id, user_id):
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT data->'emails' AS emails, emails_ci FROM scim_resources WHERE org_id = :o AND id = :i"),
            {"o": org_id, "i": user_id},
        ).one()
    return [e["value"] for e in row.emails], row.emails_ci


def test_email_values_are_kept_exactly_as_sent_and_compared_case_insensitively(scim_org, engine):
    c = scim_org.client
    sent = [{"value": "User15@BCheck.example", "type": "work", "primary": True}, {"value": "Home.Me@Ünï.Example", "type": "home"}]
    as_sent = [e["value"] for e in sent]
    user = new_user(c, "user15", emails=sent)
    assert [e["value"] for e in user["emails"]] == as_sent
    assert [e["value"] for e in c.get(f"/Users/{user['id']}").json()["emails"]] == as_sent
    assert _stored_emails(engine, scim_org.id, user["id"]) == (as_sent, ["home.me@ünï.example", "user15@bcheck.example"])
    for expr in ('emails.value eq "user15@bcheck.example"', 'emails[type eq "work"].value eq "USER15@BCHECK.EXAMPLE"',
                 'emails.value sw "user15@B"', 'emails.value eq "home.me@ünï.example"'):  # fmt: skip
        found = c.get("/Users", params={"filter": expr}).json()
        assert [u["id"] for u in found["Resources"]] == [user["id"]], expr
        assert found["Resources"][0]["emails"][0]["value"] == "User15@BCheck.example"
    ops = [{"op": "replace", "path": 'emails[type eq "work"].value', "value": "Renamed.User@BCheck.EXAMPLE"}]
    r = c.patch(f"/Users/{user['id']}", json={"schemas": [PATCH], "Operations": ops})
    assert r.status_code in (200, 204), r.text
    assert c.get(f"/Users/{user['id']}").json()["emails"][0]["value"] == "Renamed.User@BCheck.EXAMPLE"
    body = {"schemas": [USER], "userName": "user15", "emails": [{"value": " Put@Case.Example "}]}
    put = c.put(f"/Users/{user['id']}", json=body)
    assert put.status_code == 200 and put.json()["emails"] == [{"value": "Put@Case.Example"}], put.text  # trimmed only
    # the events carry the address as sent too
    emails = [(p["type"], p["data"]["email"]) for p in outbox_payloads(engine, scim_org.id)]
    assert emails == [
        ("io.provisioner.user.created", "User15@BCheck.example"),
        ("io.provisioner.user.updated", "Renamed.User@BCheck.EXAMPLE"),
        ("io.provisioner.user.updated", "Put@Case.Example"),
    ]


@pytest.mark.parametrize("value", ["not-an-email", "Alice <alice@example.com>", "two@@example.com", "a@b"])
def test_an_email_value_that_is_not_an_address_is_refused_and_changes_nothing(scim_org, engine, value):
    r = scim_org.client.post("/Users", json={"schemas": [USER], "userName": "bad-email", "emails": [{"value": value}]})
    assert r.status_code == 400, r.text
    assert r.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert scim_org.client.get("/Users", params={"filter": 'userName eq "bad-email"'}).json()["totalResults"] == 0
    assert outbox_types(engine, scim_org.id) == []


def test_every_filter_operator(scim_org):
    c = scim_org.client
    new_user(c, "ann", displayName="Ann A", title="Engineer")
    new_user(c, "bob", displayName="Bob B")
    new_user(c, "carl", displayName="Carl C", title="Manager", active=False)

    def names(expr):
        r = c.get("/Users", params={"filter": expr})
        assert r.status_code == 200, r.text
        return sorted(u["userName"] for u in r.json()["Resources"])

    assert names('userName ne "bob"') == ["ann", "carl"]
    assert names('displayName co "b b"') == ["bob"]
    assert names('userName sw "c"') == ["carl"]
    assert names('userName ew "b"') == ["bob"]
    assert names("title pr") == ["ann", "carl"]
    assert names('userName gt "ann"') == ["bob", "carl"]
    assert names('userName ge "bob"') == ["bob", "carl"]
    assert names('userName lt "bob"') == ["ann"]
    assert names('userName le "bob"') == ["ann", "bob"]
    assert names('title pr and not (active eq false)') == ["ann"]
    assert names('(userName eq "ann" or userName eq "bob") and displayName sw "B"') == ["bob"]


def test_pagination_sorting_and_attribute_selection(scim_org):
    c = scim_org.client
    for name in ("u3", "u1", "u2", "u5", "u4"):
        new_user(c, name)
    page = c.get("/Users", params={"sortBy": "userName", "sortOrder": "descending", "startIndex": 2, "count": 2}).json()
    assert page["totalResults"] == 5 and page["startIndex"] == 2 and page["itemsPerPage"] == 2
    assert [u["userName"] for u in page["Resources"]] == ["u4", "u3"]
    plain = c.get("/Users", params={"count": 2, "attributes": "userName"}).json()
    assert plain["totalResults"] == 5 and len(plain["Resources"]) == 2
    assert set(plain["Resources"][0]) <= {"id", "userName", "schemas"}
    excluded = c.get("/Users", params={"excludedAttributes": "emails,meta", "filter": 'userName eq "u1"'}).json()
    assert "meta" not in excluded["Resources"][0]


def test_post_search_endpoint(scim_org):
    new_user(scim_org.client, "searched")
    r = scim_org.client.post(
        "/Users/.search",
        json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": 'userName eq "searched"'},
    )
    assert r.status_code == 200, r.text
    assert r.json()["totalResults"] == 1


def test_put_replaces_and_patch_paths(scim_org):
    c = scim_org.client
    user = new_user(c, "dora", name={"givenName": "Dora"}, emails=[{"value": "d@x.com", "type": "work"}])
    put = c.put(f"/Users/{user['id']}", json={"schemas": [USER], "userName": "dora", "displayName": "Dora E", "active": True})
    assert put.status_code == 200, put.text
    assert "emails" not in put.json() and put.json()["displayName"] == "Dora E"
    ops = [
        {"op": "add", "path": "emails", "value": [{"value": "dora@work.com", "type": "work", "primary": True}]},
        {"op": "replace", "path": "name.familyName", "value": "Explorer"},
        {"op": "replace", "path": f"{ENTERPRISE}:department", "value": "R&D"},
    ]
    r = c.patch(f"/Users/{user['id']}", json={"schemas": [PATCH], "Operations": ops})
    assert r.status_code in (200, 204), r.text
    got = c.get(f"/Users/{user['id']}").json()
    assert got["name"]["familyName"] == "Explorer"
    assert got[ENTERPRISE]["department"] == "R&D"
    assert got["emails"][0]["value"] == "dora@work.com"


def test_etags_and_if_match(scim_org):
    c = scim_org.client
    user = new_user(c, "eve")
    r = c.get(f"/Users/{user['id']}")
    etag = r.headers["ETag"]
    assert etag == user["meta"]["version"]
    patch = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "displayName", "value": "Eve"}]}
    assert c.patch(f"/Users/{user['id']}", json=patch, headers={"If-Match": 'W/"999"'}).status_code == 412
    assert c.patch(f"/Users/{user['id']}", json=patch, headers={"If-Match": etag}).status_code in (200, 204)
    assert c.get(f"/Users/{user['id']}", headers={"If-None-Match": etag}).status_code == 200  # changed since
    fresh = c.get(f"/Users/{user['id']}").headers["ETag"]
    assert fresh != etag
    assert c.get(f"/Users/{user['id']}", headers={"If-None-Match": fresh}).status_code == 304


def test_delete_then_404_and_event(scim_org, engine):
    c = scim_org.client
    user = new_user(c, "fred")
    assert c.delete(f"/Users/{user['id']}").status_code == 204
    assert c.get(f"/Users/{user['id']}").status_code == 404
    assert outbox_types(engine, scim_org.id)[-1] == "io.provisioner.user.deleted"


def test_each_write_commits_its_events(scim_org, engine):
    c = scim_org.client
    user = new_user(c, "gina")
    patch = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]}
    assert c.patch(f"/Users/{user['id']}", json=patch).status_code in (200, 204)
    group = c.post("/Groups", json={"schemas": [GROUP], "displayName": "Ops", "members": [{"value": user["id"]}]})
    assert group.status_code == 201, group.text
    assert outbox_types(engine, scim_org.id) == [
        "io.provisioner.user.created",
        "io.provisioner.user.deactivated",
        "io.provisioner.group.created",
        "io.provisioner.group.member.added",
    ]
    for payload in outbox_payloads(engine, scim_org.id):  # what the relay will publish meets the contract
        validator(BY_TYPE[payload["type"]].schema).validate(payload)


def test_member_events_announce_the_stored_resource_type(scim_org, engine):
    c = scim_org.client
    inner = c.post("/Groups", json={"schemas": [GROUP], "displayName": "Inner"}).json()
    outer = c.post("/Groups", json={"schemas": [GROUP], "displayName": "Outer", "members": [{"value": inner["id"]}]})
    assert outer.status_code == 201, outer.text
    added = [p for p in outbox_payloads(engine, scim_org.id) if p["type"] == "io.provisioner.group.member.added"]
    assert [(p["data"]["member_id"], p["data"]["member_type"]) for p in added] == [(inner["id"], "Group")]
    # deleting the inner group takes it out of the outer one
    assert c.delete(f"/Groups/{inner['id']}").status_code == 204
    assert "members" not in c.get(f"/Groups/{outer.json()['id']}").json()


def test_concurrent_member_patches_lose_nobody(scim_org):
    c = scim_org.client
    users = [new_user(c, f"m{i}")["id"] for i in range(24)]
    group = c.post("/Groups", json={"schemas": [GROUP], "displayName": "Everyone"}).json()

    def add(uid):
        body = {"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]}
        return c.patch(f"/Groups/{group['id']}", json=body).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(add, users))
    assert all(s in (200, 204) for s in statuses), statuses
    members = c.get(f"/Groups/{group['id']}").json()["members"]
    assert sorted(m["value"] for m in members) == sorted(users)


def test_remove_one_member_keeps_the_others(scim_org):
    c = scim_org.client
    a, b, d = (new_user(c, n)["id"] for n in ("ra", "rb", "rd"))
    trio = [{"value": a}, {"value": b}, {"value": d}]
    group = c.post("/Groups", json={"schemas": [GROUP], "displayName": "Trio", "members": trio}).json()
    body = {"schemas": [PATCH], "Operations": [{"op": "remove", "path": f'members[value eq "{b}"]'}]}
    assert c.patch(f"/Groups/{group['id']}", json=body).status_code in (200, 204)
    assert sorted(m["value"] for m in c.get(f"/Groups/{group['id']}").json()["members"]) == sorted([a, d])


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "scim_type"),
    [
        ("POST", "/Users", b"{not json", 400, "invalidSyntax"),
        ("POST", "/Users", json.dumps({"schemas": [USER]}).encode(), 400, None),
        ("POST", "/Users", json.dumps({"schemas": ["urn:wrong"], "userName": "x"}).encode(), 400, None),
        ("GET", '/Users?filter=userName eq', None, 400, "invalidFilter"),
        ("GET", '/Users?filter=nosuch eq "x"', None, 400, "invalidFilter"),
    ],
)
def test_bad_input_gets_scim_error_and_changes_nothing(scim_org, engine, method, path, body, status, scim_type):
    r = scim_org.client.request(method, path, content=body)
    assert r.status_code == status, r.text
    error = r.json()
    assert error["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    if scim_type:
        assert error["scimType"] == scim_type
    assert outbox_types(engine, scim_org.id) == []


def test_patch_on_unknown_or_readonly_path_is_refused(scim_org, engine):
    c = scim_org.client
    user = new_user(c, "hank")
    for op, status in (
        ({"op": "replace", "path": "nosuchattr", "value": "x"}, 400),
        ({"op": "replace", "path": "id", "value": "x"}, 400),
        ({"op": "explode", "path": "userName", "value": "x"}, 400),
    ):
        r = c.patch(f"/Users/{user['id']}", json={"schemas": [PATCH], "Operations": [op]})
        assert r.status_code == status, (op, r.text)
    assert outbox_types(engine, scim_org.id) == ["io.provisioner.user.created"]


def test_duplicate_username_is_409_uniqueness(scim_org):
    new_user(scim_org.client, "ivy")
    r = scim_org.client.post("/Users", json={"schemas": [USER], "userName": "IVY"})
    assert r.status_code == 409 and r.json()["scimType"] == "uniqueness"


def test_oversized_body_is_413(scim_org, settings):
    big = {"schemas": [USER], "userName": "big", "displayName": "x" * (settings.max_body_bytes + 10)}
    assert scim_org.client.post("/Users", json=big).status_code == 413


def test_wrong_or_missing_token_is_401(scim_org):
    for headers in ({"Authorization": "Bearer nope"}, {"Authorization": ""}, {"Authorization": f"Basic {scim_org.token}"}):
        r = scim_org.client.get("/Users", headers=headers)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_tenant_isolation(scim_org, other_org):
    mine = new_user(scim_org.client, "shared-name")
    theirs = new_user(other_org.client, "shared-name")  # same userName in two orgs is fine
    assert mine["id"] != theirs["id"]
    assert other_org.client.get(f"/Users/{mine['id']}").status_code == 404
    assert other_org.client.delete(f"/Users/{mine['id']}").status_code == 404
    patch = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]}
    assert other_org.client.patch(f"/Users/{mine['id']}", json=patch).status_code == 404
    found = other_org.client.get("/Users").json()
    assert [u["id"] for u in found["Resources"]] == [theirs["id"]]
    # a token used on another org's URL is refused outright
    r = other_org.client.get(scim_org.base_url + "/Users")
    assert r.status_code == 401
    # another org's user cannot become a member of my group
    g = other_org.client.post("/Groups", json={"schemas": [GROUP], "displayName": "G", "members": [{"value": mine["id"]}]})
    assert g.status_code == 400


def test_token_rotation_keeps_old_token_during_overlap(scim_org, engine, settings):
    from domain import orgs

    new = orgs.rotate_token(engine, scim_org.slug, overlap_seconds=3600)
    assert scim_org.client.get("/Users").status_code == 200
    assert scim_org.client.get("/Users", headers={"Authorization": f"Bearer {new}"}).status_code == 200
    newer = orgs.rotate_token(engine, scim_org.slug, overlap_seconds=0)
    assert scim_org.client.get("/Users").status_code == 401
    assert scim_org.client.get("/Users", headers={"Authorization": f"Bearer {newer}"}).status_code == 200


def test_a_group_patch_answers_204_with_the_etag_a_get_then_shows_or_the_group_when_asked(scim_org):
    c = scim_org.client
    users = [new_user(c, f"gp{i}") for i in range(3)]
    group = c.post("/Groups", json={"schemas": [GROUP], "displayName": "Patched"}).json()
    add = {"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": u["id"]} for u in users[:2]]}]}
    r = c.patch(f"/Groups/{group['id']}", json=add, headers={"If-Match": group["meta"]["version"]})
    assert r.status_code == 204 and not r.content
    got = c.get(f"/Groups/{group['id']}")
    assert r.headers["ETag"] == got.headers["ETag"] == got.json()["meta"]["version"] != group["meta"]["version"]
    assert sorted(m["value"] for m in got.json()["members"]) == sorted(u["id"] for u in users[:2])
    one_more = {"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": users[2]["id"]}]}]}
    asked = c.patch(f"/Groups/{group['id']}?attributes=members", json=one_more, headers={"If-Match": r.headers["ETag"]})
    assert asked.status_code == 200, asked.text
    body = asked.json()
    assert sorted(m["value"] for m in body["members"]) == sorted(u["id"] for u in users)
    assert asked.headers["ETag"] == c.get(f"/Groups/{group['id']}").headers["ETag"]
