"""One contract for each repository of domain.uow, run on the in-memory fakes (tests/fakes.py) and
on PostgreSQL (domain.postgres, in a transaction rolled back after each test), so the fakes the
handlers' unit tests use cannot drift from the real thing."""

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from core.tables import accounts, orgs, scim_resources
from domain.model import Link, Member, MemberStatus, PendingLogin, Seat, SeatState, Source
from domain.orgs import Org
from domain.postgres import SqlUnitOfWork
from tests.fakes import FakeUnitOfWork

pytestmark = pytest.mark.contract

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
TOPICS = {"lifecycle": "c.lifecycle", "members": "c.members", "billing": "c.billing", "dead_letter": "c.dlq"}


class Backend:
    """A unit of work plus what a test needs to set up rows the repositories only read."""

    def __init__(self, uow: Any, add_org: Any, add_account: Any, add_scim_user: Any):
        self.uow = uow
        self.add_org = add_org
        self.add_account = add_account
        self.add_scim_user = add_scim_user


@pytest.fixture(params=["fake", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "fake":
        uow = FakeUnitOfWork(topics=TOPICS)

        def fake_account(account_id: str, email: str, org_id: str | None = None) -> None:
            uow.tables.setdefault("accounts", []).append(
                {"id": account_id, "email": email, "email_ci": email.lower(), "org_id": org_id}
            )

        def fake_org() -> str:
            org_id = str(uuid.uuid4())
            uow.orgs.put(Org(id=org_id, slug="c-" + org_id[:12], name="contract"))
            return org_id

        def fake_scim_user(org_id: str, user_name: str, emails: list[str]) -> None:
            uow.tables["scim_resources"].append(
                {"org_id": org_id, "user_name_ci": user_name.lower(), "emails_ci": [e.lower() for e in emails]}
            )

        yield Backend(uow, fake_org, fake_account, fake_scim_user)
        return
    engine: Engine = request.getfixturevalue("engine")
    with engine.connect() as conn:
        transaction = conn.begin()
        uow = SqlUnitOfWork(conn, TOPICS)

        def pg_org() -> str:
            org_id = str(uuid.uuid4())
            conn.execute(orgs.insert().values(id=org_id, slug="c-" + org_id[:12], name="contract"))
            return org_id

        def pg_account(account_id: str, email: str, org_id: str | None = None) -> None:
            conn.execute(accounts.insert().values(id=account_id, email=email, email_ci=email.lower(), org_id=org_id))

        def pg_scim_user(org_id: str, user_name: str, emails: list[str]) -> None:
            conn.execute(scim_resources.insert().values(
                org_id=org_id, id=uuid.uuid4().hex, resource_type="User", version=1, data={"userName": user_name},
                user_name_ci=user_name.lower(), emails_ci=[e.lower() for e in emails],
            ))  # fmt: skip

        try:
            yield Backend(uow, pg_org, pg_account, pg_scim_user)
        finally:
            transaction.rollback()


def _member(
    org_id: str,
    *,
    scim: str | None = None,
    email: str | None = None,
    status: MemberStatus = MemberStatus.PROVISIONED,
    source: Source = Source.SCIM,
) -> Member:
    return Member(
        id=str(uuid.uuid4()),
        org_id=org_id,
        scim_user_id=scim,
        user_name=email or scim,
        email=email,
        email_ci=email.lower() if email else None,
        display_name=None,
        status=status,
        source=source,
    )


def test_members_are_found_by_scim_user_only_in_their_org(backend: Backend):
    members, a, b = backend.uow.members, backend.add_org(), backend.add_org()
    ann, bob = _member(a, scim="u1", email="Ann@x.test"), _member(b, scim="u1")
    members.add([ann, bob])
    found = members.by_scim_user([(a, "u1"), (a, "u2")])
    assert list(found) == [(a, "u1")] and found[(a, "u1")] == ann
    assert members.by_scim_user([]) == {}


def test_a_saved_member_reads_back_and_an_unsaved_change_does_not(backend: Backend):
    members, org = backend.uow.members, backend.add_org()
    ann = _member(org, scim="u1", email="ann@x.test")
    members.add([ann])
    ann.status, ann.first_login_at, ann.version, ann.seq = MemberStatus.ACTIVE, T0, 3, 7
    members.save([ann])
    ann.display_name = "not saved"
    again = members.get(ann.id)
    assert again is not None
    assert (again.status, again.first_login_at, again.version, again.seq, again.display_name) == (
        MemberStatus.ACTIVE,
        T0,
        3,
        7,
        None,
    )
    assert members.get(str(uuid.uuid4())) is None


def test_live_by_email_skips_removed_members_and_takes_the_oldest(backend: Backend):
    members, org = backend.uow.members, backend.add_org()
    gone = _member(org, scim="u0", email="ann@x.test", status=MemberStatus.REMOVED)
    members.add([gone])
    first = _member(org, email="ann@x.test", source=Source.MANUAL)
    members.add([first])
    members.add([_member(org, scim="u2", email="ann@x.test")])
    found = members.live_by_email(org, "ann@x.test")
    assert found is not None and found.id == first.id
    assert members.live_by_email(org, "bob@x.test") is None


def test_live_by_emails_is_live_by_email_of_each_person(backend: Backend):
    members, org, other = backend.uow.members, backend.add_org(), backend.add_org()
    old_ann = _member(org, scim="u0", email="ann@x.test", status=MemberStatus.REMOVED)
    members.add([old_ann])
    ann, bob = _member(org, email="ann@x.test", source=Source.MANUAL), _member(org, scim="u1", email="bob@x.test")
    members.add([ann, bob])
    members.add([_member(other, scim="u3", email="cat@x.test")])  # (which of two live is oldest: tests/integration)
    people = [(org, "ann@x.test"), (org, "bob@x.test"), (org, "cat@x.test"), (other, "ann@x.test"), (other, "cat@x.test")]
    found = members.live_by_emails(people)
    assert {p: m.id for p, m in found.items()} == {
        p: m.id for p in people if (m := members.live_by_email(*p)) is not None
    }
    assert set(found) == {(org, "ann@x.test"), (org, "bob@x.test"), (other, "cat@x.test")} and found[(org, "ann@x.test")] == ann
    assert members.live_by_emails([]) == {}


def test_saving_members_at_once_writes_each_its_own_values(backend: Backend):
    members, org = backend.uow.members, backend.add_org()
    ann, bob = _member(org, scim="u1", email="ann@x.test"), _member(org, scim="u2", email="bob@x.test")
    members.add([ann, bob])
    ann.status, ann.first_login_at, ann.version = MemberStatus.ACTIVE, T0, 2
    bob.display_name, bob.email, bob.email_ci, bob.seq = "Bob B", "Bob@Y.test", "bob@y.test", 5
    members.save([ann, bob])
    assert members.get(ann.id) == ann and members.get(bob.id) == bob


def test_unowned_members_with_an_email_across_orgs(backend: Backend):
    members, a, b = backend.uow.members, backend.add_org(), backend.add_org()
    ann_a, ann_b = _member(a, scim="u1", email="ann@x.test"), _member(b, scim="u9", email="ann@x.test")
    removed = _member(b, scim="u8", email="ann@x.test", status=MemberStatus.REMOVED)
    members.add([ann_a, ann_b, removed])
    assert {m.id for m in members.unowned_with_email("ann@x.test")} == {ann_a.id, ann_b.id}
    conflict_id = str(uuid.uuid4())
    members.set_conflict(ann_a.id, conflict_id)
    got = members.get(ann_a.id)
    assert got is not None and got.conflict_id == conflict_id


def test_pending_logins_keep_the_first_and_are_removed_when_claimed(backend: Backend):
    pending, org = backend.uow.pending_logins, backend.add_org()
    pending.add([PendingLogin(org, "ann@x.test", str(uuid.uuid4()), T0, "oidc")])
    pending.add([PendingLogin(org, "ann@x.test", str(uuid.uuid4()), T0 + timedelta(hours=1), "saml")])
    found = pending.find([(org, "ann@x.test"), (org, "bob@x.test")])
    assert list(found) == [(org, "ann@x.test")] and found[(org, "ann@x.test")].logged_in_at == T0
    pending.remove([(org, "ann@x.test")])
    assert pending.find([(org, "ann@x.test")]) == {}


def test_groups_keep_their_version_and_deletion(backend: Backend):
    groups, org = backend.uow.groups, backend.add_org()
    assert groups.seq_of(org, "g1") is None
    groups.put(org, "g1", "Eng", 2, False)
    groups.put(org, "g2", "Ops", 1, False)
    groups.put(org, "g2", "Ops", 4, True)
    assert groups.seq_of(org, "g1") == 2
    assert groups.deleted_at([(org, "g1"), (org, "g2"), (org, "g3")]) == {(org, "g2"): 4}


def test_a_link_is_written_unless_a_newer_one_is_stored(backend: Backend):
    groups, org = backend.uow.groups, backend.add_org()
    assert groups.put_links([Link(org, "g1", "u1", True, 3), Link(org, "g1", "u2", True, 1)]) == {
        (org, "g1", "u1"),
        (org, "g1", "u2"),
    }
    assert groups.put_links([Link(org, "g1", "u1", False, 2), Link(org, "g1", "u2", False, 1)]) == {(org, "g1", "u2")}
    groups.unlink_group(org, "g1", 9)
    assert groups.put_links([Link(org, "g1", "u1", True, 8)]) == set()
    assert groups.put_links([]) == set()


def test_a_seat_is_billed_once_and_moves_only_from_the_state_it_is_in(backend: Backend):
    seats, org = backend.uow.seats, backend.add_org()
    ann, event_id = str(uuid.uuid4()), str(uuid.uuid4())
    assert seats.add_if_absent(Seat(org, ann, SeatState.HELD, 1, T0, event_id))
    assert not seats.add_if_absent(Seat(org, ann, SeatState.HELD, 1, T0, str(uuid.uuid4())))
    assert seats.move(org, ann, source=SeatState.RELEASED, target=SeatState.HELD) is None  # no restore without a release
    assert seats.move(org, ann, source=SeatState.HELD, target=SeatState.RELEASED) == 2
    assert seats.move(org, ann, source=SeatState.HELD, target=SeatState.RELEASED) is None
    assert seats.get(org, ann) == Seat(org, ann, SeatState.RELEASED, 2, T0, event_id)
    assert seats.count_held(org) == 0
    assert seats.move(org, ann, source=SeatState.RELEASED, target=SeatState.HELD) == 3
    assert seats.count_held(org) == 1 and seats.get(org, str(uuid.uuid4())) is None


def test_seats_added_at_once_are_each_billed_once(backend: Backend):
    seats, org = backend.uow.seats, backend.add_org()
    ann, bob, cat = (str(uuid.uuid4()) for _ in range(3))
    ann_event = str(uuid.uuid4())
    assert seats.add_absent([Seat(org, ann, SeatState.HELD, 1, T0, ann_event)]) == {(org, ann)}
    later = T0 + timedelta(minutes=1)
    batch = [
        Seat(org, ann, SeatState.HELD, 1, later, str(uuid.uuid4())),  # billed before
        Seat(org, bob, SeatState.HELD, 1, T0, str(uuid.uuid4())),
        Seat(org, bob, SeatState.HELD, 1, later, str(uuid.uuid4())),  # the same member twice: the first counts
        Seat(org, cat, SeatState.HELD, 1, later, str(uuid.uuid4())),
    ]
    assert seats.add_absent(batch) == {(org, bob), (org, cat)}
    assert seats.get(org, ann) == Seat(org, ann, SeatState.HELD, 1, T0, ann_event)
    assert seats.get(org, bob) == batch[1] and seats.count_held(org) == 3
    assert seats.add_absent([]) == set()


def test_an_idp_subject_is_bound_to_one_member_and_a_member_has_one_subject_per_idp(backend: Backend):
    ids, members, org = backend.uow.identities, backend.uow.members, backend.add_org()
    ann, bob = _member(org, email="ann@x.test", source=Source.SSO), _member(org, email="bob@x.test", source=Source.SSO)
    members.add([ann, bob])
    ids.bind(org, "https://idp", "s-ann", ann.id)
    assert ids.member_of(org, "https://idp", "s-ann") == ann.id and ids.subject_of(ann.id, "https://idp") == "s-ann"
    assert ids.member_of(org, "https://other", "s-ann") is None and ids.subject_of(ann.id, "https://other") is None
    ids.bind(org, "https://idp", "s-ann2", ann.id)  # the IdP's subject for Ann changed
    assert ids.member_of(org, "https://idp", "s-ann") is None and ids.subject_of(ann.id, "https://idp") == "s-ann2"
    ids.bind(org, "https://idp", "s-ann2", bob.id)  # re-bound (Ann's member is gone)
    assert ids.member_of(org, "https://idp", "s-ann2") == bob.id and ids.subject_of(ann.id, "https://idp") is None


def test_seat_claims_count_once_per_member_and_only_while_young(backend: Backend):
    claims, org = backend.uow.seat_claims, backend.add_org()
    ann = str(uuid.uuid4())
    first, second, anonymous = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    claims.add(org, first, ann)
    claims.add(org, second, ann)  # the same member again: nothing more
    claims.add(org, anonymous, None)
    assert claims.count(org, max_age_seconds=600) == 2 and claims.count(backend.add_org(), max_age_seconds=600) == 0
    claims.remove(org, first)
    assert claims.count(org, max_age_seconds=600) == 1
    time.sleep(0.01)
    assert claims.count(org, max_age_seconds=0.001) == 0


def test_seat_claims_removed_at_once_are_only_those_named(backend: Backend):
    claims, org, other = backend.uow.seat_claims, backend.add_org(), backend.add_org()
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    claims.add(org, a, None)
    claims.add(org, b, None)
    claims.add(other, c, None)
    claims.remove_all([(org, a), (other, b), (org, str(uuid.uuid4()))])  # (other, b) is no claim
    assert claims.count(org, max_age_seconds=600) == 1 and claims.count(other, max_age_seconds=600) == 1
    claims.remove_all([])
    assert not claims.remove(org, a) and claims.remove(org, b)


def test_members_by_external_id_active_counts_and_sources(backend: Backend):
    members, org = backend.uow.members, backend.add_org()
    gone = _member(org, scim="u1", email="ann@x.test", status=MemberStatus.REMOVED)
    gone.external_id = "00u-ann"
    live = _member(org, scim="u2", email="bob@x.test", status=MemberStatus.ACTIVE)
    live.external_id = "00u-bob"
    jit = _member(org, email="jit@x.test", status=MemberStatus.ACTIVE, source=Source.SSO)
    members.add([gone, live, jit])
    assert members.removed_by_external_id([(org, "00u-ann"), (org, "00u-bob"), (org, "00U-ANN")]) == {(org, "00u-ann"): gone}
    assert members.removed_by_external_id([]) == {}
    assert members.count_active(org) == 2
    assert [m.id for m in members.live_from(org, Source.SSO)] == [jit.id] and members.live_from(org, Source.MANUAL) == []


def test_the_earliest_early_sign_in_of_a_person_is_kept(backend: Backend):
    pending, org = backend.uow.pending_logins, backend.add_org()
    pending.add([PendingLogin(org, "ann@x.test", str(uuid.uuid4()), T0 + timedelta(minutes=5), "password")])
    sign_in_id = str(uuid.uuid4())
    pending.add([PendingLogin(org, "ann@x.test", str(uuid.uuid4()), T0, "oidc", sign_in_id)])
    pending.add([PendingLogin(org, "ann@x.test", str(uuid.uuid4()), T0 + timedelta(minutes=9), "saml")])
    assert pending.find([(org, "ann@x.test")])[(org, "ann@x.test")].logged_in_at == T0


def test_early_sign_ins_added_at_once_keep_the_earliest_of_each_person(backend: Backend):
    pending, org = backend.uow.pending_logins, backend.add_org()
    stored = PendingLogin(org, "ann@x.test", str(uuid.uuid4()), T0 + timedelta(minutes=5), "password")
    pending.add([stored])
    tie = PendingLogin(org, "bob@x.test", str(uuid.uuid4()), T0, "password")
    batch = [
        PendingLogin(org, "ann@x.test", str(uuid.uuid4()), T0 + timedelta(minutes=7), "saml"),  # later than stored
        tie,
        PendingLogin(org, "bob@x.test", str(uuid.uuid4()), T0, "oidc"),  # the same instant: the first given wins
        PendingLogin(org, "cat@x.test", str(uuid.uuid4()), T0 + timedelta(minutes=3), "oidc"),
        earliest := PendingLogin(org, "cat@x.test", str(uuid.uuid4()), T0 + timedelta(minutes=1), "link", str(uuid.uuid4())),
    ]
    pending.add(batch)
    found = pending.find([(org, e) for e in ("ann@x.test", "bob@x.test", "cat@x.test")])
    assert found == {(org, "ann@x.test"): stored, (org, "bob@x.test"): tie, (org, "cat@x.test"): earliest}
    pending.remove([(org, "ann@x.test"), (org, "cat@x.test")])
    assert list(pending.find([(org, e) for e in ("ann@x.test", "bob@x.test", "cat@x.test")])) == [(org, "bob@x.test")]


def test_accounts_by_email_and_id(backend: Backend):
    repo, org = backend.uow.accounts, backend.add_org()
    solo, owned = str(uuid.uuid4()), str(uuid.uuid4())
    backend.add_account(solo, "Solo@x.test")
    backend.add_account(owned, "owned@x.test", org)
    assert repo.taken(["solo@x.test", "owned@x.test", "nobody@x.test"]) == {"solo@x.test", "owned@x.test"}
    found = repo.by_email("solo@x.test")
    assert found is not None and (found.id, found.email, found.org_id) == (solo, "Solo@x.test", None)
    got = repo.get(owned)
    assert got is not None and got.org_id == org
    assert repo.by_email("nobody@x.test") is None and repo.get(str(uuid.uuid4())) is None


def test_a_conflict_pair_is_opened_once(backend: Backend):
    conflicts, org = backend.uow.conflicts, backend.add_org()
    member, account = _member(org, scim="u1", email="ann@x.test"), str(uuid.uuid4())
    backend.uow.members.add([member])
    backend.add_account(account, "ann@x.test")
    args = {"org_id": org, "member_id": member.id, "account_id": account, "email_ci": "ann@x.test", "error": "taken"}
    assert conflicts.add_if_new(conflict_id=str(uuid.uuid4()), **args)
    assert not conflicts.add_if_new(conflict_id=str(uuid.uuid4()), **args)


def test_members_known_by_email_or_as_a_scim_user_on_its_way(backend: Backend):
    members, org = backend.uow.members, backend.add_org()
    members.add([_member(org, email="ann@x.test", source=Source.MANUAL)])
    assert members.known(org, "ann@x.test")
    assert not members.known(org, "bob@x.test")
    backend.add_scim_user(org, "bob-login", ["Bob@x.test"])
    assert members.known(org, "bob@x.test") and not members.known(backend.add_org(), "bob@x.test")
    backend.add_scim_user(org, "carol@x.test", [])
    assert members.known(org, "carol@x.test")


def test_an_account_is_added_viewed_and_taken_by_an_org(backend: Backend):
    repo, org = backend.uow.accounts, backend.add_org()
    account_id = str(uuid.uuid4())
    assert repo.view("zoe@x.test") is None
    repo.add(account_id, "Zoe@X.test", "Zoe")
    view = repo.view("zoe@x.test")
    assert view is not None and {k: view[k] for k in ("id", "email", "display_name", "org_id")} == {
        "id": account_id, "email": "Zoe@X.test", "display_name": "Zoe", "org_id": None,
    }  # fmt: skip
    assert datetime.fromisoformat(view["created_at"]).tzinfo is not None
    repo.set_org(account_id, org)
    got = repo.get(account_id)
    assert got is not None and got.org_id == org


def test_an_open_conflict_is_found_by_id_or_email_then_closed(backend: Backend):
    uow, org = backend.uow, backend.add_org()
    member, account, conflict_id = _member(org, scim="u1", email="ann@x.test"), str(uuid.uuid4()), str(uuid.uuid4())
    uow.members.add([member])
    backend.add_account(account, "ann@x.test")
    args = {"org_id": org, "member_id": member.id, "account_id": account, "email_ci": "ann@x.test", "error": "taken"}
    assert uow.conflicts.add_if_new(conflict_id=conflict_id, **args)
    uow.members.set_conflict(member.id, conflict_id)
    by_email = uow.conflicts.open_one(org, email_ci="ann@x.test")
    assert by_email is not None and (by_email.id, by_email.member_id, by_email.account_id) == (conflict_id, member.id, account)
    assert uow.conflicts.open_one(org, conflict_id=conflict_id) == by_email
    assert uow.conflicts.open_one(backend.add_org(), conflict_id=conflict_id) is None
    uow.conflicts.close(conflict_id, "acquired", at=T0, actor="cli")
    assert uow.conflicts.open_one(org, conflict_id=conflict_id) is None
    uow.members.close_conflict(member.id, account_id=account, at=T0)
    got = uow.members.get(member.id)
    assert got is not None and (got.conflict_id, got.account_id) == (None, account)


def test_an_orgs_settings_change_under_its_lock(backend: Backend):
    org_id = backend.add_org()
    org = backend.uow.orgs.lock(org_id)
    assert (org.id, org.manual_provisioning, org.sso_provisioning) == (org_id, True, False)
    backend.uow.orgs.set_settings(org_id, {"sso_provisioning": True, "manual_provisioning": False})
    again = backend.uow.orgs.lock(org_id)
    assert (again.manual_provisioning, again.sso_provisioning, again.scim_enabled) == (False, True, True)
