"""Every event the provisioner builds matches its JSON Schema in `schemas/events/`.

The schemas are the contract with the teams that consume the lifecycle, members and billing
topics: the events are built by the real code (`ingest.scim.changes` for SCIM writes,
`ingest.logins.record` for sign-ins, `domain.admin` and `domain.accounts` for org admins' actions
and accounts, `workers.membership.member_event` and the membership, conflict and billing workers'
handlers for member, conflict and billing facts), all on the in-memory unit of work of
tests/fakes.py (which tests/contract holds to PostgreSQL's behaviour), encoded as they go on the
wire, and validated with `$ref`s resolved from the schema files only (no network). Broken events must fail, so a
change to the payload that the schemas do not follow turns this test red.
"""

import copy
import hashlib
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

from domain import admin, domains, invitations, sso_config, token_facts
from domain.accounts import NO_ORG, register
from domain.erasure import erased_event
from domain.model import SEAT_LIMIT_REACHED, Member, MemberStatus, Source, transition
from domain.orgs import Org
from events import catalogue as c
from events import envelope
from events.envelope import INTEGER_MAX, UNVERSIONED, EnvelopeError, Event, decode, deterministic_id, encode
from ingest.logins import SignIn, record
from ingest.scim.changes import OrgRef, group_events, user_events
from tests.fakes import FakeUnitOfWork
from workers.billing import Billing
from workers.conflicts import ERROR, Conflicts
from workers.membership import Membership, member_event

pytestmark = pytest.mark.unit

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "events"
BASE_URI = "https://provisioner.dev/schemas/events/v2/"
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


def sign_ins_members_and_billing() -> tuple[list[Event], FakeUnitOfWork]:
    """Sign-ins, the member events the membership worker makes of them and of SCIM user events,
    and what the billing worker makes of those, each step fed the previous step's event."""
    uow = db = FakeUnitOfWork(topics=TOPICS)
    uow.txid = 73021
    billing = Billing()
    people: dict[str, Member] = {}
    events: list[Event] = []

    def login(org: Org, email: str, *, known: bool = False, correlation_id: str | None = "req-5e1d", **how: Any) -> Event:
        """Record a sign-in; `known` is whether the org has a SCIM user with that email."""
        users = uow.tables["scim_resources"]
        users[:] = [{"org_id": org.id, "user_name_ci": email.lower(), "emails_ci": []}] if known else []
        record(uow, org, SignIn(email=email, **how), correlation_id)
        uow.commit()  # each sign-in is a transaction of its own
        events.append(uow.events()[-1])
        return events[-1]

    def member(kind: c.EventType, cause: Event, member_id: str, *, email: str | None, source: str, status: str,
               first_login_at: datetime | None) -> None:
        """The member event the membership worker announces for this member, then billing's."""
        row = people.setdefault(member_id, Member(
            id=member_id, org_id=cause.org_id, scim_user_id=None, user_name=None, email=email, email_ci=None,
            display_name=None, status=MemberStatus(status), source=Source(source),
        ))
        row.email, row.status, row.first_login_at = email, MemberStatus(status), first_login_at
        uow.stage([member_event(kind, cause, row)])
        events.append(uow.events()[-1])
        staged = len(uow.staged)
        billing.apply([events[-1]], uow)
        if len(uow.staged) > staged:
            events.append(uow.events()[-1])

    def first_login_at(login_event: Event) -> datetime:
        return datetime.fromisoformat(login_event.data["logged_in_at"])

    def moved(before: str, after: str) -> c.EventType:
        kind = transition(MemberStatus(before), MemberStatus(after))
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
    # deactivated (seat released), reactivated (provisioned again: nothing billed yet), signs in
    # again (returned: seat restored), deleted (released)
    member(moved("active", "deactivated"), deactivated, ALICE_MEMBER, **alice_row, status="deactivated")
    member(moved("deactivated", "provisioned"), reactivated, ALICE_MEMBER, **alice_row, status="provisioned")
    back = login(ACME, "Alice@Acme.example", method="oidc", sso=True, idp="https://idp.acme.example", subject="00u1a2b3c4",
                 at=datetime(2025, 6, 2, 8, 30, tzinfo=UTC))
    member(c.MEMBER_RETURNED, back, ALICE_MEMBER, **alice_row, status="active")
    member(moved("active", "removed"), deleted, ALICE_MEMBER, **alice_row, status="removed")
    # someone new is given her address and signs in through the app's own login: a new member, and
    # a first login of their own
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


# -- org admins, accounts, new members and email conflicts ---------------------------------------


def decode_row(row: dict[str, Any]) -> Event:
    """An outbox row's event, as a consumer decodes it from the topic."""
    return decode(orjson.dumps(row["payload"]))


# the workers and the topic roles they consume, as `workers.main` composes them
PIPELINE = (
    (Membership(), ("lifecycle",)),
    (Conflicts(), ("members", "lifecycle")),
    (Billing(), ("members",)),
)


def settle(db: FakeUnitOfWork, delivered: int) -> int:
    """Deliver every staged event from `delivered` on, as a consumer decodes it, to each worker of
    its topic, each in its own transaction, until the workers stage nothing new; returns how many
    are delivered now."""
    while delivered < len(db.staged):
        event = decode_row(db.staged[delivered])
        delivered += 1
        for handler, roles in PIPELINE:
            if event.kind.topic_role in roles:
                handler.apply([event], db)
                db.commit()
    return delivered


def _fixed_uuid4s():
    """uuid4s that are the same on every run (member, account and conflict ids), so the events
    and their test ids are too."""
    n = 0

    def uuid4() -> uuid.UUID:
        nonlocal n
        n += 1
        return uuid.UUID(bytes=hashlib.sha256(f"provisioner-{n}".encode()).digest()[:16], version=4)

    return uuid4


class _Clock(datetime):
    """`datetime` for `events.envelope` (where every event is stamped): its `now` starts at STAGED
    and advances a second a call."""

    calls = 0

    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        cls.calls += 1
        return STAGED.replace(second=cls.calls % 60, microsecond=250000)


STAGED = datetime(2025, 4, 2, 14, 30, 0, tzinfo=UTC)
ADMIN_API = "admin-api:ops"
FRANK_ID = "3c4d5e6f7a8b4c9d0e1f2a3b4c5d6e7f"
GRACE_ID = "4d5e6f7a8b9c4d0e1f2a3b4c5d6e7f8a"
IVAN_ID = "5e6f7a8b9c0d4e1f2a3b4c5d6e7f8a9b"
FRANK = {"userName": "frank@acme.example", "emails": [{"value": "Frank@acme.example", "primary": True}]}
GRACE = {"userName": "grace@acme.example", "active": False}
IVAN = {"userName": "ivan@acme.example"}
KIM_ID = "6f7a8b9c0d1e4f2a3b4c5d6e7f8a9b0c"
KIM = {"userName": "kim@kim.example"}


def org_admins_accounts_and_conflicts() -> tuple[list[Event], FakeUnitOfWork]:
    """Settings, accounts, manual adds, new members of every source, conflicts in both orders of
    arrival and both resolutions, through the admin and account code and the workers, all on one
    in-memory unit of work (each step a transaction of its own)."""
    db = FakeUnitOfWork(topics=TOPICS)
    db.orgs.put(ACME)
    delivered = 0

    def acme() -> Org:
        return db.orgs.get(ACME.slug)

    def done(result: Any = None) -> Any:
        nonlocal delivered
        db.commit()
        delivered = settle(db, delivered)
        return result

    def scim(*events: Event) -> None:  # what the SCIM ingest stages with its write
        db.stage(events)
        done()

    def sign_in(email: str, at: datetime, **how: Any) -> None:
        done(record(db, acme(), SignIn(email=email, at=at, **how), "req-0c9d"))

    # an admin turns SSO provisioning on (just-in-time members)
    done(admin.change_settings(db, acme(), "cli", sso_provisioning=True))
    # Dana has an account of the app, outside any org, before the admin adds her by hand:
    # member.created, then the conflict; the admin acquires her account, and she signs in
    done(register(db, "Dana@Solo.example", "Dana Scully"))
    done(admin.add_member(db, acme(), ADMIN_API, "Dana@solo.example", "Dana Scully"))
    done(domains.add(db, acme(), "solo.example", "support:ops", verified=True))  # acquirable: support's override
    done(admin.resolve(db, acme(), ADMIN_API, "dana@solo.example", acquire=True))
    sign_in("dana@solo.example", datetime(2025, 4, 2, 15, 0, 0, tzinfo=UTC), method="magic_link", sso=False)
    # Frank is pushed by SCIM first, then registers an account: the conflict comes from the
    # account's side, and the admin dismisses it (by its id)
    scim(*user_events(ORG, FRANK_ID, None, FRANK, 1))
    done(register(db, "frank@acme.example"))
    conflict = db.events()[-1]  # flagged by the conflict worker on the account.registered
    assert conflict.kind is c.EMAIL_CONFLICT_DETECTED
    done(admin.resolve(db, acme(), "cli", conflict.data["conflict_id"], acquire=False))
    # Grace is pushed inactive; Heidi signs in through SAML and becomes a member just in time
    scim(*user_events(ORG, GRACE_ID, None, GRACE, 1))
    sign_in("Heidi@acme.example", datetime(2025, 4, 2, 16, 0, 0, tzinfo=UTC), method="saml", sso=True,
            idp="https://idp.acme.example/saml", subject="heidi")
    # the org's plan has two seats, and billing past them is allowed (an overage each)
    done(admin.change_settings(db, acme(), "cli", seat_limit=2, seat_policy="allow"))
    # Ivan, pushed by SCIM, signs in (billed: the third seat, an overage), is deleted (seat
    # released); a new person is added by hand with his old address and signs in: a new member,
    # with a first login of their own
    scim(*user_events(ORG, IVAN_ID, None, IVAN, 1))
    sign_in("ivan@acme.example", datetime(2025, 4, 2, 17, 0, 0, tzinfo=UTC), method="password", sso=False)
    scim(*user_events(ORG, IVAN_ID, IVAN, None, 2))
    done(admin.add_member(db, acme(), "cli", "ivan@acme.example"))
    sign_in("ivan@acme.example", datetime(2025, 4, 3, 9, 0, 0, tzinfo=UTC), method="password", sso=False)
    # the admin removes Heidi (created just in time): her seat is released
    heidi = next(r["id"] for r in db.tables["members"] if r["email"] == "Heidi@acme.example")
    done(admin.remove_member(db, acme(), ADMIN_API, heidi))
    # the plan is enforced now: Judy, new just in time, would take a seat past the limit: refused
    done(admin.change_settings(db, acme(), "cli", seat_policy="refuse"))
    sign_in("judy@acme.example", datetime(2025, 4, 3, 10, 0, 0, tzinfo=UTC), method="saml", sso=True,
            idp="https://idp.acme.example/saml", subject="judy")
    # Kim's account is on a domain acme has not verified: the admin invites her, and she accepts in the app
    done(register(db, "kim@kim.example"))
    scim(*user_events(ORG, KIM_ID, None, KIM, 1))
    invited = done(admin.invite(db, acme(), ADMIN_API, "kim@kim.example"))
    done(invitations.accept(db, invited["id"]))
    return [decode_row(row) for row in db.staged], db


with mock.patch("uuid.uuid4", _fixed_uuid4s()), mock.patch.object(envelope, "datetime", _Clock):
    ORG_EVENTS, ORG_DB = org_admins_accounts_and_conflicts()
# an erasure (domain.erasure builds its event; the sweep itself is tests/integration/test_erasure.py)
ERASURES = [erased_event(ACME, ALICE_MEMBER, 7, "cli")]


def _billing_of(events: list[Event]) -> list[Event]:
    """What the billing worker makes of these events, on the sign-ins' ledger (Alice's seat)."""
    uow = FakeUnitOfWork(DB.tables, TOPICS)  # the same rows, its own outbox
    Billing().apply(events, uow)
    return uow.events()


ERASURES += _billing_of(ERASURES)  # billing.member.erased (her seat was released already)


def credential_facts() -> list[Event]:
    """Acme's credentials issued and revoked, and its SSO connection stored then changed, as their
    producers build the facts (domain.token_facts, domain.sso_config), each staged in a transaction."""
    db = FakeUnitOfWork(topics=TOPICS)
    admin_id, scim_id = "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d", "8b9c0d1e-2f3a-4b4c-9d5e-6f7a8b9c0d1e"
    revoked = type("Row", (), {"id": scim_id, "prefix": "scim_Ab12Cd34", "name": None})()
    oidc = {"issuer": "https://idp.acme.example", "client_id": "acme", "client_secret_sealed": "v1:x"}
    facts = [
        token_facts.issued_fact("admin", admin_id, "adm_Zz98Yy76", "ops", "created", "cli"),
        token_facts.issued_fact("scim", scim_id, "scim_Ab12Cd34", "scim", "rotated", ADMIN_API),
        token_facts.revoked_fact("scim", revoked, ADMIN_API),
        sso_config.configured_fact("oidc", None, oidc, ADMIN_API),
        sso_config.configured_fact("oidc", oidc, {**oidc, "client_id": "acme-2"}, ADMIN_API),
        token_facts.expiring_fact(scim_id, "scim_Ab12Cd34", datetime(2027, 3, 1, 9, 30, tzinfo=UTC)),
    ]
    for fact in facts:
        assert fact is not None
        db.stage_fact(fact, org_id=ACME.id, org_slug=ACME.slug)
        db.commit()
    return [decode_row(row) for row in db.staged]


with mock.patch.object(envelope, "datetime", _Clock):
    CREDENTIAL_FACTS = credential_facts()
EVENTS: list[Event] = [
    *user_lifecycle(), *group_lifecycle(), *user_lifecycle(ORG_WITHOUT_REQUEST), *SIGN_INS, *ORG_EVENTS, *ERASURES,
    *CREDENTIAL_FACTS,
]


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


def test_a_member_is_billed_a_first_login_once_with_an_id_from_org_and_member():
    billed = [e for e in SIGN_INS if e.kind is c.BILLING_FIRST_LOGIN]
    assert [e.data["member_id"] for e in billed] == [ALICE_MEMBER, ALICE_AGAIN, BOB_MEMBER]
    for e in billed:
        assert e.id == deterministic_id(c.BILLING_FIRST_LOGIN.type, e.org_id, e.data["member_id"])
        assert e.key == f"{e.org_id}:{e.data['member_id']}" and e.resource_version == 1
    of_alice = [e for e in SIGN_INS if e.kind.topic_role == c.TopicRole.BILLING and e.subject == f"members/{ALICE_MEMBER}"]
    alice = [(e.kind, e.resource_version) for e in of_alice]
    assert alice == [
        (c.BILLING_FIRST_LOGIN, 1), (c.BILLING_SEAT_RELEASED, 2), (c.BILLING_SEAT_RESTORED, 3), (c.BILLING_SEAT_RELEASED, 4)
    ]  # fmt: skip


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
    "missing data": _drop(("data",)),
    "extra attribute": _set(("tenant",), "acme"),
    "wrong specversion": _set(("specversion",), "0.3"),
    "id not a uuid": _set(("id",), "not-a-uuid"),
    "resourceversion as string": _set(("resourceversion",), "3"),
    "negative resourceversion": _set(("resourceversion",), -1),
    "resourceversion past 32 bits": _set(("resourceversion",), INTEGER_MAX + 1),
    "time without zone": _set(("time",), "2024-05-01T12:00:00"),
    "wrong datacontenttype": _set(("datacontenttype",), "text/plain"),
    "unknown type": _set(("type",), "io.provisioner.user.renamed"),
    "partitionkey without org": _set(("partitionkey",), ALICE_ID),
    "empty correlationid": _set(("correlationid",), ""),
}


def _nil_org(ce: dict[str, Any]) -> None:
    ce["orgid"], ce["source"] = NO_ORG, f"/provisioner/orgs/{NO_ORG}"


# org-level facts, staged by `uow.stage_fact`: about no versioned resource, so without a resourceversion
FACTS = {
    c.LOGIN_SUCCEEDED, c.LOGIN_REFUSED, c.ORG_SETTINGS_CHANGED, c.MEMBER_MANUALLY_ADDED, c.MEMBER_MANUALLY_REMOVED,
    c.ACCOUNT_REGISTERED, c.ACCOUNT_ACQUIRED, c.CONFLICT_DISMISSED, c.DOMAIN_VERIFIED, c.ACCOUNT_INVITED,
    c.INVITATION_ACCEPTED, c.CREDENTIAL_ISSUED, c.CREDENTIAL_REVOKED, c.ORG_SSO_CONFIGURED, c.CREDENTIAL_EXPIRING,
}  # fmt: skip
# a conflict carries its cause's version: a member.created's, or none for an account.registered's
CAUSE_VERSIONED = {c.EMAIL_CONFLICT_DETECTED}


def _drop_version(ce: dict[str, Any]) -> None:
    ce.pop("resourceversion", None)


# breaks of the envelope that some types allow: (mutation, the types it is valid for)
ORG_BREAKS: dict[str, tuple[Any, set[c.EventType]]] = {
    "missing resourceversion": (_drop_version, FACTS | CAUSE_VERSIONED),
    "a resourceversion on a fact": (_set(("resourceversion",), 1), set(c.ALL) - FACTS),
    "empty orgslug": (_set(("orgslug",), ""), {c.ACCOUNT_REGISTERED, c.EMAIL_CONFLICT_DETECTED}),
    "nil org": (_nil_org, {c.ACCOUNT_REGISTERED}),
    "orgslug not a slug": (_set(("orgslug",), "Acme Inc"), set()),
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
            "subject an email": _set(("subject",), "logins/alice@acme.example"),
            "keyed by an email": _set(("partitionkey",), f"{ORG.id}:alice@acme.example"),
            "missing sign_in_id": _drop(("data", "sign_in_id")),
            "member_id a SCIM id": _set(("data", "member_id"), ALICE_ID),
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
        "kinds": [c.BILLING_FIRST_LOGIN, c.BILLING_SEAT_RELEASED, c.BILLING_SEAT_RESTORED, c.BILLING_SEAT_OVERAGE],
        "breaks": {
            "missing org_id": _drop(("data", "org_id")),
            "missing member_id": _drop(("data", "member_id")),
            "missing occurred_at": _drop(("data", "occurred_at")),
            "extra field": _set(("data", "plan"), "team"),
            "an email in data": _set(("data", "email"), "Alice@acme.example"),
            "member_id null": _set(("data", "member_id"), None),
            "member_id a SCIM id": _set(("data", "member_id"), ALICE_ID),
            "unknown source": _set(("data", "source"), "ldap"),
            "occurred_at without zone": _set(("data", "occurred_at"), "2025-03-14T09:26:00"),
            "login subject": _set(("subject",), "logins/alice@acme.example"),
            "keyed by an email": _set(("partitionkey",), f"{ORG.id}:alice@acme.example"),
            "resourceversion zero": _set(("resourceversion",), 0),
        },
    },
    "settings": {
        "kinds": [c.ORG_SETTINGS_CHANGED],
        "breaks": {
            "missing before": _drop(("data", "before")),
            "missing actor": _drop(("data", "actor")),
            "a setting missing": _drop(("data", "after", "scim_enabled")),
            "an unknown setting": _set(("data", "after", "billing_enabled"), True),
            "a setting as string": _set(("data", "before", "sso_provisioning"), "false"),
            "a setting null": _set(("data", "after", "manual_provisioning"), None),
            "empty actor": _set(("data", "actor"), ""),
            "extra field": _set(("data", "changed"), ["sso_provisioning"]),
            "member subject": _set(("subject",), f"members/{ALICE_MEMBER}"),
            "subject not an org id": _set(("subject",), "orgs/acme"),
            "keyed by a slug": _set(("partitionkey",), f"{ORG.id}:acme"),
        },
    },
    "manual add": {
        "kinds": [c.MEMBER_MANUALLY_ADDED],
        "breaks": {
            "missing email": _drop(("data", "email")),
            "missing display_name": _drop(("data", "display_name")),
            "missing actor": _drop(("data", "actor")),
            "missing member_id": _drop(("data", "member_id")),
            "extra field": _set(("data", "source"), "manual"),
            "email not an address": _set(("data", "email"), "dana"),
            "display_name as number": _set(("data", "display_name"), 7),
            "subject an email": _set(("subject",), "logins/dana@solo.example"),
            "keyed by an email": _set(("partitionkey",), f"{ORG.id}:dana@solo.example"),
        },
    },
    "account": {
        "kinds": [c.ACCOUNT_REGISTERED],
        "breaks": {
            "missing account_id": _drop(("data", "account_id")),
            "missing email": _drop(("data", "email")),
            "extra field": _set(("data", "display_name"), "Dana"),
            "account_id not a uuid": _set(("data", "account_id"), "acct-1"),
            "email not an address": _set(("data", "email"), "dana"),
            "member subject": _set(("subject",), f"members/{ALICE_MEMBER}"),
            "keyed by an email": _set(("partitionkey",), f"{NO_ORG}:dana@solo.example"),
            "keyed under an org": _set(("partitionkey",), f"{ORG.id}:{ALICE_MEMBER}"),
        },
    },
    "conflict resolution": {
        "kinds": [c.ACCOUNT_ACQUIRED, c.CONFLICT_DISMISSED],
        "breaks": {
            "missing conflict_id": _drop(("data", "conflict_id")),
            "missing account_id": _drop(("data", "account_id")),
            "missing actor": _drop(("data", "actor")),
            "extra field": _set(("data", "status"), "acquired"),
            "member_id null": _set(("data", "member_id"), None),
            "email with capitals": _set(("data", "email"), "Dana@solo.example"),
            "login subject": _set(("subject",), "logins/dana@solo.example"),
            "keyed by an email": _set(("partitionkey",), f"{ORG.id}:dana@solo.example"),
        },
    },
    "invitation": {
        "kinds": [c.ACCOUNT_INVITED, c.INVITATION_ACCEPTED],
        "breaks": {
            "missing invitation_id": _drop(("data", "invitation_id")),
            "missing conflict_id": _drop(("data", "conflict_id")),
            "invitation_id not a uuid": _set(("data", "invitation_id"), "inv-1"),
            "extra field": _set(("data", "email"), "kim@kim.example"),
            "account subject": _set(("subject",), f"accounts/{ALICE_MEMBER}"),
            "keyed by an email": _set(("partitionkey",), f"{ORG.id}:kim@kim.example"),
        },
    },
    "verified domain": {
        "kinds": [c.DOMAIN_VERIFIED],
        "breaks": {
            "missing method": _drop(("data", "method")),
            "unknown method": _set(("data", "method"), "email"),
            "domain with capitals": _set(("data", "domain"), "Solo.example"),
            "domain without a dot": _set(("data", "domain"), "localhost"),
            "missing actor": _drop(("data", "actor")),
            "org subject": _set(("subject",), f"orgs/{ORG.id}"),
        },
    },
    "credential": {
        "kinds": [c.CREDENTIAL_ISSUED, c.CREDENTIAL_REVOKED],
        "breaks": {
            "unknown kind": _set(("data", "kind"), "service"),
            "token id not an id": _set(("data", "token_id"), "adm_Zz98Yy76SECRET"),
            "a secret-length prefix": _set(("data", "prefix"), "adm_" + "x" * 43),
            "missing actor": _drop(("data", "actor")),
            "the token itself": _set(("data", "token"), "adm_" + "x" * 43),
            "org subject": _set(("subject",), f"orgs/{ORG.id}"),
        },
    },
    "credential expiring": {
        "kinds": [c.CREDENTIAL_EXPIRING],
        "breaks": {
            "an admin token": _set(("data", "kind"), "admin"),
            "token id not an id": _set(("data", "token_id"), "scim_Ab12Cd34SECRET"),
            "no end": _drop(("data", "expires_at")),
            "an end that is no time": _set(("data", "expires_at"), "next week"),
            "the token itself": _set(("data", "token"), "scim_" + "x" * 43),
        },
    },
    "sso configured": {
        "kinds": [c.ORG_SSO_CONFIGURED],
        "breaks": {
            "unknown protocol": _set(("data", "protocol"), "ldap"),
            "a setting's value": _set(("data", "client_secret_sealed"), "v1:x"),
            "changed not a list": _set(("data", "changed"), "client_id"),
            "missing created": _drop(("data", "created")),
        },
    },
    "new member": {
        "kinds": [c.MEMBER_CREATED],
        "breaks": {
            "missing member_id": _drop(("data", "member_id")),
            "missing cause_event_id": _drop(("data", "cause_event_id")),
            "missing first_login_at": _drop(("data", "first_login_at")),
            "extra field": _set(("data", "display_name"), "Dana Scully"),
            "unknown source": _set(("data", "source"), "ldap"),
            "not the first member event": _set(("resourceversion",), 2),
            "user subject": _set(("subject",), f"Users/{ALICE_ID}"),
            "keyed by an email": _set(("partitionkey",), f"{ORG.id}:dana@solo.example"),
        },
    },
    "conflict detected": {
        "kinds": [c.EMAIL_CONFLICT_DETECTED],
        "breaks": {
            "missing conflict_id": _drop(("data", "conflict_id")),
            "missing error": _drop(("data", "error")),
            "extra field": _set(("data", "status"), "open"),
            "empty error": _set(("data", "error"), ""),
            "email null": _set(("data", "email"), None),
            "account_id not a uuid": _set(("data", "account_id"), "acct-1"),
            "account subject": _set(("subject",), f"accounts/{ALICE_MEMBER}"),
            "keyed by an email": _set(("partitionkey",), f"{ORG.id}:dana@solo.example"),
        },
    },
    "erasure": {
        "kinds": [c.MEMBER_ERASED],
        "breaks": {
            "missing member_id": _drop(("data", "member_id")),
            "missing actor": _drop(("data", "actor")),
            "empty actor": _set(("data", "actor"), ""),
            "an email in the data": _set(("data", "email"), "alice@acme.example"),
            "member_id a SCIM id": _set(("data", "member_id"), ALICE_ID),
            "user subject": _set(("subject",), f"Users/{ALICE_ID}"),
            "keyed by an email": _set(("partitionkey",), f"{ORG.id}:alice@acme.example"),
        },
    },
}

NEGATIVE_CASES = [
    pytest.param(kind, mutate, id=f"{kind.name}-{label}")
    for kind in c.ALL
    for label, mutate in ENVELOPE_BREAKS.items()
] + [
    pytest.param(kind, mutate, id=f"{kind.name}-{label}")
    for kind in c.ALL
    for label, (mutate, valid_for) in ORG_BREAKS.items()
    if kind not in valid_for
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


# -- extension attributes within their CloudEvents types, and `time` ---------------------------------

INT32 = (-(2**31), 2**31 - 1)  # CloudEvents 1.0's Integer


@pytest.mark.parametrize("event", EVENTS, ids=_event_id)
def test_every_integer_attribute_is_within_the_cloudevents_integer_range(event: Event):
    for name, value in on_the_wire(event).items():
        if name != "data" and isinstance(value, int):
            assert INT32[0] <= value <= INT32[1], (event.type, name, value)


def test_the_envelope_bounds_every_integer_attribute_to_32_bits():
    integers = {name: p for name, p in SCHEMAS[ENVELOPE]["properties"].items() if p.get("type") == "integer"}
    assert integers and integers["resourceversion"]["maximum"] == 2147483647
    for name, schema in integers.items():
        assert INT32[0] <= schema["minimum"] and schema["maximum"] <= INT32[1], name


def test_org_level_facts_have_no_resourceversion_and_every_other_type_has_one():
    for event in EVENTS:
        if event.kind not in CAUSE_VERSIONED:
            assert ("resourceversion" in on_the_wire(event)) is (event.kind not in FACTS), event.type
    said = [rule for rule in SCHEMAS[ENVELOPE]["allOf"] if rule.get("then") == {"not": {"required": ["resourceversion"]}}]
    assert [set(rule["if"]["properties"]["type"]["enum"]) for rule in said] == [{k.type for k in FACTS}]


def test_decode_reads_a_missing_or_pre_32_bit_resourceversion_as_none_and_refuses_a_wrong_one():
    login = on_the_wire(first_of(c.LOGIN_SUCCEEDED))
    assert decode(orjson.dumps(login)).resource_version == UNVERSIONED
    # what releases before this one stamped on sign-ins: their time in microseconds, no version
    assert decode(orjson.dumps({**login, "resourceversion": 1796107784410631})).resource_version == UNVERSIONED
    assert decode(encode(first_of(c.USER_UPDATED))).resource_version == 2
    for wrong in ("3", -1, True, 1.5):
        with pytest.raises(EnvelopeError, match="resourceversion"):
            decode(orjson.dumps({**login, "resourceversion": wrong}))


def test_no_event_is_built_with_a_version_outside_the_integer_range():
    payload = c.OrgSettingsChanged(before={}, after={}, actor="cli")
    with pytest.raises(ValueError, match="Integer range"):
        Event.of(payload, org_id=ORG.id, org_slug=ORG.slug, version=INTEGER_MAX + 1, occasion=1)


def test_time_is_when_the_sign_in_was_recorded_and_when_it_happened_is_data():
    alice = SIGN_INS[0]  # recorded now, for a sign-in the app reports at SIGNED_IN
    assert alice.kind is c.LOGIN_SUCCEEDED and datetime.fromisoformat(alice.data["logged_in_at"]) == SIGNED_IN
    assert alice.time > SIGNED_IN and alice.time.tzinfo is not None


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
        (c.MEMBER_CREATED, "removed"),
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


# -- org admins, accounts, new members and conflicts ----------------------------------------------


def org_events(kind: c.EventType) -> list[Event]:
    return [e for e in ORG_EVENTS if e.kind is kind]


def test_the_staged_outbox_rows_of_the_admin_and_worker_code_are_the_events_validated_here():
    assert len({row["event_id"] for row in ORG_DB.staged}) == len(ORG_DB.staged)
    for row, event in zip(ORG_DB.staged, ORG_EVENTS, strict=True):
        assert orjson.loads(orjson.dumps(row["payload"])) == on_the_wire(event)
        assert row["topic"] == TOPICS[event.kind.topic_role]
        assert row["key"] == row["payload"]["partitionkey"]
        assert row["event_id"] == row["payload"]["id"]


def test_a_settings_change_is_keyed_by_the_org_and_records_before_and_after():
    changed, seats, enforced = org_events(c.ORG_SETTINGS_CHANGED)
    assert changed.subject == f"orgs/{ACME.id}" and changed.key == f"{ACME.id}:{ACME.id}"
    assert changed.data["before"] == admin.settings_of(ACME)
    assert changed.data["after"] == {**admin.settings_of(ACME), "sso_provisioning": True}
    assert changed.data["actor"] == "cli"
    assert seats.data["after"] == {**changed.data["after"], "seat_limit": 2, "seat_policy": "allow"}
    assert enforced.data["after"] == {**seats.data["after"], "seat_policy": "refuse"}
    assert changed.resource_version == UNVERSIONED and "resourceversion" not in on_the_wire(changed)  # an org-level fact


def test_a_settings_change_that_changes_nothing_emits_nothing():
    db = FakeUnitOfWork(topics=TOPICS)
    db.orgs.put(ACME)
    admin.change_settings(db, ACME, "cli", manual_provisioning=True, sso_provisioning=None)
    admin.change_settings(db, ACME, "cli")
    assert db.staged == []


def test_an_account_belongs_to_no_org_and_is_keyed_by_its_id():
    for event in org_events(c.ACCOUNT_REGISTERED):
        ce = on_the_wire(event)
        assert (ce["orgid"], ce["orgslug"], ce["source"]) == (NO_ORG, "", f"/provisioner/orgs/{NO_ORG}")
        assert ce["subject"] == f"accounts/{ce['data']['account_id']}"
        assert ce["partitionkey"] == f"{NO_ORG}:{ce['data']['account_id']}"
    registered = [e.data["email"] for e in org_events(c.ACCOUNT_REGISTERED)]
    assert registered == ["Dana@Solo.example", "frank@acme.example", "kim@kim.example"]


def test_registering_an_email_again_emits_nothing():
    db = FakeUnitOfWork(topics=TOPICS)
    assert register(db, "Zoe@Solo.example").created
    assert not register(db, "zoe@solo.example", "Zoe").created
    assert [decode_row(row).kind for row in db.staged] == [c.ACCOUNT_REGISTERED]


@pytest.mark.parametrize(
    "mutate",
    [_set(("orgid",), ORG.id), _set(("source",), f"/provisioner/orgs/{ORG.id}"), _set(("orgslug",), "acme")],
    ids=["an org's id", "an org's source", "an org's slug"],
)
def test_an_account_registered_in_an_org_fails(mutate):
    ce = one(c.ACCOUNT_REGISTERED)
    mutate(ce)
    with pytest.raises(ValidationError):
        validator(c.ACCOUNT_REGISTERED.schema).validate(ce)


def test_a_manual_add_is_keyed_by_the_member_it_creates():
    dana, ivan = org_events(c.MEMBER_MANUALLY_ADDED)
    assert {k: v for k, v in dana.data.items() if k != "member_id"} == {
        "email": "Dana@solo.example", "display_name": "Dana Scully", "actor": ADMIN_API,
    }  # fmt: skip
    assert ivan.data["email"] == "ivan@acme.example" and ivan.data["display_name"] is None
    created = {e.data["member_id"]: e for e in ORG_EVENTS if e.kind is c.MEMBER_CREATED}
    for added in (dana, ivan):
        member_id = added.data["member_id"]
        assert added.subject == f"members/{member_id}" and added.key == f"{ACME.id}:{member_id}"
        assert created[member_id].data["source"] == "manual"  # the member has the id the admin's request gave it


def test_no_manual_add_while_manual_provisioning_is_off():
    db = FakeUnitOfWork(topics=TOPICS)
    db.orgs.put(replace(ACME, manual_provisioning=False))
    with pytest.raises(admin.AdminError) as refused:
        admin.add_member(db, db.orgs.get(ACME.slug), "cli", "someone@acme.example")
    assert refused.value.status == 403
    assert db.staged == []


def test_every_new_member_is_announced_once_first_with_its_source_and_status():
    created = org_events(c.MEMBER_CREATED)
    causes = {e.id: e.kind for e in ORG_EVENTS}
    seen = [(causes[e.data["cause_event_id"]], e.data["source"], e.data["status"]) for e in created]
    assert seen == [
        (c.MEMBER_MANUALLY_ADDED, "manual", "provisioned"),  # Dana
        (c.USER_CREATED, "scim", "provisioned"),  # Frank
        (c.USER_CREATED, "scim", "deactivated"),  # Grace, pushed inactive
        (c.LOGIN_SUCCEEDED, "sso", "active"),  # Heidi, just in time
        (c.USER_CREATED, "scim", "provisioned"),  # Ivan
        (c.MEMBER_MANUALLY_ADDED, "manual", "provisioned"),  # Ivan again, by hand
        (c.USER_CREATED, "scim", "provisioned"),  # Kim, invited
    ]
    for event in created:
        member_id = event.data["member_id"]
        members_topic = [e for e in ORG_EVENTS if e.kind.topic_role == "members" and e.data.get("member_id") == member_id]
        assert members_topic[0] is event and event.resource_version == 1
        assert event.id == deterministic_id(c.MEMBER_CREATED.type, event.data["cause_event_id"], member_id)
        assert (event.data["first_login_at"] is None) == (event.data["source"] != "sso")


@pytest.mark.parametrize(
    ("source", "field", "value"),
    [
        ("scim", "status", "active"),
        ("scim", "first_login_at", "2025-04-02T16:00:00+00:00"),
        ("manual", "status", "deactivated"),
        ("manual", "email", None),
        ("sso", "status", "provisioned"),
        ("sso", "first_login_at", None),
        ("sso", "email", None),
    ],
)
def test_a_new_member_has_what_its_source_gives_it(source, field, value):
    ce = on_the_wire(next(e for e in org_events(c.MEMBER_CREATED) if e.data["source"] == source))
    validator(c.MEMBER_CREATED.schema).validate(ce)
    ce["data"][field] = value
    with pytest.raises(ValidationError):
        validator(c.MEMBER_CREATED.schema).validate(ce)


def test_a_conflict_is_flagged_from_either_side_with_the_causes_version_and_slug():
    from_member, from_account, _kim = org_events(c.EMAIL_CONFLICT_DETECTED)
    # Dana: her account came first, then the member; Frank: the member first, then his account
    (dana_created,) = [e for e in org_events(c.MEMBER_CREATED) if e.subject == from_member.subject]
    account_id = from_account.data["account_id"]
    (frank_account,) = [e for e in org_events(c.ACCOUNT_REGISTERED) if e.data["account_id"] == account_id]
    assert (from_member.org_slug, from_member.resource_version) == ("acme", dana_created.resource_version)
    assert (from_account.org_slug, from_account.resource_version) == ("", frank_account.resource_version)
    assert from_account.org_id == ACME.id and from_account.correlation_id is None
    for event in (from_member, from_account):
        data = event.data
        assert event.subject == f"members/{data['member_id']}" and event.key == f"{ACME.id}:{data['member_id']}"
        assert event.id == deterministic_id(c.EMAIL_CONFLICT_DETECTED.type, data["member_id"], data["account_id"])
        assert data["error"] == ERROR.format(email=data["email"])
    assert [e.data["email"] for e in (from_member, from_account)] == ["Dana@solo.example", "Frank@acme.example"]


def test_a_resolution_names_the_conflict_it_closes():
    detected = {e.data["conflict_id"]: e for e in org_events(c.EMAIL_CONFLICT_DETECTED)}
    (acquired,) = org_events(c.ACCOUNT_ACQUIRED)
    (dismissed,) = org_events(c.CONFLICT_DISMISSED)
    for resolution, actor in ((acquired, ADMIN_API), (dismissed, "cli")):
        flagged = detected[resolution.data["conflict_id"]]
        assert {k: resolution.data[k] for k in ("member_id", "account_id")} == {
            k: flagged.data[k] for k in ("member_id", "account_id")
        }
        assert resolution.data["email"] == flagged.data["email"].lower()  # lowercased, unlike the detection
        assert (resolution.subject, resolution.key) == (flagged.subject, flagged.key)
        assert resolution.data["actor"] == actor


def test_an_invitation_names_its_conflict_and_its_acceptance_follows_it():
    (kim,) = [e for e in org_events(c.EMAIL_CONFLICT_DETECTED) if e.data["email"] == "kim@kim.example"]
    (invited,) = org_events(c.ACCOUNT_INVITED)
    (accepted,) = org_events(c.INVITATION_ACCEPTED)
    for event in (invited, accepted):
        assert {k: event.data[k] for k in ("conflict_id", "member_id", "account_id")} == {
            k: kim.data[k] for k in ("conflict_id", "member_id", "account_id")
        }
        assert (event.subject, event.key) == (kim.subject, kim.key)
    assert accepted.data["invitation_id"] == invited.data["invitation_id"] and invited.data["actor"] == ADMIN_API


def test_a_verified_domain_is_keyed_by_the_org_and_names_how():
    (verified,) = org_events(c.DOMAIN_VERIFIED)
    assert verified.data == {"domain": "solo.example", "method": "support", "actor": "support:ops"}
    assert (verified.subject, verified.key) == (f"orgs/{ACME.id}/domains/solo.example", f"{ACME.id}:{ACME.id}")


def test_every_source_is_billed_and_released_alike_with_overages_past_the_plan():
    billed = [e for e in ORG_EVENTS if e.kind.topic_role == "billing"]
    assert [(e.kind, e.data["source"], e.data.get("reason"), e.data.get("seats_held")) for e in billed] == [
        (c.BILLING_FIRST_LOGIN, "manual", None, None),  # Dana
        (c.BILLING_FIRST_LOGIN, "sso", None, None),  # Heidi
        (c.BILLING_FIRST_LOGIN, "scim", None, None),  # Ivan: the third seat of two
        (c.BILLING_SEAT_OVERAGE, "scim", None, 3),
        (c.BILLING_SEAT_RELEASED, "scim", "removed", None),
        (c.BILLING_FIRST_LOGIN, "manual", None, None),  # someone new with Ivan's old address
        (c.BILLING_SEAT_OVERAGE, "manual", None, 3),
        (c.BILLING_SEAT_RELEASED, "sso", "removed", None),  # Heidi removed by the admin
    ]
    assert len({e.data["member_id"] for e in billed if e.kind is c.BILLING_FIRST_LOGIN}) == 4
    refused = [e for e in ORG_EVENTS if e.kind is c.LOGIN_REFUSED]
    assert [e.data["reason"] for e in refused] == [SEAT_LIMIT_REACHED.format(limit=2)]


def test_an_erasure_is_keyed_by_the_member_with_an_id_from_org_and_member_only():
    erased = first_of(c.MEMBER_ERASED)
    assert erased.data == {"member_id": ALICE_MEMBER, "actor": "cli"}
    assert (erased.subject, erased.key) == (f"members/{ALICE_MEMBER}", f"{ACME.id}:{ALICE_MEMBER}")
    assert erased.id == deterministic_id(c.MEMBER_ERASED.type, ACME.id, ALICE_MEMBER)
    assert erased_event(ACME, ALICE_MEMBER, 9, "support").id == erased.id  # erasing again is the same event


def test_credential_facts_name_the_token_by_id_and_prefix_and_sso_facts_only_the_settings_changed():
    issued, rotated, revoked, created, changed, expiring = CREDENTIAL_FACTS
    assert issued.data == {
        "kind": "admin", "token_id": "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d", "prefix": "adm_Zz98Yy76", "name": "ops",
        "reason": "created", "actor": "cli",
    }  # fmt: skip
    assert (rotated.data["reason"], revoked.kind) == ("rotated", c.CREDENTIAL_REVOKED)
    assert (revoked.data["reason"], revoked.data["name"]) == ("revoked", "scim")
    subject = f"orgs/{ACME.id}/credentials/8b9c0d1e-2f3a-4b4c-9d5e-6f7a8b9c0d1e"
    assert (revoked.subject, revoked.key) == (subject, f"{ACME.id}:{ACME.id}")
    every_setting = ["client_id", "client_secret_sealed", "issuer"]
    assert created.data == {"protocol": "oidc", "created": True, "changed": every_setting, "actor": ADMIN_API}
    assert (changed.data["created"], changed.data["changed"]) == (False, ["client_id"])
    assert expiring.data == {"kind": "scim", "token_id": revoked.data["token_id"], "prefix": "scim_Ab12Cd34",
                             "expires_at": "2027-03-01T09:30:00+00:00"}
    assert (expiring.subject, expiring.key) == (subject, f"{ACME.id}:{ACME.id}")
    assert "v1:x" not in json.dumps([e.data for e in CREDENTIAL_FACTS])
    oidc = {"issuer": "https://idp.acme.example"}
    assert sso_config.configured_fact("oidc", oidc, dict(oidc), "cli") is None  # the same settings again: no fact
