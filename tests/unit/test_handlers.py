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


def login(email: str, *, jit: bool = False, at: datetime = AT) -> Event:
    how = {
        "email": email,
        "method": "oidc",
        "sso": True,
        "jit": jit,
        "idp": "https://idp",
        "subject": "s",
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
    run(uow, back)
    assert kinds(uow)[3:] == [c.MEMBER_DEACTIVATED, c.BILLING_SEAT_RELEASED, c.MEMBER_REACTIVATED, c.BILLING_SEAT_RESTORED]
    assert [e.resource_version for e in uow.events() if e.kind.topic_role == c.TopicRole.MEMBERS] == [1, 2, 3, 4]
    assert the_member(uow)["status"] == MemberStatus.ACTIVE


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
