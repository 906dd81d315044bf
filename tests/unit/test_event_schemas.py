"""Every lifecycle event the SCIM ingest builds matches its JSON Schema in `schemas/events/`.

The schemas are the contract with the teams that consume the lifecycle topic: the events are
built by the real code (`ingest.scim.changes`), encoded as they go on the wire, and validated
with `$ref`s resolved from the schema files only (no network). Broken events must fail, so a
change to the payload that the schemas do not follow turns this test red.
"""

import copy
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

from events import catalogue as c
from events.envelope import Event, encode
from ingest.scim.changes import OrgRef, group_events, user_events

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "events"
BASE_URI = "https://provisioner.dev/schemas/events/"
ENVELOPE = "envelope.json"

ORG = OrgRef("3f0c2a8e-5b7d-4e1a-9c6f-2d8b7a1e4c90", "acme", "req-7f3a")
ORG_WITHOUT_REQUEST = OrgRef("3f0c2a8e-5b7d-4e1a-9c6f-2d8b7a1e4c90", "acme")

ALICE_ID = "5c1e0d2b9a8f4e3d8c7b6a5f4e3d2c1b"
BOB_ID = "0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d"
NESTED_ID = "7e6d5c4b3a2f4e1d9c8b7a6f5e4d3c2b"
GROUP_ID = "9f8e7d6c5b4a4f3e2d1c0b9a8f7e6d5c"

ALICE = {
    "userName": "alice@acme.example",
    "externalId": "00u1a2b3c4",
    "name": {"givenName": "Alice", "familyName": "Liddell", "formatted": "Alice Liddell"},
    "emails": [{"value": "alice@home.example", "type": "home"}, {"value": "Alice@acme.example", "primary": True}],
    "active": True,
}
BOB = {"userName": "bob"}  # the minimum: every optional attribute of the snapshot is null


# -- the schemas -----------------------------------------------------------------------------


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


SCHEMAS: dict[str, dict[str, Any]] = {p.name: _load(p) for p in sorted(SCHEMA_DIR.glob("*.json"))}
REGISTRY: Registry = Registry().with_resources(
    (schema["$id"], Resource.from_contents(schema)) for schema in SCHEMAS.values()
)


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(
        SCHEMAS[name], registry=REGISTRY, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def on_the_wire(event: Event) -> dict[str, Any]:
    """The event as a consumer parses it from the Kafka record value."""
    return orjson.loads(encode(event))


# -- the events, built by the real code --------------------------------------------------------


def user_lifecycle(org: OrgRef = ORG) -> list[Event]:
    renamed = {**ALICE, "displayName": "Alice L."}
    off = {**renamed, "active": False}
    return [
        *user_events(org, ALICE_ID, None, ALICE, 1),  # created
        *user_events(org, ALICE_ID, ALICE, renamed, 2),  # updated
        *user_events(org, ALICE_ID, renamed, off, 3),  # deactivated
        *user_events(org, ALICE_ID, off, renamed, 4),  # reactivated
        *user_events(org, ALICE_ID, renamed, {**renamed, "userName": "a.l", "active": False}, 5),  # updated + deactivated
        *user_events(org, ALICE_ID, renamed, None, 6),  # deleted
        *user_events(org, BOB_ID, None, BOB, 1),  # created, nulls everywhere
        *user_events(org, BOB_ID, BOB, None, 2),  # deleted
    ]


def group_lifecycle(org: OrgRef = ORG) -> list[Event]:
    eng = {"displayName": "Eng", "externalId": "grp-42"}
    engineering = {"displayName": "Engineering", "externalId": "grp-42"}
    created_with = {ALICE_ID: "User", NESTED_ID: "Group"}
    later = {BOB_ID: "User", NESTED_ID: "Group"}
    return [
        *group_events(org, GROUP_ID, None, eng, {}, created_with, 1),  # created + 2 members added
        *group_events(org, GROUP_ID, eng, engineering, created_with, later, 2),  # renamed + added + removed
        *group_events(org, GROUP_ID, engineering, engineering, later, {}, 3),  # only members removed
        *group_events(org, GROUP_ID, engineering, None, {}, {}, 4),  # deleted
        *group_events(org, NESTED_ID, None, {}, {}, {}, 1),  # created without a displayName
        *group_events(org, NESTED_ID, {}, {"displayName": "Named"}, {}, {}, 2),  # renamed from null
    ]


EVENTS: list[Event] = [*user_lifecycle(), *group_lifecycle(), *user_lifecycle(ORG_WITHOUT_REQUEST)]


def _event_id(event: Event) -> str:
    return f"{event.kind.name}:{event.subject}@{event.resource_version}:{'corr' if event.correlation_id else 'nocorr'}"


def one(kind: c.EventType) -> dict[str, Any]:
    """A real event of this type, as a consumer receives it."""
    return on_the_wire(next(e for e in EVENTS if e.kind is kind))


# -- the catalogue and the files agree ---------------------------------------------------------


def test_every_catalogue_entry_has_a_schema_file_and_every_file_is_in_the_catalogue():
    expected = {kind.schema for kind in c.ALL} | {ENVELOPE}
    assert set(SCHEMAS) == expected


def test_every_schema_is_a_valid_draft_2020_12_schema_with_its_id():
    for name, schema in SCHEMAS.items():
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", name
        assert schema["$id"] == BASE_URI + name, name
        assert schema.get("description"), name


def test_the_envelope_lists_exactly_the_catalogue_types():
    assert SCHEMAS[ENVELOPE]["properties"]["type"]["enum"] == [kind.type for kind in c.ALL]


@pytest.mark.parametrize("kind", c.ALL, ids=lambda k: k.name)
def test_each_event_schema_extends_the_envelope_and_pins_its_type(kind: c.EventType):
    schema = SCHEMAS[kind.schema]
    ref, own = schema["allOf"]
    assert ref == {"$ref": ENVELOPE}
    assert own["properties"]["type"] == {"const": kind.type}
    assert own["properties"]["dataschema"] == {"const": BASE_URI + kind.schema}
    assert own["properties"]["data"]["additionalProperties"] is False


def test_the_user_events_share_one_data_schema():
    users = [c.USER_CREATED, c.USER_UPDATED, c.USER_DEACTIVATED, c.USER_REACTIVATED, c.USER_DELETED]
    datas = [SCHEMAS[k.schema]["allOf"][1]["properties"]["data"] for k in users]
    assert all(d == datas[0] for d in datas)


def test_the_events_built_here_cover_every_type():
    assert {e.kind for e in EVENTS} == set(c.ALL)


def test_refs_resolve_from_the_files_only():
    with pytest.raises(Exception, match="elsewhere.example"):
        Draft202012Validator(
            {"$ref": "https://elsewhere.example/schema.json"}, registry=REGISTRY
        ).validate({})


# -- every real event validates ----------------------------------------------------------------


@pytest.mark.parametrize("event", EVENTS, ids=_event_id)
def test_real_event_matches_its_schema(event: Event):
    ce = event.to_cloudevent()
    assert ce["dataschema"] == BASE_URI + event.kind.schema
    validator(event.kind.schema).validate(ce)
    validator(event.kind.schema).validate(on_the_wire(event))
    validator(ENVELOPE).validate(on_the_wire(event))


@pytest.mark.parametrize("event", EVENTS[:3], ids=_event_id)
def test_an_event_does_not_match_another_types_schema(event: Event):
    for kind in c.ALL:
        if kind is not event.kind:
            assert not validator(kind.schema).is_valid(on_the_wire(event)), kind.name


def test_correlationid_is_optional_and_present_when_the_request_had_one():
    with_id = on_the_wire(user_lifecycle(ORG)[0])
    without = on_the_wire(user_lifecycle(ORG_WITHOUT_REQUEST)[0])
    assert with_id["correlationid"] == "req-7f3a"
    assert "correlationid" not in without
    validator(c.USER_CREATED.schema).validate(without)


# -- broken events fail --------------------------------------------------------------------------


def _drop(path: tuple[str, ...]):
    def mutate(ce: dict[str, Any]) -> None:
        target = ce
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


def _set(path: tuple[str, ...], value: Any):
    def mutate(ce: dict[str, Any]) -> None:
        target = ce
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


ENVELOPE_BREAKS = {
    "missing orgid": _drop(("orgid",)),
    "missing resourceversion": _drop(("resourceversion",)),
    "missing data": _drop(("data",)),
    "extra attribute": _set(("tenant",), "acme"),
    "wrong specversion": _set(("specversion",), "0.3"),
    "id not a uuid": _set(("id",), "not-a-uuid"),
    "resourceversion as string": _set(("resourceversion",), "3"),
    "negative resourceversion": _set(("resourceversion",), -1),
    "time without zone": _set(("time",), "2024-05-01T12:00:00"),
    "wrong datacontenttype": _set(("datacontenttype",), "text/plain"),
    "unknown type": _set(("type",), "io.provisioner.user.renamed"),
    "partitionkey without org": _set(("partitionkey",), ALICE_ID),
    "empty correlationid": _set(("correlationid",), ""),
}

DATA_BREAKS: dict[str, dict[str, Any]] = {
    "user": {
        "kinds": [c.USER_CREATED, c.USER_UPDATED, c.USER_DEACTIVATED, c.USER_REACTIVATED, c.USER_DELETED],
        "breaks": {
            "missing user_id": _drop(("data", "user_id")),
            "missing email": _drop(("data", "email")),
            "extra field": _set(("data", "phone"), "+1 555 0100"),
            "active as string": _set(("data", "active"), "true"),
            "active null": _set(("data", "active"), None),
            "user_id null": _set(("data", "user_id"), None),
            "given_name as number": _set(("data", "given_name"), 7),
            "group subject": _set(("subject",), f"Groups/{GROUP_ID}"),
        },
    },
    "group": {
        "kinds": [c.GROUP_CREATED, c.GROUP_RENAMED, c.GROUP_DELETED],
        "breaks": {
            "missing group_id": _drop(("data", "group_id")),
            "missing display_name": _drop(("data", "display_name")),
            "extra field": _set(("data", "members"), []),
            "group_id as number": _set(("data", "group_id"), 42),
            "user subject": _set(("subject",), f"Users/{ALICE_ID}"),
        },
    },
    "group member": {
        "kinds": [c.GROUP_MEMBER_ADDED, c.GROUP_MEMBER_REMOVED],
        "breaks": {
            "missing member_id": _drop(("data", "member_id")),
            "missing member_type": _drop(("data", "member_type")),
            "extra field": _set(("data", "display"), "Alice"),
            "member_id null": _set(("data", "member_id"), None),
            "member_type empty": _set(("data", "member_type"), ""),
            "group subject": _set(("subject",), f"Groups/{GROUP_ID}"),
        },
    },
}

NEGATIVE_CASES = [
    pytest.param(kind, mutate, id=f"{kind.name}-{label}")
    for kind in c.ALL
    for label, mutate in ENVELOPE_BREAKS.items()
] + [
    pytest.param(kind, mutate, id=f"{kind.name}-{label}")
    for family in DATA_BREAKS.values()
    for kind in family["kinds"]
    for label, mutate in family["breaks"].items()
]


@pytest.mark.parametrize(("kind", "mutate"), NEGATIVE_CASES)
def test_a_broken_event_fails_validation(kind: c.EventType, mutate):
    ce = one(kind)
    ce.setdefault("correlationid", "req-7f3a")
    validator(kind.schema).validate(ce)  # intact, it is valid
    broken = copy.deepcopy(ce)
    mutate(broken)
    with pytest.raises(ValidationError):
        validator(kind.schema).validate(broken)


def test_renamed_requires_the_previous_name():
    ce = one(c.GROUP_RENAMED)
    del ce["data"]["previous_display_name"]
    with pytest.raises(ValidationError, match="previous_display_name"):
        validator(c.GROUP_RENAMED.schema).validate(ce)


@pytest.mark.parametrize("kind", [c.GROUP_MEMBER_ADDED, c.GROUP_MEMBER_REMOVED], ids=lambda k: k.name)
def test_member_type_is_a_resource_type(kind):
    ce = one(kind)
    ce["data"]["member_type"] = "Banana"
    with pytest.raises(ValidationError):
        validator(kind.schema).validate(ce)
