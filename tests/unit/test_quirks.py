"""The IdP body normalizer, against the golden request fixtures of tests/fixtures/idp."""

import copy
import json
from pathlib import Path

import pytest

from ingest.scim.quirks import ENTERPRISE_USER, normalize_body

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "idp"
FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))
MANAGER = f"{ENTERPRISE_USER}:manager"


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def resource_type(path: str) -> str:
    return {"Users": "User", "Groups": "Group"}[path.strip("/").split("/")[0]]


def normalize(fixture: dict) -> dict:
    request = fixture["request"]
    return normalize_body(resource_type(request["path"]), request["method"], request["body"])


def operations(name: str) -> list[dict]:
    return normalize(load(name))["Operations"]


def test_there_are_fixtures_from_each_idp():
    names = {f.name.split("-")[0] for f in FIXTURE_FILES}
    assert {"entra", "okta", "onelogin"} <= names


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.stem)
def test_fixture_is_golden(path):
    fixture = json.loads(path.read_text())
    assert isinstance(fixture["_quirk"], str) and fixture["_quirk"]
    assert fixture["request"]["method"] in ("POST", "PUT", "PATCH")
    original = copy.deepcopy(fixture["request"]["body"])

    assert normalize(fixture) == fixture["normalized"]
    assert fixture["request"]["body"] == original, "the input body was mutated"


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.stem)
def test_normalizing_twice_changes_nothing(path):
    fixture = json.loads(path.read_text())
    rt = resource_type(fixture["request"]["path"])
    once = normalize(fixture)
    assert normalize_body(rt, fixture["request"]["method"], once) == once


# -- What the library already accepts passes through untouched ---------------


@pytest.mark.parametrize(
    "name",
    [
        "entra-patch-disable-user-string-bool",
        "entra-patch-add-single-value",
        "entra-patch-replace-multiple",
        "entra-patch-pathless-dotted",
        "okta-patch-deactivate",
        "okta-patch-group-rename",
    ],
)
def test_shapes_the_library_accepts_are_left_alone(name):
    fixture = load(name)
    assert normalize(fixture) == fixture["request"]["body"]


def test_op_case_and_string_booleans_are_left_to_the_library():
    ops = operations("entra-patch-disable-user-string-bool")
    assert ops == [{"op": "Replace", "path": "active", "value": "False"}]


# -- Member removal by value (Entra without aadOptscim062020) ----------------


def test_remove_with_value_becomes_one_filtered_remove_per_member():
    assert operations("entra-patch-remove-member") == [
        {"op": "remove", "path": 'members[value eq "u1091"]'}
    ]
    assert [op["path"] for op in operations("entra-patch-remove-members-ref-null")] == [
        'members[value eq "f648f8d5ea4e4cd38e9c"]',
        'members[value eq "a99962b9f99d4c4fac67"]',
    ]


def test_filtered_remove_from_the_flagged_entra_is_kept():
    fixture = load("entra-aadopt-patch-remove-member")
    assert normalize(fixture) == fixture["request"]["body"]


def test_member_ids_are_quoted_as_filter_strings():
    body = {"Operations": [{"op": "remove", "path": "members", "value": [{"value": 'a"b\\c'}]}]}
    [op] = normalize_body("Group", "PATCH", body)["Operations"]
    assert op["path"] == 'members[value eq "a\\"b\\\\c"]'


def test_remove_with_a_value_of_unknown_shape_is_left_for_the_library_to_refuse():
    body = {"Operations": [{"op": "remove", "path": "members", "value": [{"display": "x"}]}]}
    assert normalize_body("Group", "PATCH", body) == body


def test_other_operations_keep_their_order_around_a_split_remove():
    body = {
        "Operations": [
            {"op": "replace", "path": "displayName", "value": "n"},
            {"op": "Remove", "path": "members", "value": [{"value": "a"}, {"value": "b"}]},
            {"op": "add", "path": "members", "value": [{"value": "c"}]},
        ]
    }
    ops = normalize_body("Group", "PATCH", body)["Operations"]
    assert [op["op"] for op in ops] == ["replace", "remove", "remove", "add"]


# -- Manager -----------------------------------------------------------------


def test_unqualified_manager_path_and_array_value_are_rewritten():
    [op] = operations("entra-patch-add-manager")
    assert op["path"] == MANAGER
    assert op["value"]["value"] == "00aa00aa-bb11-cc22-dd33-44ee44ee44ee"


def test_bare_string_manager_becomes_a_complex_value():
    [op] = operations("entra-patch-manager-string")
    manager_id = "2c2f6fb8-254f-492e-b7fe-c09c5a61c8a2"
    assert op["value"] == {"value": manager_id, "$ref": f"Users/{manager_id}"}
    body = normalize(load("entra-post-user-manager-string"))
    assert body[ENTERPRISE_USER]["manager"] == {"value": "{manager_id}", "$ref": "Users/{manager_id}"}


def test_object_manager_is_kept():
    body = normalize(load("onelogin-post-user"))
    assert body[ENTERPRISE_USER]["manager"]["value"] == "{manager_id}"


def test_empty_manager_is_dropped_in_a_resource():
    body = normalize(load("onelogin-post-user-no-manager"))
    assert "manager" not in body[ENTERPRISE_USER]


@pytest.mark.parametrize("empty", ["", "  ", {"value": ""}, [{"value": " ", "$ref": None}], None])
def test_empty_manager_in_a_patch_becomes_a_remove(empty):
    body = {"Operations": [{"op": "Replace", "path": MANAGER, "value": empty}]}
    assert normalize_body("User", "PATCH", body)["Operations"] == [{"op": "remove", "path": MANAGER}]


def test_manager_in_a_pathless_value_is_normalized():
    body = {
        "Operations": [
            {"op": "replace", "value": {"displayName": "D", MANAGER: "m1"}},
            {"op": "replace", "value": {ENTERPRISE_USER: {"manager": "", "department": "X"}}},
            {"op": "replace", "value": {MANAGER: ""}},
        ]
    }
    assert normalize_body("User", "PATCH", body)["Operations"] == [
        {"op": "replace", "value": {"displayName": "D", MANAGER: {"value": "m1", "$ref": "Users/m1"}}},
        {"op": "replace", "value": {ENTERPRISE_USER: {"department": "X"}}},
        {"op": "remove", "path": MANAGER},
        {"op": "remove", "path": MANAGER},
    ]


def test_unqualified_enterprise_paths_are_qualified_for_users_only():
    body = {"Operations": [{"op": "replace", "path": "employeeNumber", "value": "7"}]}
    [op] = normalize_body("User", "PATCH", body)["Operations"]
    assert op["path"] == f"{ENTERPRISE_USER}:employeeNumber"
    assert normalize_body("Group", "PATCH", body) == body
    core = {"Operations": [{"op": "replace", "path": "name.givenName", "value": "x"}]}
    assert normalize_body("User", "PATCH", core) == core


# -- Nulls, read-only attributes, undeclared schemas (POST/PUT) ---------------


def test_nulls_are_dropped_at_any_depth():
    body = normalize(load("entra-post-user-nulls"))
    assert not {"addresses", "phoneNumbers", "title", "department", "manager"} & set(body)
    members = normalize_body(
        "Group", "POST", {"displayName": "g", "members": [{"$ref": None, "value": "u"}, None]}
    )["members"]
    assert members == [{"value": "u"}]


def test_read_only_attributes_are_dropped_but_password_is_kept():
    body = normalize(load("okta-post-user"))
    assert "groups" not in body and body["password"] == "1mz050nq"
    body = normalize(load("okta-put-user"))
    assert not {"id", "meta", "groups"} & set(body)
    body = normalize(load("okta-put-group"))
    assert not {"id", "meta"} & set(body) and body["members"]


def test_malformed_read_only_values_are_dropped():
    body = {"userName": "u", "id": 123, "meta": {"created": "not-a-date"}}
    assert normalize_body("User", "POST", body) == {"userName": "u"}


def test_extension_uris_without_attributes_are_dropped():
    assert normalize(load("entra-post-group"))["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:Group"]
    kept = normalize(load("entra-post-user-manager-string"))["schemas"]
    assert ENTERPRISE_USER in kept


def test_patch_bodies_keep_their_nulls_and_read_only_keys():
    body = {"Operations": [{"op": "replace", "path": "title", "value": None}]}
    assert normalize_body("User", "PATCH", body) == body


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_other_methods_pass_through(method):
    body = {"id": "x", "meta": None}
    assert normalize_body("User", method, body) == body


def test_unknown_resource_type_passes_through():
    body = {"id": "x", "meta": None}
    assert normalize_body("Device", "POST", body) == body
