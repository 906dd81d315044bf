"""The SCIM audit trail: every request made with an org's credential is recorded, served or
refused, with its values redacted and its body never kept; admins page through their own org's
rows; old rows are pruned by ingest itself and by `provisioner audit prune`.

Most tests go through the live ingest server (real HTTP, so the client address and the
request id are the ones a real IdP produces); the rate limit and the periodic pruning need
settings of their own and run the app in process.
"""

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, text
from starlette.testclient import TestClient

from core.cursors import encode as encode_cursor
from core.settings import to_env
from core.tables import scim_audit
from domain import admin, orgs
from ingest.app import create_app
from ingest.audit import decode_cursor, redact_filter, redact_query
from tests.conftest import make_org, wait_for

pytestmark = pytest.mark.security

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def audit_rows(engine, org_id: str) -> list[dict]:
    with engine.connect() as conn:
        query = select(scim_audit).where(scim_audit.c.org_id == org_id).order_by(scim_audit.c.at, scim_audit.c.id)
        return [dict(r) for r in conn.execute(query).mappings()]


def rows_for(engine, org_id: str, count: int) -> list[dict]:
    """The org's rows once there are `count` of them (reads and refusals are written in batches)."""
    return wait_for(lambda: (rows := audit_rows(engine, org_id)) and len(rows) >= count and rows, message=f"{count} audit rows")


def admin_client(server: str, engine, slug: str) -> httpx.Client:
    token = admin.create_admin_token(engine, slug, "auditor")
    return httpx.Client(base_url=f"{server}/admin/v1", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def user(email: str) -> dict:
    return {"schemas": [USER], "userName": email, "emails": [{"value": email, "type": "work"}], "displayName": "Ann Secretname"}


# -- redaction (pure) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ('userName eq "ann@acme.com"', 'userName eq "?"'),
        (
            'emails[type eq "work" and value co "a\\"b"] or externalId eq "x"',
            'emails[type eq "?" and value co "?"] or externalId eq "?"',
        ),
        ('userName eq "unterminated@acme.com', 'userName eq "?"'),
        ('userName eq "trailing backslash\\', 'userName eq "?"'),
        ("x.y2 gt 12345 and active eq true", "x.y2 gt ? and active eq true"),
        ('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "42"',
         'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "?"'),
    ],
)
def test_filter_values_are_redacted(given, kept):
    assert redact_filter(given) == kept


def test_query_keeps_attribute_names_and_paging_only():
    raw = "filter=userName%20eq%20%22ann%40acme.com%22&count=10&startIndex=2&attributes=userName,emails.value" \
          "&sortBy=ann@acme.com&access_token=scim_xyz&excludedAttributes=%00"
    assert redact_query(raw) == (
        'filter=userName eq "?"&count=10&startIndex=2&attributes=userName,emails.value&sortBy=?&access_token=?'
        "&excludedAttributes=?"
    )
    assert redact_query("") is None


def test_cursor_round_trip_and_refusals():
    at = datetime(2025, 5, 1, 9, 0, 0, 123456, tzinfo=UTC)
    assert decode_cursor(encode_cursor(at, 42)) == (at, 42)
    naive, not_a_number = "MjAyNS0wNS0wMVQwOTowMDowMHw0Mg", encode_cursor(at, "0b1e-member-id")
    for bad in ("", "not-base64!", encode_cursor(at, 1)[:-3], naive, not_a_number, "A" * 201):
        with pytest.raises(ValueError, match="not a cursor this API issued"):
            decode_cursor(bad)


# -- recording, over real HTTP -------------------------------------------------------------------


def test_every_scim_request_of_an_org_is_recorded_without_bodies_or_filter_values(server, settings, engine, scim_org, other_org):
    email = f"ann.{uuid.uuid4().hex[:8]}@acme.example.com"
    agent = {"User-Agent": "Microsoft.Identity.AadProvisioning/1.0 (audit test)"}
    c = scim_org.client
    created = c.post("/Users", json=user(email), headers={**agent, "X-Request-Id": "req-create-1"})
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    calls = [
        (c.get("/Users", params={"filter": f'userName eq "{email}"'}, headers=agent), 200),
        (c.post("/Users", json=user(email), headers=agent), 409),
        (c.get(f"/Users/{uuid.uuid4()}", headers=agent), 404),
        (c.post("/Users", content=b'{"schemas": [', headers=agent), 400),
        (c.post("/Users", content=b"x" * (settings.max_body_bytes + 10), headers=agent), 413),
        (c.patch(f"/Users/{user_id}", headers=agent,
                 json={"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "title", "value": "Boss"}]}), 204),
        # this org's token on another org's path: refused, and recorded under the token's org
        (httpx.post(f"{other_org.base_url}/Users", json=user(email),
                    headers={**agent, "Authorization": f"Bearer {scim_org.token}"}), 401),
        (c.delete(f"/Users/{user_id}", headers=agent), 204),
    ]
    for response, status in calls:
        assert response.status_code == status, response.text
    rows = rows_for(engine, scim_org.id, 1 + len(calls))
    assert len(rows) == 1 + len(calls)
    by_request = {r["request_id"]: r for r in rows}
    assert by_request["req-create-1"]["status"] == 201
    assert sorted(r["status"] for r in rows) == sorted([201, *(s for _, s in calls)])
    for r in rows:
        assert r["user_agent"] == agent["User-Agent"]
        assert r["client_address"] == "127.0.0.1"
        assert r["duration_ms"] >= 0 and r["at"] <= datetime.now(UTC)
        assert r["path"].startswith("/scim/") and "?" not in r["path"]
    (lookup,) = [r for r in rows if r["method"] == "GET" and r["status"] == 200]
    assert lookup["query"] == 'filter=userName eq "?"' and lookup["path"] == f"/scim/{scim_org.slug}/v2/Users"
    (misdirected,) = [r for r in rows if r["status"] == 401]
    assert misdirected["path"] == f"/scim/{other_org.slug}/v2/Users"
    stored = json.dumps([{k: str(v) for k, v in r.items()} for r in rows])
    assert email not in stored and "Secretname" not in stored and "Boss" not in stored
    assert audit_rows(engine, other_org.id) == []  # the path's org is not the credential's


def test_a_write_is_recorded_in_its_own_transaction(server, engine, scim_org):
    """The row of a committed write exists when the IdP gets its answer (no batch to wait for)."""
    r = scim_org.client.post(
        "/Users", json=user(f"bo.{uuid.uuid4().hex[:8]}@acme.example.com"), headers={"X-Request-Id": "inline-1"}
    )
    assert r.status_code == 201, r.text
    assert [(x["request_id"], x["status"], x["method"]) for x in audit_rows(engine, scim_org.id)] == [("inline-1", 201, "POST")]


def _counter(server: str, outcome: str) -> float:
    text_ = httpx.get(f"{server}/metrics", timeout=10).text
    line = f'provisioner_scim_audit_rows_total{{outcome="{outcome}"}} '
    return next((float(x.removeprefix(line)) for x in text_.splitlines() if x.startswith(line)), 0.0)


def test_requests_without_an_org_credential_are_only_counted(server, engine, scim_org):
    before_rows = len(audit_rows(engine, scim_org.id))
    before = _counter(server, "unattributed")
    url = f"{scim_org.base_url}/Users"
    assert httpx.get(url, timeout=10).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer scim_wrong"}, timeout=10).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Basic dXNlcjpwYXNz"}, timeout=10).status_code == 401
    wait_for(lambda: _counter(server, "unattributed") >= before + 3, message="unattributed requests counted")
    assert len(audit_rows(engine, scim_org.id)) == before_rows


def test_an_old_token_and_a_disabled_integration_still_name_the_org(server, settings, engine, scim_org):
    new = orgs.rotate_token(engine, scim_org.slug, overlap_seconds=0)
    assert scim_org.client.get("/Users", headers={"X-Request-Id": "rotated-out"}).status_code == 401
    orgs.update_settings(engine, scim_org.slug, scim_enabled=False)
    scim_off = scim_org.client.get("/Users", headers={"Authorization": f"Bearer {new}", "X-Request-Id": "scim-off"})
    assert scim_off.status_code == 401
    rows = rows_for(engine, scim_org.id, 2)
    assert sorted((r["request_id"], r["status"]) for r in rows) == [("rotated-out", 401), ("scim-off", 401)]


def test_nul_bytes_are_recorded_and_break_nothing(server, engine, scim_org):
    """PostgreSQL text cannot hold NUL: it is replaced, so neither the row nor the write is lost."""
    r = scim_org.client.get("/Users", params={"filter": 'userName eq "\x00"'})
    assert r.status_code == 400 and r.json()["scimType"] == "invalidFilter", r.text
    w = scim_org.client.post("/Users?%00name=1", json=user(f"nul.{uuid.uuid4().hex[:8]}@acme.example.com"))
    assert w.status_code == 201, w.text
    rows = rows_for(engine, scim_org.id, 2)
    assert sorted((r["method"], r["status"]) for r in rows) == [("GET", 400), ("POST", 201)]
    assert {r["query"] for r in rows} == {'filter=userName eq "?"', "\ufffdname=?"}


# -- the admin API -------------------------------------------------------------------------------


def test_admins_page_and_filter_their_own_orgs_trail(server, engine, scim_org, other_org):
    c = scim_org.client
    for i in range(3):
        assert c.post("/Users", json=user(f"p{i}.{uuid.uuid4().hex[:6]}@acme.example.com")).status_code == 201
    assert c.get(f"/Users/{uuid.uuid4()}").status_code == 404
    assert c.get("/Users").status_code == 200
    rows_for(engine, scim_org.id, 5)
    with admin_client(server, engine, scim_org.slug) as api, admin_client(server, engine, other_org.slug) as other:
        seen, cursor = [], None
        while True:
            page = api.get("/org/scim-audit", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
            assert page.status_code == 200, page.text
            body = page.json()
            assert len(body["entries"]) <= 2
            seen += body["entries"]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == 5 and len({e["id"] for e in seen}) == 5
        keys = [(e["at"], e["id"]) for e in seen]
        assert keys == sorted(keys, reverse=True)
        assert set(seen[0]) == {
            "id", "at", "method", "path", "query", "status", "duration_ms", "user_agent", "request_id", "client_address",
        }

        def statuses(**params):
            r = api.get("/org/scim-audit", params=params)
            assert r.status_code == 200, r.text
            return sorted(e["status"] for e in r.json()["entries"])

        assert statuses(status="404") == [404]
        assert statuses(status="4xx") == [404]
        assert statuses(status="2xx") == [200, 201, 201, 201]
        assert statuses(method="POST") == [201, 201, 201]
        assert statuses(method="GET", status="200") == [200]
        newest = datetime.fromisoformat(seen[0]["at"])
        assert statuses(since=newest.isoformat()) == [seen[0]["status"]]
        assert len(statuses(until=newest.isoformat())) == 4
        assert statuses(since=(newest + timedelta(seconds=1)).isoformat()) == []

        assert other.get("/org/scim-audit").json() == {"entries": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"cursor": "bogus"}, "query.cursor: not a cursor this API issued"),
        ({"status": "4x"}, "query.status"),
        ({"status": "600"}, "query.status"),
        ({"method": "HEAD"}, "query.method"),
        ({"limit": 0}, "query.limit"),
        ({"limit": 501}, "query.limit"),
        ({"since": "2025-05-01T09:00:00"}, "query.since"),  # no offset: which time would it be?
        ({"until": "yesterday"}, "query.until"),
    ],
)
def test_bad_audit_queries_are_422(server, engine, scim_org, params, words):
    with admin_client(server, engine, scim_org.slug) as api:
        r = api.get("/org/scim-audit", params=params)
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"]


def test_the_audit_endpoint_takes_only_admin_tokens(server, scim_org):
    for headers in ({}, {"Authorization": f"Bearer {scim_org.token}"}, {"Authorization": "Bearer adm_wrong"}):
        r = httpx.get(f"{server}/admin/v1/org/scim-audit", headers=headers, timeout=10)
        assert r.status_code == 401, r.text


# -- rate limit and pruning, with settings of their own ------------------------------------------


def test_rate_limited_requests_are_recorded(settings, engine):
    limited = settings.model_copy(update={"scim_rate_limit_per_second": 25.0, "scim_rate_limit_burst": 1})
    org = make_org(limited, engine)
    org.client.close()
    with TestClient(create_app(limited, engine), base_url="http://testserver") as client:
        headers = {"Authorization": f"Bearer {org.token}"}
        answers = [client.get(f"/scim/{org.slug}/v2/Users", headers=headers).status_code for _ in range(20)]
    assert 429 in answers, answers
    rows = audit_rows(engine, org.id)  # the app's writer flushed on shutdown
    assert sorted(r["status"] for r in rows) == sorted(answers)
    assert {r["client_address"] for r in rows} == {"testclient"}


def _old_row(org_id: str, days: int, request_id: str) -> dict:
    return {
        "org_id": org_id, "at": datetime.now(UTC) - timedelta(days=days), "method": "GET", "path": "/scim/x/v2/Users",
        "query": None, "status": 200, "duration_ms": 1.0, "user_agent": None, "request_id": request_id, "client_address": None,
    }


def test_ingest_prunes_rows_past_the_retention_period(settings, engine):
    org = make_org(settings, engine)
    org.client.close()
    with engine.begin() as conn:
        conn.execute(scim_audit.insert(), [_old_row(org.id, 40, "old"), _old_row(org.id, 20, "recent")])
    pruning = settings.model_copy(update={"audit_retention_days": 30, "audit_prune_interval_seconds": 0.1})
    with TestClient(create_app(pruning, engine), base_url="http://testserver"):
        wait_for(lambda: [r["request_id"] for r in audit_rows(engine, org.id)] == ["recent"], message="the old row pruned")


def test_cli_prunes_with_the_given_retention(settings, engine):
    org = make_org(settings, engine)
    org.client.close()
    with engine.begin() as conn:
        conn.execute(scim_audit.insert(), [_old_row(org.id, 100, "ancient"), _old_row(org.id, 10, "kept")])
    env = {**os.environ, **to_env(settings)}
    done = subprocess.run([sys.executable, "-m", "cli", "audit", "prune", "--days", "30", "--json"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["retention_days"] == 30 and out["deleted"] >= 1
    assert [r["request_id"] for r in audit_rows(engine, org.id)] == ["kept"]
    refused = subprocess.run([sys.executable, "-m", "cli", "audit", "prune", "--days", "0"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--days" in refused.stderr
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM scim_audit WHERE org_id = :o"), {"o": org.id}).scalar() == 1
