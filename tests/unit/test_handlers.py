"""The workers' rules, on the in-memory unit of work: what each event does to members, seats and
conflicts, and which events it announces. No I/O: tests/contract keeps the fakes honest."""

import uuid
from datetime import UTC, datetime

import pytest

from domain.model import MemberStatus, Outcome
from events import catalogue as c
from events.envelope import Event
from ingest.scim.changes import OrgRef, user_events
from tests.fakes import FakeUnitOfWork
from workers.billing import Billing
from workers.conflicts import Conflicts
from workers.membership import Membership

pytestmark = pytest.mark.unit

ORG = OrgRef("0b5b6c2e-3a1d-4e8f-9a7b-6c5d4e3f2a1b", "acme", "req-1")
ANN = {"userName": "ann@acme.test", "emails": [{"value": "Ann@acme.test", "primary": True}]}
AT = datetime(2026, 5, 4, 8, 30, tzinfo=UTC)


def login(email: str, *, jit: bool = False, at: datetime = AT, subject: str | None = None) -> Event:
    how = {
        "sign_in_id": str(uuid.uuid4()),
        "member_id": None,
        "email": email,
        "method": "oidc" if subject else "password",
        "sso": subject is not None,
        "jit": jit,
        "idp": "https://idp" if subject else None,
        "subject": subject,
        "logged_in_at": at.isoformat(),
    }
    return Event.of(c.LoginSucceeded(**how), org_id=ORG.id, org_slug=ORG.slug, version=0, occasion=uuid.uuid4().hex)


def run(uow: FakeUnitOfWork, *events: Event) -> list[Outcome]:
    """Apply events to the membership worker, then what it announced to billing, as the pipeline would."""
    start = len(uow.staged)
    outcomes = Membership().apply(list(events), uow)
    for announced in uow.events()[start:]:
        if announced.kind.topic_role == c.TopicRole.MEMBERS:
            Billing().apply([announced], uow)
    return outcomes


def kinds(uow: FakeUnitOfWork) -> list[c.EventType]:
    return [e.kind for e in uow.events()]


def the_member(uow: FakeUnitOfWork):
    (row,) = uow.tables["members"]
    return row


def test_a_provisioned_member_is_billed_once_at_the_first_sign_in_and_the_seat_follows_the_status():
    uow = FakeUnitOfWork()
    (created,) = user_events(ORG, "u1", None, ANN, 1)
    (off,) = user_events(ORG, "u1", ANN, {**ANN, "active": False}, 2)
    assert run(uow, created) == [Outcome.APPLIED]
    assert the_member(uow)["status"] == MemberStatus.PROVISIONED and kinds(uow) == [c.MEMBER_CREATED]
    run(uow, login("ann@ACME.test"), login("ann@acme.test"))
    assert kinds(uow)[1:] == [c.MEMBER_LOGGED_IN_FIRST_TIME, c.BILLING_FIRST_LOGIN]
    assert the_member(uow)["first_login_at"] == AT
    run(uow, off)
    (back,) = user_events(ORG, "u1", {**ANN, "active": False}, ANN, 3)
    run(uow, back)  # reactivated: provisioned again, nothing billed until the next sign-in
    assert kinds(uow)[3:] == [c.MEMBER_DEACTIVATED, c.BILLING_SEAT_RELEASED, c.MEMBER_REACTIVATED]
    assert the_member(uow)["status"] == MemberStatus.PROVISIONED
    run(uow, login("ann@acme.test", at=datetime(2026, 6, 1, tzinfo=UTC)))
    assert kinds(uow)[6:] == [c.MEMBER_RETURNED, c.BILLING_SEAT_RESTORED]
    assert [e.resource_version for e in uow.events() if e.kind.topic_role == c.TopicRole.MEMBERS] == [1, 2, 3, 4, 5]
    assert [e.resource_version for e in uow.events() if e.kind.topic_role == c.TopicRole.BILLING] == [1, 2, 3]
    assert the_member(uow)["status"] == MemberStatus.ACTIVE and the_member(uow)["first_login_at"] == AT


def test_a_sign_in_before_the_member_exists_waits_and_counts_when_the_member_is_created():
    uow = FakeUnitOfWork()
    assert run(uow, login("ann@acme.test")) == [Outcome.PENDING]
    assert kinds(uow) == []
    run(uow, *user_events(ORG, "u1", None, ANN, 1))
    assert kinds(uow) == [c.MEMBER_CREATED, c.MEMBER_LOGGED_IN_FIRST_TIME, c.BILLING_FIRST_LOGIN]
    assert uow.tables["pending_logins"] == [] and the_member(uow)["status"] == MemberStatus.ACTIVE


def test_just_in_time_sign_in_makes_an_active_member_and_bills_it():
    uow = FakeUnitOfWork()
    assert run(uow, login("bob@acme.test", jit=True)) == [Outcome.APPLIED]
    assert kinds(uow) == [c.MEMBER_CREATED, c.MEMBER_LOGGED_IN_FIRST_TIME, c.BILLING_FIRST_LOGIN]
    assert the_member(uow)["source"] == "sso"


def test_an_older_user_event_is_stale_and_changes_nothing():
    uow = FakeUnitOfWork()
    renamed = {**ANN, "displayName": "Ann L."}
    run(uow, *user_events(ORG, "u1", None, ANN, 1), *user_events(ORG, "u1", ANN, renamed, 3))
    (older,) = user_events(ORG, "u1", ANN, {**ANN, "displayName": "Old"}, 2)
    assert run(uow, older) == [Outcome.STALE]
    assert the_member(uow)["display_name"] == "Ann L." and the_member(uow)["seq"] == 3


def test_a_batch_has_the_same_effect_as_its_events_one_by_one():
    renamed = {**ANN, "displayName": "A"}
    events = [
        login("ann@acme.test"),
        *user_events(ORG, "u1", None, ANN, 1),
        *user_events(ORG, "u1", ANN, renamed, 2),
        *user_events(ORG, "u2", None, {"userName": "carl"}, 1),
        login("ann@acme.test"),
        *user_events(ORG, "u1", renamed, None, 3),
    ]
    together, alone = FakeUnitOfWork(), FakeUnitOfWork()
    with pytest.MonkeyPatch.context() as patch:
        ids = iter(range(1000))
        patch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=next(ids)))
        out_together = Membership().apply(events, together)
        ids = iter(range(1000))
        out_alone = [o for e in events for o in Membership().apply([e], alone)]
    assert out_together == out_alone
    facts = lambda uow: [(e.id, e.kind, e.key, e.resource_version, e.data) for e in uow.events()]  # noqa: E731
    assert facts(together) == facts(alone) and len(facts(together)) == 4
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("created_at", "updated_at")} for r in rows]  # noqa: E731
    assert strip(together.tables["members"]) == strip(alone.tables["members"])


def test_a_member_whose_email_is_an_outside_account_gets_one_conflict():
    uow = FakeUnitOfWork()
    uow.tables["accounts"].append(
        {"id": str(uuid.uuid4()), "email": "ann@acme.test", "email_ci": "ann@acme.test", "org_id": None}
    )
    run(uow, *user_events(ORG, "u1", None, ANN, 1))
    (created,) = uow.events()
    assert Conflicts().apply([created, created], uow) == [Outcome.APPLIED, Outcome.IGNORED]
    assert kinds(uow)[-1] is c.EMAIL_CONFLICT_DETECTED
    assert the_member(uow)["conflict_id"] == uow.tables["conflicts"][0]["id"]


def test_an_account_the_org_already_holds_is_no_conflict():
    uow = FakeUnitOfWork()
    uow.tables["accounts"].append(
        {"id": str(uuid.uuid4()), "email": "ann@acme.test", "email_ci": "ann@acme.test", "org_id": ORG.id}
    )
    run(uow, *user_events(ORG, "u1", None, ANN, 1))
    assert Conflicts().apply(uow.events(), uow) == [Outcome.IGNORED]
    assert uow.tables.get("conflicts", []) == []


def test_the_admin_apis_status_names_are_the_domains():
    from typing import get_args

    from domain.model import CONFLICT
    from ingest.admin.models import LifecycleStatus, ShownStatus

    assert list(get_args(LifecycleStatus)) == [s.value for s in MemberStatus]
    assert set(get_args(ShownStatus)) == {s.value for s in MemberStatus} | {CONFLICT}


# -- people, not emails --------------------------------------------------------------------------


def billing_of(uow: FakeUnitOfWork) -> list[tuple[str, str, int]]:
    """(type, member id, seat version) of every billing event, in order."""
    return [
        (e.kind.name, e.data["member_id"], e.resource_version) for e in uow.events() if e.kind.topic_role == c.TopicRole.BILLING
    ]


def member_with(uow: FakeUnitOfWork, scim_user_id: str):
    return next(r for r in uow.tables["members"] if r["scim_user_id"] == scim_user_id)


def test_an_email_change_keeps_the_person_and_their_seat_and_a_reused_email_is_someone_new():
    uow = FakeUnitOfWork()
    renamed = {"userName": "ann.new@acme.test", "emails": [{"value": "Ann.New@acme.test", "primary": True}]}
    carl = {"userName": "carl@acme.test", "emails": [{"value": "Ann@acme.test", "primary": True}]}
    run(uow, *user_events(ORG, "u1", None, ANN, 1))
    run(uow, login("ann@acme.test"))
    ann = member_with(uow, "u1")["id"]
    run(uow, *user_events(ORG, "u1", ANN, renamed, 2), *user_events(ORG, "u1", renamed, {**renamed, "active": False}, 3))
    # someone else is given Ann's old address and signs in: their own member and first login
    run(uow, *user_events(ORG, "u2", None, carl, 1))
    run(uow, login("ANN@acme.test", at=datetime(2026, 6, 2, tzinfo=UTC)))
    carl_id = member_with(uow, "u2")["id"]
    # Ann, renamed, is reactivated and signs in with her new address: her seat is restored
    run(uow, *user_events(ORG, "u1", {**renamed, "active": False}, renamed, 4))
    run(uow, login("ann.new@ACME.test", at=datetime(2026, 6, 3, tzinfo=UTC)))
    assert billing_of(uow) == [
        ("BillingFirstLogin", ann, 1),
        ("BillingSeatReleased", ann, 2),
        ("BillingFirstLogin", carl_id, 1),
        ("BillingSeatRestored", ann, 3),
    ]
    assert member_with(uow, "u1")["email"] == "Ann.New@acme.test"
    assert all("@" not in e.key and "@" not in e.subject for e in uow.events())


def test_a_user_the_idp_creates_again_with_the_same_external_id_is_the_same_member():
    uow = FakeUnitOfWork()
    ann = {**ANN, "externalId": "00u-ann"}
    run(uow, *user_events(ORG, "u1", None, ann, 1), login("ann@acme.test"), *user_events(ORG, "u1", ann, None, 2))
    first = member_with(uow, "u1")["id"]
    run(uow, *user_events(ORG, "u9", None, ann, 1))  # a new SCIM id, the same person
    assert member_with(uow, "u9")["id"] == first and member_with(uow, "u9")["status"] == MemberStatus.PROVISIONED
    run(uow, login("ann@acme.test", at=datetime(2026, 6, 2, tzinfo=UTC)))
    assert billing_of(uow) == [
        ("BillingFirstLogin", first, 1),
        ("BillingSeatReleased", first, 2),
        ("BillingSeatRestored", first, 3),
    ]
    # without the externalId, a new SCIM user with the same email is someone new
    run(uow, *user_events(ORG, "u9", ann, None, 2), *user_events(ORG, "u10", None, ANN, 1), login("ann@acme.test"))
    assert billing_of(uow)[-1] == ("BillingFirstLogin", member_with(uow, "u10")["id"], 1)


def test_sso_binds_the_idp_subject_and_matches_on_it_after_an_email_change():
    uow = FakeUnitOfWork()
    run(uow, login("bob@acme.test", jit=True, subject="00u-bob"))
    (bob,) = uow.tables["members"]
    run(uow, login("robert@acme.test", jit=True, subject="00u-bob", at=datetime(2026, 6, 2, tzinfo=UTC)))
    assert len(uow.tables["members"]) == 1 and bob["email"] == "robert@acme.test"
    assert uow.tables["member_identities"] == [
        {"org_id": ORG.id, "issuer": "https://idp", "subject": "00u-bob", "member_id": bob["id"]}
    ]
    # another subject at the same IdP signing in with Bob's (now old) address is someone else
    run(uow, login("robert@acme.test", jit=True, subject="00u-eve", at=datetime(2026, 6, 3, tzinfo=UTC)))
    assert len(uow.tables["members"]) == 2
    assert [k for k, *_ in billing_of(uow)] == ["BillingFirstLogin", "BillingFirstLogin"]


def test_an_admin_removing_a_just_in_time_member_releases_its_seat_and_it_can_come_back():
    from domain import admin
    from domain.orgs import Org

    uow = FakeUnitOfWork()
    org = Org(ORG.id, ORG.slug, "Acme", sso_provisioning=True)
    uow.orgs.put(org)
    run(uow, login("bob@acme.test", jit=True, subject="00u-bob"))
    (bob,) = uow.tables["members"]
    admin.remove_member(uow, org, "cli", bob["id"])
    run(uow, uow.events()[-1])
    assert bob["status"] == MemberStatus.REMOVED
    with pytest.raises(admin.AdminError, match="removed already"):
        admin.remove_member(uow, org, "cli", bob["id"])
    run(uow, login("bob@acme.test", jit=True, subject="00u-bob", at=datetime(2026, 6, 2, tzinfo=UTC)))
    assert bob["status"] == MemberStatus.ACTIVE
    assert [k for k, *_ in billing_of(uow)] == ["BillingFirstLogin", "BillingSeatReleased", "BillingSeatRestored"]


def test_a_scim_member_is_removed_at_the_idp_not_by_the_admin():
    from domain import admin
    from domain.orgs import Org

    uow = FakeUnitOfWork()
    org = Org(ORG.id, ORG.slug, "Acme")
    run(uow, *user_events(ORG, "u1", None, ANN, 1))
    with pytest.raises(admin.AdminError, match="SCIM") as refused:
        admin.remove_member(uow, org, "cli", the_member(uow)["id"])
    assert refused.value.status == 409 and len(uow.events()) == 1


def test_switching_jit_off_with_removal_removes_only_the_members_sso_created():
    from domain import admin
    from domain.orgs import Org

    uow = FakeUnitOfWork()
    org = Org(ORG.id, ORG.slug, "Acme", sso_provisioning=True)
    uow.orgs.put(org)
    run(uow, *user_events(ORG, "u1", None, ANN, 1), login("bob@acme.test", jit=True, subject="00u-bob"))
    start = len(uow.staged)
    removed = admin.remove_sso_members(uow, org, "cli")
    for event in uow.events()[start:]:
        run(uow, event)
    statuses = {r["source"]: r["status"] for r in uow.tables["members"]}
    assert statuses == {"scim": MemberStatus.PROVISIONED, "sso": MemberStatus.REMOVED} and len(removed) == 1
    assert uow.orgs.by_id(ORG.id).sso_provisioning is False
    assert billing_of(uow)[-1][0] == "BillingSeatReleased"


def test_a_seat_cannot_be_restored_without_a_release_nor_billed_twice():
    uow = FakeUnitOfWork()
    run(uow, *user_events(ORG, "u1", None, ANN, 1), login("ann@acme.test"))
    first_login = next(e for e in uow.events() if e.kind is c.MEMBER_LOGGED_IN_FIRST_TIME)
    returned = Event.of(
        c.MemberReturned(**{**first_login.data, "cause_event_id": str(uuid.uuid4())}),
        org_id=ORG.id, org_slug=ORG.slug, version=9, occasion=None,
    )  # fmt: skip
    assert Billing().apply([first_login, returned], uow) == [Outcome.STALE, Outcome.IGNORED]
    assert len(billing_of(uow)) == 1


def _seated_org(uow: FakeUnitOfWork, limit: int, policy: str):
    from domain.orgs import Org

    org = Org(ORG.id, ORG.slug, "Acme", seat_limit=limit, seat_policy=policy)
    uow.orgs.put(org)
    for n in range(3):
        person = {"userName": f"p{n}@acme.test"}
        run(uow, *user_events(ORG, f"u{n}", None, person, 1))
    return org


def _sign_in(uow: FakeUnitOfWork, org, email: str):
    from ingest.logins import SignIn, record

    start = len(uow.staged)
    outcome = record(uow, org, SignIn(email=email, method="password", sso=False))
    return outcome, uow.events()[start:]


def test_a_seat_limit_with_refuse_refuses_the_sign_in_that_would_exceed_it_even_before_any_is_applied():
    from domain.model import SEAT_LIMIT_REACHED

    uow = FakeUnitOfWork()
    org = _seated_org(uow, 2, "refuse")
    first, (first_event,) = _sign_in(uow, org, "p0@acme.test")
    second, (second_event,) = _sign_in(uow, org, "P1@acme.test")  # nothing applied yet: the claims count
    third, (refused,) = _sign_in(uow, org, "p2@acme.test")
    assert (first.accepted, second.accepted, third.accepted) == (True, True, False)
    assert third.reason == SEAT_LIMIT_REACHED.format(limit=2) and refused.kind is c.LOGIN_REFUSED
    assert first_event.data["member_id"] == member_with(uow, "u0")["id"] == first_event.key.split(":")[1]
    run(uow, first_event, second_event)
    assert uow.tables["seat_claims"] == []  # applied: the members' statuses count the seats now
    assert member_with(uow, "u2")["status"] == MemberStatus.PROVISIONED
    assert _sign_in(uow, org, "p2@acme.test")[0].accepted is False
    (off,) = user_events(ORG, "u0", {"userName": "p0@acme.test"}, {"userName": "p0@acme.test", "active": False}, 2)
    run(uow, off)  # a seat is freed
    again, (accepted,) = _sign_in(uow, org, "p2@acme.test")
    assert again.accepted and accepted.kind is c.LOGIN_SUCCEEDED


def test_a_seat_limit_with_allow_bills_past_it_with_an_overage():
    uow = FakeUnitOfWork()
    org = _seated_org(uow, 1, "allow")
    for email in ("p0@acme.test", "p1@acme.test"):
        outcome, events = _sign_in(uow, org, email)
        assert outcome.accepted
        run(uow, *events)
    overages = [e for e in uow.events() if e.kind is c.BILLING_SEAT_OVERAGE]
    assert [(e.data["seats_held"], e.data["seat_limit"], e.data["member_id"]) for e in overages] == [
        (2, 1, member_with(uow, "u1")["id"])
    ]


def test_a_sign_in_that_waited_for_a_re_created_member_restores_its_seat():
    uow = FakeUnitOfWork()
    ann = {**ANN, "externalId": "00u-ann"}
    run(uow, *user_events(ORG, "u1", None, ann, 1), login("ann@acme.test"), *user_events(ORG, "u1", ann, None, 2))
    first = member_with(uow, "u1")["id"]
    assert run(uow, login("ann@acme.test", at=datetime(2026, 6, 2, tzinfo=UTC))) == [Outcome.PENDING]  # re-created later
    run(uow, *user_events(ORG, "u9", None, ann, 1))
    assert member_with(uow, "u9")["status"] == MemberStatus.ACTIVE and uow.tables["pending_logins"] == []
    assert billing_of(uow)[-1] == ("BillingSeatRestored", first, 3)


def test_only_a_persistent_saml_name_id_is_a_subject_to_bind():
    from ingest.sso.saml import PERSISTENT, stable_subject

    assert stable_subject("00u-ann", PERSISTENT) == "00u-ann"
    for fmt in (
        "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
        None,
    ):
        assert stable_subject("ann@acme.test", fmt) is None
    assert stable_subject(None, PERSISTENT) is None
