"""Safe acquisition on the pipeline: SCIM pushes over HTTP, the conflict worker on the real Kafka,
admin API and internal API calls to the live ingest server, domains verified by support's
override and over DNS (dnsmasq on loopback).

An org acquires only an account of no org on a domain it has verified; a refusal changes nothing
and says nothing about any other org. Otherwise the org invites the person, whose consent (the
app's call) makes the account the member, unless another org holds the account by then.
"""

import json
import threading
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cli.main import app
from core.settings import to_env
from core.tables import accounts, conflicts, members
from domain import admin, service_tokens
from events.kafka import read_to_end
from tests import dnsmasq
from tests.conftest import ScimOrg, wait_for

USER = "urn:ietf:params:scim:schemas:core:2.0:User"

pytestmark = pytest.mark.e2e

dns_server = dnsmasq.dns_server  # a fixture: a DNS server on loopback


@pytest.fixture(scope="module")
def app_backend(settings, engine, server):
    """The SaaS app's backend: the internal API with a service token."""
    token = service_tokens.create(engine, "tests")
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {token}"}, timeout=15) as client:
        yield client


def admin_api(server: str, engine, org: ScimOrg) -> httpx.Client:
    token = admin.create_admin_token(engine, org.slug)
    return httpx.Client(base_url=f"{server}/admin/v1", headers={"Authorization": f"Bearer {token}"}, timeout=15)


def cli(settings, *args: str, **overrides: Any) -> Any:
    return CliRunner().invoke(app, list(args), env=to_env(settings.model_copy(update=overrides)))


def account_of(app_backend: httpx.Client, email: str) -> str:
    r = app_backend.post("/internal/v1/accounts", json={"email": email})
    assert r.status_code in (200, 201), r.text
    return str(r.json()["id"])


def pushed_conflict(engine, org: ScimOrg, email: str) -> dict[str, Any]:
    """Push a SCIM user with this email; its conflict, once the conflict worker has flagged it."""
    r = org.client.post("/Users", json={"schemas": [USER], "userName": email})
    assert r.status_code == 201, r.text

    def flagged() -> dict[str, Any] | None:
        with engine.connect() as conn:
            row = conn.execute(
                select(conflicts).where(conflicts.c.org_id == org.id, conflicts.c.email_ci == email.lower())
            ).first()
        return dict(row._mapping) if row else None

    return wait_for(flagged, timeout=20, message=f"conflict for {email}")


def row(engine, table, key) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(select(table).where(table.c.id == key)).one()._mapping)


def secrets_of(org: ScimOrg) -> tuple[str, ...]:
    return (org.id, org.slug)


def lifecycle_types(settings) -> list[tuple[str, str]]:
    records = [json.loads(v) for v in read_to_end(settings, [settings.topic_lifecycle])]
    return [(r["type"].removeprefix("io.provisioner."), r["orgid"]) for r in records]


def test_a_takeover_is_refused_and_a_domain_verified_over_dns_allows_acquiring(
    pipeline, settings, engine, server, scim_org, other_org, app_backend, dns_server
):
    a, b = scim_org, other_org
    d1, d2 = f"d1-{uuid.uuid4().hex[:8]}.example", f"d2-{uuid.uuid4().hex[:8]}.example"
    with admin_api(server, engine, a) as api_a, admin_api(server, engine, b) as api_b:
        # B: support verifies d1; B acquires the account on it
        vouched = cli(settings, "domains", "add", b.slug, d1, "--verified", "--actor", "support:alice")
        assert vouched.exit_code == 0, vouched.output
        account = account_of(app_backend, f"Person@{d1}")
        b_conflict = pushed_conflict(engine, b, f"person@{d1}")
        r = api_b.post(f"/org/conflicts/{b_conflict['id']}/acquire")
        assert r.status_code == 200 and r.json()["status"] == "acquired", r.text
        assert row(engine, accounts, account)["org_id"] == b.id
        b_member = row(engine, members, b_conflict["member_id"])
        assert b_member["account_id"] == account

        # A pushes the same email: the conflict shows, and acquiring it is refused
        a_conflict = pushed_conflict(engine, a, f"person@{d1}")
        r = api_a.post(f"/org/conflicts/{a_conflict['id']}/acquire")
        assert r.status_code == 409, r.text
        taken = r.json()["detail"]
        assert f"has not verified the email domain {d1}" in taken and "invite" in taken
        assert not any(s in r.text for s in secrets_of(b)), r.text
        assert row(engine, accounts, account)["org_id"] == b.id
        assert row(engine, members, b_conflict["member_id"]) == b_member
        assert row(engine, conflicts, a_conflict["id"])["status"] == "open"
        assert row(engine, members, a_conflict["member_id"])["account_id"] is None

        # d2: nobody's account, a domain A has not verified: refused with the same words
        free = account_of(app_backend, f"free@{d2}")
        d2_conflict = pushed_conflict(engine, a, f"free@{d2}")
        r = api_a.post(f"/org/conflicts/{d2_conflict['id']}/acquire")
        assert r.status_code == 409 and r.json()["detail"] == taken.replace(d1, d2), r.text
        assert row(engine, accounts, free)["org_id"] is None

        # A proves d2 over DNS, then acquires
        record = api_a.post("/org/domains", json={"domain": d2}).json()["record"]
        dns_server.publish(record["name"], record["value"])
        verified = cli(settings, "domains", "verify", a.slug, d2, dns_nameservers=dns_server.nameserver)
        assert verified.exit_code == 0 and "status: verified" in verified.output, verified.output
        assert [d["status"] for d in api_a.get("/org/domains").json()] == ["verified"]
        r = api_a.post(f"/org/conflicts/{d2_conflict['id']}/acquire")
        assert r.status_code == 200 and r.json()["status"] == "acquired", r.text
        assert row(engine, accounts, free)["org_id"] == a.id
        # d1 stays B's: A cannot claim it
        r = api_a.post("/org/domains", json={"domain": d1})
        assert r.status_code == 409 and not any(s in r.text for s in secrets_of(b)), r.text

    wanted = {("org.domain.verified", b.id), ("org.domain.verified", a.id), ("account.acquired", a.id)}
    wait_for(lambda: wanted <= set(lifecycle_types(settings)), timeout=30, message="the facts on the lifecycle topic")


def test_an_invitation_accepted_through_the_internal_api(pipeline, settings, engine, server, scim_org, other_org, app_backend):
    a, b = scim_org, other_org
    domain = f"inv-{uuid.uuid4().hex[:8]}.example"
    account = account_of(app_backend, f"Sam@{domain}")
    conflict = pushed_conflict(engine, a, f"sam@{domain}")
    with admin_api(server, engine, a) as api_a:
        assert api_a.post(f"/org/conflicts/{conflict['id']}/acquire").status_code == 409  # not A's domain
        r = api_a.post(f"/org/conflicts/{conflict['id']}/invite")
        assert r.status_code == 200 and r.json()["status"] == "pending", r.text
        invitation = r.json()
        assert api_a.post(f"/org/conflicts/{conflict['id']}/invite").json() == invitation  # the same one

    listed = app_backend.get("/internal/v1/invitations", params={"account_id": account})
    assert listed.status_code == 200, listed.text
    (shown,) = listed.json()["invitations"]
    assert shown["id"] == invitation["id"] and shown["org"] == {"id": a.id, "slug": a.slug, "name": a.slug}
    assert app_backend.get("/internal/v1/invitations", params={"account_id": "nope"}).status_code == 400
    assert app_backend.post(f"/internal/v1/invitations/{uuid.uuid4()}/accept").status_code == 404
    with httpx.Client(base_url=server, timeout=10) as anonymous:
        assert anonymous.post(f"/internal/v1/invitations/{invitation['id']}/accept").status_code == 401

    r = app_backend.post(f"/internal/v1/invitations/{invitation['id']}/accept")
    assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
    again = app_backend.post(f"/internal/v1/invitations/{invitation['id']}/accept")
    assert (again.status_code, again.json()) == (200, r.json())
    assert row(engine, accounts, account)["org_id"] == a.id
    assert row(engine, members, conflict["member_id"])["account_id"] == account
    closed = row(engine, conflicts, conflict["id"])
    assert (closed["status"], closed["resolved_by"]) == ("acquired", f"invitation:{invitation['id']}")
    assert app_backend.get("/internal/v1/invitations", params={"account_id": account}).json() == {"invitations": []}

    # B invites the same person later: their account is A's now, so accepting is refused, and nothing changes
    b_conflict = pushed_conflict(engine, b, f"sam@{domain}")
    with admin_api(server, engine, b) as api_b:
        b_invitation = api_b.post(f"/org/conflicts/{b_conflict['id']}/invite").json()
    refused = app_backend.post(f"/internal/v1/invitations/{b_invitation['id']}/accept")
    assert refused.status_code == 409 and not any(s in refused.text for s in secrets_of(a)), refused.text
    assert row(engine, accounts, account)["org_id"] == a.id
    assert row(engine, conflicts, b_conflict["id"])["status"] == "open"

    wanted = {("account.invited", a.id), ("account.invitation.accepted", a.id), ("account.invited", b.id)}
    wait_for(lambda: wanted <= set(lifecycle_types(settings)), timeout=30, message="the invitation facts on the topic")
    assert ("account.invitation.accepted", b.id) not in set(lifecycle_types(settings))


def test_two_orgs_racing_for_one_account_exactly_one_wins(pipeline, settings, engine, server, scim_org, other_org, app_backend):
    """A acquires (it verified the domain) while B's invitation is accepted, at the same moment, a
    few times over: the account row is locked while each decides, so exactly one of them wins."""
    a, b = scim_org, other_org
    domain = f"race-{uuid.uuid4().hex[:8]}.example"
    assert cli(settings, "domains", "add", a.slug, domain, "--verified", "--actor", "support:bob").exit_code == 0
    with admin_api(server, engine, a) as api_a, admin_api(server, engine, b) as api_b:
        for n in range(5):
            email = f"racer{n}@{domain}"
            account = account_of(app_backend, email)
            a_conflict, b_conflict = pushed_conflict(engine, a, email), pushed_conflict(engine, b, email)
            invitation = api_b.post(f"/org/conflicts/{b_conflict['id']}/invite").json()
            start = threading.Barrier(2)
            answers: dict[str, int] = {}

            def acquire(a_conflict=a_conflict, start=start, answers=answers) -> None:
                start.wait()
                answers["a"] = api_a.post(f"/org/conflicts/{a_conflict['id']}/acquire").status_code

            def accept(invitation=invitation, start=start, answers=answers) -> None:
                start.wait()
                answers["b"] = app_backend.post(f"/internal/v1/invitations/{invitation['id']}/accept").status_code

            threads = [threading.Thread(target=acquire), threading.Thread(target=accept)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=30)
            assert sorted(answers.values()) == [200, 409], answers
            winner = a if answers["a"] == 200 else b
            assert row(engine, accounts, account)["org_id"] == winner.id
            linked = [row(engine, members, c["member_id"])["account_id"] for c in (a_conflict, b_conflict)]
            assert [x for x in linked if x is not None] == [account], linked
