"""Safe acquisition, verified domains and invitations: the rules, on the in-memory unit of work.

An org acquires only an account of no org on a domain it verified; otherwise it is refused with
words that say nothing about any other org, and nothing changes. DNS answers are stand-ins here;
tests/integration/test_domains.py asks a real DNS server.
"""

import uuid
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.resolver
import pytest

from domain import admin, domains, invitations, ownership
from domain.accounts import register
from domain.orgs import Org
from events import catalogue as c
from ingest.scim.changes import OrgRef, user_events
from tests.fakes import FakeUnitOfWork
from workers.conflicts import Conflicts
from workers.membership import Membership

pytestmark = pytest.mark.unit

A = Org(id="0a0a0a0a-0000-4000-8000-00000000000a", slug="org-a", name="Org A Ltd")
B = Org(id="0b0b0b0b-0000-4000-8000-00000000000b", slug="org-b", name="Org B Ltd")


@dataclass(frozen=True)
class _Txt:
    strings: tuple[bytes, ...]


class FakeDns:
    """Answers TXT queries from `records` (name -> values), or raises what `failure` says."""

    def __init__(self, records: dict[str, list[str]] | None = None, failure: Exception | None = None):
        self.records, self.failure = records or {}, failure
        self.asked: list[str] = []

    def resolve(self, qname: str, rdtype: str) -> list[_Txt]:
        self.asked.append(qname)
        if self.failure is not None:
            raise self.failure
        if qname not in self.records:
            raise dns.resolver.NXDOMAIN()
        return [_Txt((value[:10].encode(), value[10:].encode())) for value in self.records[qname]]  # split like long TXT strings


@pytest.fixture
def uow() -> FakeUnitOfWork:
    db = FakeUnitOfWork()
    db.orgs.put(A)
    db.orgs.put(B)
    return db


def pushed(uow: FakeUnitOfWork, org: Org, email: str) -> str:
    """A SCIM user of the org with this email, applied and checked for conflicts as the workers do; its conflict id."""
    (created,) = user_events(OrgRef(org.id, org.slug), uuid.uuid4().hex, None, {"userName": email}, 1)
    start = len(uow.staged)
    Membership().apply([created], uow)
    Conflicts().apply([e for e in uow.events()[start:] if e.kind is c.MEMBER_CREATED], uow)
    (conflict,) = [r for r in uow.tables["conflicts"] if r["org_id"] == org.id and r["email_ci"] == email.lower()]
    return str(conflict["id"])


def state(uow: FakeUnitOfWork) -> tuple[Any, ...]:
    """Every row a refusal must leave as it was, and the staged events."""
    rows = ("accounts", "conflicts", "members", "invitations", "org_domains")
    return tuple(repr(sorted(map(repr, uow.tables.get(name, [])))) for name in rows) + (len(uow.staged),)


def refused(uow: FakeUnitOfWork, call: Any, status: int) -> str:
    before = state(uow)
    with pytest.raises((admin.AdminError, invitations.InvitationError)) as raised:
        call()
    assert raised.value.status == status, str(raised.value)
    assert state(uow) == before, "a refusal changes nothing"
    return str(raised.value)


def reveals_nothing_of(org: Org, message: str) -> bool:
    return not any(part in message for part in (org.id, org.slug, org.name))


# -- domain names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "normal"),
    [("Example.COM", "example.com"), (" sub.example.com. ", "sub.example.com"), ("Bücher.Example", "xn--bcher-kva.example")],
)
def test_a_domain_is_lower_cased_and_idna_encoded(given: str, normal: str):
    assert ownership.normalise_domain(given) == normal


@pytest.mark.parametrize("bad", ["localhost", "", "a..example", "-a.example", "a_b.example", "10.0.0.1", "x" * 250 + ".com"])
def test_what_is_not_a_domain(bad: str):
    with pytest.raises(ownership.DomainError):
        ownership.normalise_domain(bad)


def test_an_emails_domain():
    assert ownership.email_domain("Ann@Sub.Example.COM") == "sub.example.com"
    assert ownership.email_domain("not-an-email") is None


# -- acquisition -----------------------------------------------------------------------------


def test_acquiring_on_an_unverified_domain_is_refused_the_same_whether_another_org_owns_the_account(uow):
    register(uow, "owned@d1.example")
    register(uow, "free@d1.example")
    uow.accounts.set_org(uow.accounts.by_email("owned@d1.example").id, B.id)  # type: ignore[union-attr]
    owned, free = pushed(uow, A, "owned@d1.example"), pushed(uow, A, "free@d1.example")
    said_owned = refused(uow, lambda: admin.resolve(uow, A, "cli", owned, acquire=True), 409)
    said_free = refused(uow, lambda: admin.resolve(uow, A, "cli", free, acquire=True), 409)
    assert said_owned == said_free == ownership.NOT_VERIFIED.format(domain="d1.example")
    assert "invite" in said_owned and reveals_nothing_of(B, said_owned)


def test_an_account_of_another_org_is_never_acquired_even_on_a_domain_verified_here(uow):
    register(uow, "kept@d2.example")
    uow.accounts.set_org(uow.accounts.by_email("kept@d2.example").id, B.id)  # type: ignore[union-attr]
    conflict = pushed(uow, A, "kept@d2.example")
    domains.add(uow, A, "d2.example", "support:ops", verified=True)
    said = refused(uow, lambda: admin.resolve(uow, A, "cli", conflict, acquire=True), 409)
    assert said == ownership.OWNED_ELSEWHERE and reveals_nothing_of(B, said)


def test_an_account_of_no_org_on_a_verified_domain_is_acquired(uow):
    register(uow, "Ann@D3.example")
    conflict = pushed(uow, A, "ann@d3.example")
    domains.add(uow, A, "D3.EXAMPLE", "support:ops", verified=True)
    result = admin.resolve(uow, A, "cli", conflict, acquire=True)
    assert result["status"] == "acquired"
    assert uow.accounts.by_email("ann@d3.example").org_id == A.id  # type: ignore[union-attr]
    assert uow.events()[-1].kind is c.ACCOUNT_ACQUIRED


def test_dismissing_is_always_allowed(uow):
    register(uow, "gone@d4.example")
    uow.accounts.set_org(uow.accounts.by_email("gone@d4.example").id, B.id)  # type: ignore[union-attr]
    conflict = pushed(uow, A, "gone@d4.example")
    assert admin.resolve(uow, A, "cli", conflict, acquire=False)["status"] == "dismissed"


# -- domains ---------------------------------------------------------------------------------


def test_adding_a_domain_gives_the_same_record_to_the_same_org_and_another_to_another(uow):
    first = domains.add(uow, A, "acme.example", "cli")
    assert first["status"] == "pending" and first["record"]["name"] == "_provisioner-challenge.acme.example"
    assert first["record"]["value"].startswith("provisioner-domain-verification=")
    assert domains.add(uow, A, "ACME.example.", "cli")["record"] == first["record"]
    assert domains.add(uow, B, "acme.example", "cli")["record"]["value"] != first["record"]["value"]
    assert not [e for e in uow.events() if e.kind is c.DOMAIN_VERIFIED]


def test_a_domain_verified_by_one_org_is_refused_to_any_other_without_naming_it(uow):
    domains.add(uow, B, "taken.example", "support:ops", verified=True)
    said = refused(uow, lambda: domains.add(uow, A, "taken.example", "cli"), 409)
    assert "another organisation" in said and reveals_nothing_of(B, said)
    said = refused(uow, lambda: domains.add(uow, A, "taken.example", "support:ops", verified=True), 409)
    assert reveals_nothing_of(B, said)


def test_supports_override_verifies_at_once_and_is_recorded(uow):
    shown = domains.add(uow, A, "vouched.example", "support:alice", verified=True)
    assert (shown["status"], shown["method"], shown["verified_by"]) == ("verified", "support", "support:alice")
    (event,) = [e for e in uow.events() if e.kind is c.DOMAIN_VERIFIED]
    assert event.data == {"domain": "vouched.example", "method": "support", "actor": "support:alice"}
    domains.add(uow, A, "vouched.example", "support:alice", verified=True)  # again: nothing more
    assert len([e for e in uow.events() if e.kind is c.DOMAIN_VERIFIED]) == 1


def test_verify_finds_the_txt_record_and_marks_the_domain_verified(uow):
    record = domains.add(uow, A, "proved.example", "cli")["record"]
    answer = FakeDns({record["name"]: ["v=spf1 -all", record["value"]]})
    shown = domains.verify(uow, A, "proved.example", "admin-api:ops", answer)
    assert (shown["status"], shown["method"]) == ("verified", "dns") and answer.asked == [record["name"]]
    (event,) = [e for e in uow.events() if e.kind is c.DOMAIN_VERIFIED]
    assert event.data == {"domain": "proved.example", "method": "dns", "actor": "admin-api:ops"}


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (
            lambda name: FakeDns({name: ["provisioner-domain-verification=wrong"]}),
            'found TXT value "provisioner-domain-verification=wrong"',
        ),
        (lambda name: FakeDns(), "no such name (NXDOMAIN)"),
        (lambda name: FakeDns(failure=dns.resolver.NoAnswer()), "no TXT record at that name"),
        (lambda name: FakeDns(failure=dns.resolver.LifetimeTimeout(timeout=3.0, errors={})), "timed out"),
        (lambda name: FakeDns(failure=dns.resolver.NoNameservers()), "nameservers failed or refused"),
        (lambda name: FakeDns(failure=dns.exception.DNSException("bad")), "the DNS lookup failed"),
    ],
)
def test_verify_says_what_it_expected_and_what_it_found_and_changes_nothing(uow, answer, words):
    record = domains.add(uow, A, "unproved.example", "cli")["record"]
    said = refused(uow, lambda: domains.verify(uow, A, "unproved.example", "cli", answer(record["name"])), 409)
    assert words in said and record["name"] in said and record["value"] in said


def test_verify_needs_the_domain_added_first_and_a_valid_name(uow):
    assert "add it first" in refused(uow, lambda: domains.verify(uow, A, "never.example", "cli", FakeDns()), 404)
    assert "two labels" in refused(uow, lambda: domains.verify(uow, A, "never", "cli", FakeDns()), 400)


# -- invitations -----------------------------------------------------------------------------


def test_an_invitation_accepted_makes_the_account_the_member_once(uow):
    register(uow, "pat@elsewhere.example")
    conflict = pushed(uow, A, "pat@elsewhere.example")
    invited = admin.invite(uow, A, "cli", conflict)
    assert admin.invite(uow, A, "cli", conflict) == invited  # the same invitation, no second event
    assert [e.kind for e in uow.events()].count(c.ACCOUNT_INVITED) == 1
    accepted = invitations.accept(uow, invited["id"])
    assert accepted["status"] == "accepted" and accepted["org"] == {"id": A.id, "slug": A.slug, "name": A.name}
    account = uow.accounts.by_email("pat@elsewhere.example")
    assert account is not None and account.org_id == A.id
    (row,) = [r for r in uow.tables["conflicts"] if r["id"] == conflict]
    assert (row["status"], row["resolved_by"]) == ("acquired", f"invitation:{invited['id']}")
    assert uow.members.get(accepted["member_id"]).account_id == account.id  # type: ignore[union-attr]
    staged = len(uow.staged)
    assert invitations.accept(uow, invited["id"]) == accepted and len(uow.staged) == staged


def test_an_invitation_is_refused_once_another_org_holds_the_account_or_the_conflict_is_closed(uow):
    register(uow, "lee@elsewhere.example")
    conflict = pushed(uow, A, "lee@elsewhere.example")
    invited = admin.invite(uow, A, "cli", conflict)
    account = uow.accounts.by_email("lee@elsewhere.example")
    assert account is not None
    uow.accounts.set_org(account.id, B.id)
    said = refused(uow, lambda: invitations.accept(uow, invited["id"]), 409)
    assert said == invitations.ACCOUNT_TAKEN and reveals_nothing_of(B, said)
    uow.accounts.set_org(account.id, None)  # type: ignore[arg-type]
    admin.resolve(uow, A, "cli", conflict, acquire=False)
    assert refused(uow, lambda: invitations.accept(uow, invited["id"]), 409) == invitations.WITHDRAWN
    assert refused(uow, lambda: invitations.accept(uow, str(uuid.uuid4())), 404) == "no such invitation"
    assert refused(uow, lambda: invitations.accept(uow, "not-an-id"), 404) == "no such invitation"
