"""Every event the provisioner builds matches its JSON Schema in `schemas/events/`.

The schemas are the contract with the teams that consume the lifecycle and billing topics: the
events are built by the real code (`ingest.scim.changes` for SCIM writes, `core.logins.record`
for sign-ins, `workers.member_events.emit` and the `workers.billing.Billing` handler for member
and billing facts), encoded as they go on the wire, and validated with `$ref`s resolved from the
schema files only (no network). Broken events must fail, so a change to the payload that the
schemas do not follow turns this test red.
"""

import copy
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from sqlalchemy.sql.dml import Insert, Update
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.selectable import Select

from core.logins import SignIn, record
from core.orgs import Org
from core.tables import billing_accounts, members, outbox
from events import catalogue as c
from events.envelope import Event, decode, deterministic_id, encode
from ingest.scim.changes import OrgRef, group_events, user_events
from workers import member_events
from workers.billing import Billing

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "events"
BASE_URI = "https://provisioner.dev/schemas/events/"
ENVELOPE = "envelope.json"

ORG = OrgRef("3f0c2a8e-5b7d-4e1a-9c6f-2d8b7a1e4c90", "acme", "req-7f3a")
ORG_WITHOUT_REQUEST = OrgRef("3f0c2a8e-5b7d-4e1a-9c6f-2d8b7a1e4c90", "acme")

ALICE_ID = "5c1e0d2b9a8f4e3d8c7b6a5f4e3d2c1b"
BOB_ID = "0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d"
NESTED_ID = "7e6d5c4b3a2f4e1d9c8b7a6f5e4d3c2b"
GROUP_ID = "9f8e7d6c5b4a4f3e2d1c0b9a8f7e6d5c"
CAROL_ID = "2b3c4d5e6f7a4b8c9d0e1f2a3b4c5d6e"

# member ids are the provisioner's own (uuid4), not SCIM ids
ALICE_MEMBER = "8d5e2f6a-1b3c-4d7e-9f0a-2b4c6d8e0f1a"
ALICE_AGAIN = "c4a7e1b9-5d2f-4a8c-b6e3-7f9d1a3c5e2b"
BOB_MEMBER = "1e9d7c5b-3a2f-4e6d-8c0b-9a7f5e3d1c2b"
CAROL_MEMBER = "6b8a0c2e-4d6f-4a1b-9c3d-5e7f9a1b3c5d"

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


TOPICS = {"lifecycle": "provisioner.lifecycle", "members": "provisioner.members", "billing": "billing"}
ACME = Org(ORG.id, ORG.slug, "Acme")  # SSO provisioning off: only members and SCIM users sign in via SSO
ACME_JIT = replace(ACME, sso_provisioning=True)
SIGNED_IN = datetime(2025, 3, 14, 9, 26, 0, 123456, tzinfo=UTC)


class _Result:
    def __init__(self, value: Any = None):
        self.value = value

    def scalar(self) -> Any:
        return self.value

    def scalar_one(self) -> Any:
        assert self.value is not None
        return self.value

    def first(self) -> Any:
        return self.value


class FakeConnection:
    """Just enough of a PostgreSQL connection for the code that builds sign-in, member and
    billing events: it answers their queries from a little state and keeps the outbox rows
    they stage, whose payloads (what the relay publishes) are the events under test."""

    def __init__(self) -> None:
        self.staged: list[dict[str, Any]] = []
        self.known = False  # answer to core.logins.is_known's member / SCIM user lookups
        self.txid = 73021
        self.versions: dict[str, int] = {}  # members.version by member id
        self.accounts: dict[tuple[str, str], SimpleNamespace] = {}  # billing_accounts rows

    def execute(self, statement: Any, parameters: Any = None) -> _Result:
        if isinstance(statement, TextClause):  # NOTIFY
            return _Result()
        params = statement.compile().params
        if isinstance(statement, Insert) and statement.table is outbox:
            self.staged.extend(parameters)
            return _Result()
        if isinstance(statement, Update) and statement.table is members:  # the member's event counter
            self.versions[params["id_1"]] = self.versions.get(params["id_1"], 0) + 1
            return _Result(self.versions[params["id_1"]])
        if isinstance(statement, Insert) and statement.table is billing_accounts:  # on conflict do nothing
            key = (params["org_id"], params["email_ci"])
            if key in self.accounts:
                return _Result()
            self.accounts[key] = SimpleNamespace(**params)
            return _Result(self.accounts[key])
        if isinstance(statement, Update) and statement.table is billing_accounts:
            vars(self.accounts[(params["org_id_1"], params["email_ci_1"])]).update(
                seat_active=params["seat_active"], member_id=params["member_id"]
            )
            return _Result()
        if isinstance(statement, Select) and "txid_current" in str(statement):
            return _Result(self.txid)
        if isinstance(statement, Select) and "billing_accounts" in str(statement):
            return _Result(self.accounts.get((params["org_id_1"], params["email_ci_1"])))
        if isinstance(statement, Select):  # is_known: a member, or a SCIM user, with that email
            return _Result(SimpleNamespace(id="known") if self.known else None)
        raise AssertionError(f"unexpected statement: {statement}")

    def last(self) -> Event:
        """The event staged last, as a consumer decodes it from the topic."""
        return decode(orjson.dumps(self.staged[-1]["payload"]))


def sign_ins_members_and_billing() -> tuple[list[Event], FakeConnection]:
    """Sign-ins, the member events the membership worker makes of them and of SCIM user events,
    and what the billing worker makes of those, each step fed the previous step's event."""
    db = FakeConnection()
    billing = Billing(TOPICS)
    events: list[Event] = []

    def login(org: Org, email: str, *, known: bool = False, correlation_id: str | None = "req-5e1d", **how: Any) -> Event:
        """Record a sign-in; `known` is whether the org has a member or a SCIM user with that email."""
        db.known = known
        record(db, org, SignIn(email=email, **how), TOPICS, correlation_id)
        events.append(db.last())
        return events[-1]

    def member(kind: c.EventType, cause: Event, member_id: str, **row: Any) -> None:
        member_events.emit(db, TOPICS, kind, cause=cause, member_id=member_id, **row)
        events.append(db.last())
        staged = len(db.staged)
        billing(events[-1], db)
        if len(db.staged) > staged:
            events.append(db.last())

    def first_login_at(login_event: Event) -> datetime:
        return datetime.fromisoformat(login_event.data["logged_in_at"])

    def moved(before: str, after: str) -> c.EventType:
        kind = member_events.transition(before, after)
        assert kind is not None
        return kind

    alice = [e for e in user_lifecycle() if e.subject == f"Users/{ALICE_ID}"]
    deactivated, reactivated, deleted = (
        next(e for e in alice if e.kind is k) for k in (c.USER_DEACTIVATED, c.USER_REACTIVATED, c.USER_DELETED)
    )

    # Alice, provisioned by SCIM, signs in through OIDC: first login, billed
    first = login(ACME, "Alice@Acme.example", known=True, method="oidc", sso=True, idp="https://idp.acme.example",
                  subject="00u1a2b3c4", at=SIGNED_IN)
    alice_row = {"email": "Alice@acme.example", "source": "scim", "first_login_at": first_login_at(first)}
    member(c.MEMBER_LOGGED_IN_FIRST_TIME, first, ALICE_MEMBER, **alice_row, status="active")
    # deactivated (seat released), reactivated (restored), deleted (released)
    member(moved("active", "deactivated"), deactivated, ALICE_MEMBER, **alice_row, status="deactivated")
    member(moved("deactivated", "active"), reactivated, ALICE_MEMBER, **alice_row, status="active")
    member(moved("active", "removed"), deleted, ALICE_MEMBER, **alice_row, status="removed")
    # re-created by the IdP, she signs in through the app's own login: seat restored, returned
    again = login(ACME, "alice@acme.example", correlation_id=None, method="password", sso=False,
                  at=datetime(2025, 10, 6, 8, 0, 12, tzinfo=UTC))
    member(c.MEMBER_LOGGED_IN_FIRST_TIME, again, ALICE_AGAIN, **{**alice_row, "first_login_at": first_login_at(again)},
           status="active")
    # Bob signs in through SAML while SSO provisioning is on: a member just in time, billed
    bob = login(ACME_JIT, "bob@acme.example", method="saml", sso=True, idp="https://idp.acme.example/saml", subject="bob",
                at=datetime(2025, 3, 14, 10, 0, 5, tzinfo=UTC))
    member(c.MEMBER_LOGGED_IN_FIRST_TIME, bob, BOB_MEMBER, email=bob.data["email"], source="sso", status="active",
           first_login_at=first_login_at(bob))
    # Eve is nobody here and SSO provisioning is off: refused
    login(ACME, "Eve@elsewhere.example", method="oidc", sso=True, idp="https://idp.acme.example", subject="00u9z8y7x6",
          at=datetime(2025, 3, 14, 11, 0, tzinfo=UTC))
    # Carol, provisioned without an email, never signs in: member events, nothing billed
    carol = [
        *user_events(ORG, CAROL_ID, None, {"userName": "carol"}, 1),
        *user_events(ORG, CAROL_ID, {"userName": "carol"}, {"userName": "carol", "active": False}, 2),
        *user_events(ORG, CAROL_ID, {"userName": "carol", "active": False}, {"userName": "carol"}, 3),
        *user_events(ORG, CAROL_ID, {"userName": "carol"}, None, 4),
    ]
    carol_row = {"email": None, "source": "scim", "first_login_at": None}
    member(moved("provisioned", "deactivated"), carol[1], CAROL_MEMBER, **carol_row, status="deactivated")
    member(moved("deactivated", "provisioned"), carol[2], CAROL_MEMBER, **carol_row, status="provisioned")
    member(moved("provisioned", "removed"), carol[3], CAROL_MEMBER, **carol_row, status="removed")
    return events, db


SIGN_INS, DB = sign_ins_members_and_billing()
EVENTS: list[Event] = [*user_lifecycle(), *group_lifecycle(), *user_lifecycle(ORG_WITHOUT_REQUEST), *SIGN_INS]


def _event_id(event: Event) -> str:
    return f"{event.kind.name}:{event.subject}@{event.resource_version}:{'corr' if event.correlation_id else 'nocorr'}"


def first_of(kind: c.EventType) -> Event:
    return next(e for e in EVENTS if e.kind is kind)


def one(kind: c.EventType) -> dict[str, Any]:
    """A real event of this type, as a consumer receives it."""
    return on_the_wire(first_of(kind))


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


@pytest.mark.parametrize("event", [first_of(kind) for kind in c.ALL], ids=_event_id)
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


def test_the_staged_outbox_rows_are_the_events_validated_here():
    assert [decode(orjson.dumps(row["payload"])) for row in DB.staged] == SIGN_INS
    for row, event in zip(DB.staged, SIGN_INS, strict=True):
        assert orjson.loads(orjson.dumps(row["payload"])) == on_the_wire(event)
        assert row["topic"] == TOPICS[event.kind.topic_role]
        assert row["key"] == row["payload"]["partitionkey"]
        assert row["event_id"] == row["payload"]["id"]


def test_the_billing_reasons_built_here_are_the_ones_the_schemas_allow():
    for kind in (c.BILLING_SEAT_RELEASED, c.BILLING_SEAT_RESTORED):
        built = {e.data["reason"] for e in EVENTS if e.kind is kind}
        assert built == set(SCHEMAS[kind.schema]["allOf"][1]["properties"]["data"]["properties"]["reason"]["enum"])


def test_a_person_is_billed_a_first_login_once_with_an_id_from_org_and_email():
    billed = [e for e in EVENTS if e.kind is c.BILLING_FIRST_LOGIN]
    assert sorted(e.data["email"] for e in billed) == ["Alice@acme.example", "bob@acme.example"]
    for e in billed:
        assert e.id == deterministic_id(c.BILLING_FIRST_LOGIN.type, e.org_id, e.data["email"].lower())
        assert e.key == f"{e.org_id}:{e.data['email'].lower()}"
    returned = next(e for e in EVENTS if e.kind is c.BILLING_SEAT_RESTORED and e.data["reason"] == "returned")
    assert returned.key == billed[0].key and returned.data["member_id"] == ALICE_AGAIN


def test_an_sso_sign_in_under_jit_is_never_marked_as_the_apps_own():
    ce = next(on_the_wire(e) for e in EVENTS if e.kind is c.LOGIN_SUCCEEDED and e.data["jit"])
    ce["data"]["sso"] = False
    with pytest.raises(ValidationError):
        validator(c.LOGIN_SUCCEEDED.schema).validate(ce)


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
    "login": {
        "kinds": [c.LOGIN_SUCCEEDED, c.LOGIN_REFUSED],
        "breaks": {
            "missing email": _drop(("data", "email")),
            "missing logged_in_at": _drop(("data", "logged_in_at")),
            "extra field": _set(("data", "name"), "Alice"),
            "email not an address": _set(("data", "email"), "alice"),
            "sso as string": _set(("data", "sso"), "true"),
            "idp as number": _set(("data", "idp"), 1),
            "method with spaces": _set(("data", "method"), "drop table;"),
            "logged_in_at without zone": _set(("data", "logged_in_at"), "2025-03-14T09:26:00"),
            "user subject": _set(("subject",), f"Users/{ALICE_ID}"),
            "subject not lowercased": _set(("subject",), "logins/Alice@acme.example"),
            "keyed by a member": _set(("partitionkey",), f"{ORG.id}:{ALICE_MEMBER}"),
        },
    },
    "member": {
        "kinds": [c.MEMBER_LOGGED_IN_FIRST_TIME, c.MEMBER_DEACTIVATED, c.MEMBER_REACTIVATED, c.MEMBER_REMOVED],
        "breaks": {
            "missing member_id": _drop(("data", "member_id")),
            "missing cause_event_id": _drop(("data", "cause_event_id")),
            "extra field": _set(("data", "scim_user_id"), ALICE_ID),
            "member_id a SCIM id": _set(("data", "member_id"), ALICE_ID),
            "unknown status": _set(("data", "status"), "suspended"),
            "unknown source": _set(("data", "source"), "ldap"),
            "first_login_at without zone": _set(("data", "first_login_at"), "2025-03-14T09:26:00"),
            "user subject": _set(("subject",), f"Users/{ALICE_ID}"),
            "keyed by an email": _set(("partitionkey",), f"{ORG.id}:alice@acme.example"),
        },
    },
    "billing": {
        "kinds": [c.BILLING_FIRST_LOGIN, c.BILLING_SEAT_RELEASED, c.BILLING_SEAT_RESTORED],
        "breaks": {
            "missing org_id": _drop(("data", "org_id")),
            "missing email": _drop(("data", "email")),
            "missing occurred_at": _drop(("data", "occurred_at")),
            "extra field": _set(("data", "plan"), "team"),
            "email null": _set(("data", "email"), None),
            "member_id null": _set(("data", "member_id"), None),
            "unknown source": _set(("data", "source"), "ldap"),
            "occurred_at without zone": _set(("data", "occurred_at"), "2025-03-14T09:26:00"),
            "login subject": _set(("subject",), "logins/alice@acme.example"),
            "keyed by the member": _set(("partitionkey",), f"{ORG.id}:{ALICE_MEMBER}"),
            "key not lowercased": _set(("partitionkey",), f"{ORG.id}:Alice@acme.example"),
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


def test_refused_requires_the_reason_and_succeeded_has_none():
    refused = one(c.LOGIN_REFUSED)
    del refused["data"]["reason"]
    with pytest.raises(ValidationError, match="reason"):
        validator(c.LOGIN_REFUSED.schema).validate(refused)
    succeeded = one(c.LOGIN_SUCCEEDED)
    succeeded["data"]["reason"] = "no"
    with pytest.raises(ValidationError):
        validator(c.LOGIN_SUCCEEDED.schema).validate(succeeded)


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        (c.MEMBER_LOGGED_IN_FIRST_TIME, "provisioned"),
        (c.MEMBER_DEACTIVATED, "active"),
        (c.MEMBER_REACTIVATED, "deactivated"),
        (c.MEMBER_REMOVED, "active"),
    ],
    ids=lambda v: getattr(v, "name", v),
)
def test_each_member_event_pins_the_status_it_leaves(kind, status):
    ce = one(kind)
    ce["data"]["status"] = status
    with pytest.raises(ValidationError):
        validator(kind.schema).validate(ce)


def test_a_first_login_has_its_time_and_an_email():
    for kind in (c.MEMBER_LOGGED_IN_FIRST_TIME, c.BILLING_FIRST_LOGIN):
        for field in ("first_login_at", "email"):
            ce = one(kind)
            ce["data"][field] = None
            with pytest.raises(ValidationError):
                validator(kind.schema).validate(ce)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (c.BILLING_SEAT_RELEASED, "returned"),
        (c.BILLING_SEAT_RELEASED, "reactivated"),
        (c.BILLING_SEAT_RESTORED, "removed"),
        (c.BILLING_SEAT_RESTORED, ""),
    ],
    ids=lambda v: getattr(v, "name", v) or "empty",
)
def test_a_seat_event_has_one_of_its_own_reasons(kind, reason):
    ce = one(kind)
    ce["data"]["reason"] = reason
    with pytest.raises(ValidationError):
        validator(kind.schema).validate(ce)
    del ce["data"]["reason"]
    with pytest.raises(ValidationError, match="reason"):
        validator(kind.schema).validate(ce)
