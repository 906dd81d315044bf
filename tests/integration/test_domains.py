"""Verified email domains against a real DNS server on loopback (dnsmasq) and the real PostgreSQL:
the command line and the admin API add a domain, print its TXT record, and verify it over DNS.

A failed verification says what was expected and what DNS answered, and changes nothing (the
domain stays pending, no event is staged); a domain is verified by at most one org.
"""

import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from starlette.testclient import TestClient
from typer.testing import CliRunner

from cli.main import app
from core.settings import Settings, to_env
from core.tables import org_domains
from domain import admin, orgs
from ingest.app import create_app
from tests import dnsmasq
from tests.dnsmasq import DnsServer

pytestmark = pytest.mark.integration

# fixtures: a DNS server on loopback, and a nameserver that never answers
dns_server, silent_nameserver = dnsmasq.dns_server, dnsmasq.silent_nameserver


@pytest.fixture
def org(engine: Engine) -> orgs.Org:
    created, _ = orgs.create(engine, "dom-" + uuid.uuid4().hex[:10], "Domain Owner Ltd")
    return created


@pytest.fixture
def other_org(engine: Engine) -> orgs.Org:
    created, _ = orgs.create(engine, "dom-" + uuid.uuid4().hex[:10], "Rival Holdings")
    return created


def cli(settings: Settings, *args: str, **overrides: Any) -> Any:
    """`provisioner ...` in process, with the test settings (and `overrides`) as its environment."""
    env = to_env(settings.model_copy(update=overrides))
    return CliRunner().invoke(app, list(args), env=env)


def events(engine: Engine, org_id: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT payload FROM outbox WHERE payload->>'orgid' = :o AND payload->>'type' = :t ORDER BY id"),
            {"o": org_id, "t": "io.provisioner.org.domain.verified"},
        ).scalars()
        return list(rows)


def rows(engine: Engine, org_id: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(org_domains).where(org_domains.c.org_id == org_id))]


@pytest.fixture(scope="module")
def app_client(settings: Settings, engine: Engine, dns_server: DnsServer) -> Iterator[TestClient]:
    """The ingest app in process, asking the loopback DNS server."""
    dns_settings = settings.model_copy(update={"dns_nameservers": dns_server.nameserver, "dns_timeout_seconds": 2.0})
    with TestClient(create_app(dns_settings, engine), base_url="http://testserver") as client:
        yield client


def test_the_command_line_prints_the_record_and_verifies_it_over_dns(settings, engine, org, dns_server):
    added = cli(settings, "domains", "add", org.slug, "Verify-Me.Example", "--json")
    assert added.exit_code == 0, added.output
    shown = json.loads(added.output)
    assert (shown["domain"], shown["status"], shown["record_type"]) == ("verify-me.example", "pending", "TXT")
    assert shown["record_name"] == "_provisioner-challenge.verify-me.example"
    again = json.loads(cli(settings, "domains", "add", org.slug, "verify-me.example", "--json").output)
    assert again["record_value"] == shown["record_value"]  # the same challenge each time
    human = cli(settings, "domains", "add", org.slug, "verify-me.example").output
    assert shown["record_value"] in human and f"provisioner domains verify {org.slug} verify-me.example" in human

    dns_server.publish(shown["record_name"], "v=spf1 -all", shown["record_value"])
    verified = cli(settings, "domains", "verify", org.slug, "verify-me.example", "--json", dns_nameservers=dns_server.nameserver)
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.output) | {"verified_at": None} == {
        "slug": org.slug, "domain": "verify-me.example", "status": "verified", "method": "dns", "verified_at": None,
        "verified_by": "cli",
    }  # fmt: skip
    (event,) = events(engine, org.id)
    assert event["data"] == {"domain": "verify-me.example", "method": "dns", "actor": "cli"}
    assert event["subject"] == f"orgs/{org.id}/domains/verify-me.example"
    listed = cli(settings, "domains", "list", org.slug).output.splitlines()
    assert listed[0].startswith("verify-me.example\tverified\tdns\t")


def test_the_admin_api_refuses_until_the_right_record_is_published(app_client, engine, org, dns_server):
    headers = {"Authorization": f"Bearer {admin.create_admin_token(engine, org.slug)}"}
    r = app_client.post("/admin/v1/org/domains", json={"domain": "api.example"}, headers=headers)
    assert r.status_code == 200, r.text
    record = r.json()["record"]
    assert r.json()["status"] == "pending" and record["name"] == "_provisioner-challenge.api.example"
    before = rows(engine, org.id)

    def refused(found: str) -> None:
        r = app_client.post("/admin/v1/org/domains/api.example/verify", headers=headers)
        assert r.status_code == 409, r.text
        detail = r.json()["detail"]
        assert found in detail and record["name"] in detail and record["value"] in detail, detail
        assert rows(engine, org.id) == before and events(engine, org.id) == []

    refused("no such name (NXDOMAIN)")
    dns_server.exists(record["name"])
    refused("no TXT record at that name")
    dns_server.publish(record["name"], "provisioner-domain-verification=someone-elses")
    refused('found TXT value "provisioner-domain-verification=someone-elses"')
    dns_server.publish(record["name"], record["value"])
    r = app_client.post("/admin/v1/org/domains/API.example/verify", headers=headers)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["method"], r.json()["verified_by"]) == ("verified", "dns", "admin-api:admin")
    assert [d["status"] for d in app_client.get("/admin/v1/org/domains", headers=headers).json()] == ["verified"]
    assert len(events(engine, org.id)) == 1
    # verifying again answers the same and records nothing more
    assert app_client.post("/admin/v1/org/domains/api.example/verify", headers=headers).json() == r.json()
    assert len(events(engine, org.id)) == 1


def test_bad_names_and_unknown_domains(app_client, engine, org):
    headers = {"Authorization": f"Bearer {admin.create_admin_token(engine, org.slug)}"}
    for bad in ("localhost", "a..example", "under_score.example", "10.1.2.3", "x" * 250 + ".example"):
        r = app_client.post("/admin/v1/org/domains", json={"domain": bad}, headers=headers)
        assert r.status_code == 400, (bad, r.text)
    assert app_client.post("/admin/v1/org/domains/never-added.example/verify", headers=headers).status_code == 404
    assert (
        app_client.post("/admin/v1/org/domains", json={"domain": "x.example", "owner": "me"}, headers=headers).status_code == 422
    )
    assert rows(engine, org.id) == []


def test_a_nameserver_that_does_not_answer_times_out_with_a_clear_error(settings, engine, org, silent_nameserver):
    shown = json.loads(cli(settings, "domains", "add", org.slug, "slow.example", "--json").output)
    before = rows(engine, org.id)
    started = time.monotonic()
    result = cli(
        settings, "domains", "verify", org.slug, "slow.example", dns_nameservers=silent_nameserver, dns_timeout_seconds=0.5
    )
    assert time.monotonic() - started < 5
    assert result.exit_code == 2 and "timed out" in result.output and shown["record_value"] in result.output, result.output
    assert rows(engine, org.id) == before and events(engine, org.id) == []


def test_a_domain_is_verified_by_one_org_and_the_refusal_names_no_org(settings, engine, org, other_org, caplog):
    caplog.set_level(logging.INFO, logger="domain.domains")
    vouched = cli(settings, "domains", "add", other_org.slug, "shared.example", "--verified", "--actor", "support:alice")
    assert vouched.exit_code == 0 and "status: verified" in vouched.output, vouched.output
    (event,) = events(engine, other_org.id)
    assert event["data"] == {"domain": "shared.example", "method": "support", "actor": "support:alice"}
    assert any("verified by support" in r.getMessage() and "support:alice" in r.getMessage() for r in caplog.records)

    for args in (("shared.example",), ("SHARED.example.", "--verified")):
        refused = cli(settings, "domains", "add", org.slug, *args)
        assert refused.exit_code == 2 and "verified by another organisation" in refused.output, refused.output
        assert not any(part in refused.output for part in (other_org.id, other_org.slug, other_org.name))
    assert rows(engine, org.id) == [] and events(engine, org.id) == []
    unknown = cli(settings, "domains", "list", "no-such-org-" + uuid.uuid4().hex[:6])
    assert unknown.exit_code == 2
