"""The lean `POST /Users` (ingest/scim/lean_create.py) writes and answers exactly as the library does.

Two apps on the same database, one with `scim_lean_writes` and one without, each serving an org of
its own, get the same requests. Their answers (status, body, headers) must be equal but for the
id, the times and the location; their stored rows, outbox events and audit rows too. The bodies
cover every User attribute shape Entra ID and Okta send (from tests/integration/test_lean_reads.py),
and the requests the lean path leaves to the library: a taken userName, an invalid body, another
content type, a query string, a manager reference, a Group.
"""

import json
import time
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from ingest.app import create_app
from ingest.scim import lean_create
from tests.conftest import make_org
from tests.integration.test_lean_reads import USER, _users, answered_by

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def apps(settings, engine):
    pair = []
    for lean_writes in (True, False):
        org = make_org(settings, engine)
        org.client.close()
        app = create_app(settings.model_copy(update={"scim_lean_writes": lean_writes}), engine)
        client = TestClient(app)
        client.headers.update({"Authorization": f"Bearer {org.token}", "Content-Type": "application/scim+json"})
        pair.append((client, org))
    with pair[0][0], pair[1][0]:
        yield pair


@pytest.fixture
def served(monkeypatch):
    return answered_by(monkeypatch, lean_create.LeanCreate)


def _post(apps, path: str, body: Any, **kwargs) -> list[Any]:
    answers = []
    for client, org in apps:
        answers.append(client.post(f"/scim/{org.slug}/v2{path}", json=body, **kwargs))
    return answers


def _without_identity(body: dict, slug: str) -> dict:
    """The answer with what differs between two creations taken out (and checked for shape)."""
    body = json.loads(json.dumps(body).replace(f"/scim/{slug}/", "/scim/org/"))  # references name the org
    meta = dict(body.pop("meta"))
    resource_id = body.pop("id")
    assert meta.pop("location").endswith(f"/scim/org/v2/{meta['resourceType']}s/{resource_id}")
    assert meta.pop("created") == meta.pop("lastModified")
    return {**body, "meta": meta}


def _stored(engine, org_id: str, user_name: str) -> dict:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT id, version, data, user_name_ci, external_id, display_name_ci, emails_ci, created_at, updated_at "
                 "FROM scim_resources WHERE org_id = :org AND resource_type = 'User' AND data->>'userName' = :name"),
            {"org": org_id, "name": user_name},
        ).one()
        events = conn.execute(
            text("SELECT topic, key, payload FROM outbox WHERE payload->>'orgid' = :org AND payload->'data'->>'user_id' = :id "
                 "ORDER BY id"),
            {"org": org_id, "id": row.id},
        ).all()
    return {"row": row, "events": events}


def _event(payload: dict, org_id: str, user_id: str) -> dict:
    """An event with what differs between two creations taken out."""
    assert payload["orgid"] == org_id and payload["data"]["user_id"] == user_id
    keep = {k: v for k, v in payload.items() if k not in ("id", "time", "source", "orgid", "orgslug", "partitionkey",
                                                          "correlationid", "subject")}
    assert payload["subject"].endswith(user_id)
    return {**keep, "data": {k: v for k, v in payload["data"].items() if k != "user_id"}}


def test_creations_are_the_library_s_answers_rows_and_events(apps, engine, served):
    (lean_client, lean_org), (_, library_org) = apps
    bodies = [b for b in _users("0" * 32) if "manager" not in str(b)]
    for body in bodies:
        ours, theirs = _post(apps, "/Users", body)
        assert ours.status_code == theirs.status_code == 201, (ours.text, theirs.text)
        assert _without_identity(ours.json(), lean_org.slug) == _without_identity(theirs.json(), library_org.slug)
        for answer in (ours, theirs):
            assert answer.headers["Location"] == answer.headers["Content-Location"] == answer.json()["meta"]["location"]
            assert answer.headers["ETag"] == 'W/"1"' and answer.headers["Content-Type"] == theirs.headers["Content-Type"]
        a = _stored(engine, lean_org.id, ours.json()["userName"])
        b = _stored(engine, library_org.id, theirs.json()["userName"])
        assert a["row"].id == ours.json()["id"] and a["row"].version == 1
        assert a["row"].data == b["row"].data
        assert a["row"][3:7] == b["row"][3:7]  # user_name_ci, external_id, display_name_ci, emails_ci
        assert a["row"].created_at == a["row"].updated_at
        # the lean answer's times are the stored row's, to the microsecond
        assert datetime.fromisoformat(ours.json()["meta"]["created"].replace("Z", "+00:00")) == a["row"].created_at
        assert [e.topic for e in a["events"]] == [e.topic for e in b["events"]] and len(a["events"]) == 1
        keys = [e.key.replace(org.id, "org").replace(e.payload["data"]["user_id"], "user")
                for e, org in ((a["events"][0], lean_org), (b["events"][0], library_org))]
        assert keys[0] == keys[1] and a["events"][0].key.startswith(f"{lean_org.id}:")
        assert (_event(a["events"][0].payload, lean_org.id, a["row"].id)
                == _event(b["events"][0].payload, library_org.id, b["row"].id))
    assert served == [True] * len(bodies)


def test_each_lean_creation_has_one_audit_row(apps, engine, served):
    (lean_client, lean_org), _ = apps
    before = _audit_rows(engine, lean_org.id)
    for i in range(5):
        body = {"schemas": [USER], "userName": f"audit{i}@lean.example"}
        answer = lean_client.post(f"/scim/{lean_org.slug}/v2/Users", json=body, headers={"X-Request-Id": f"lean-audit-{i}"})
        assert answer.status_code == 201
    assert served == [True] * 5
    time.sleep(2.5)  # anything the writer would add arrives within its flush interval
    rows = _audit_rows(engine, lean_org.id)[len(before):]
    assert [(r.method, r.status, r.request_id) for r in rows] == [("POST", 201, f"lean-audit-{i}") for i in range(5)]
    assert all(r.path == f"/scim/{lean_org.slug}/v2/Users" for r in rows)


def _audit_rows(engine, org_id: str) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT method, path, status, request_id FROM scim_audit WHERE org_id = :org AND method = 'POST' ORDER BY id"),
            {"org": org_id},
        ).all()


@pytest.mark.parametrize("case", [
    {"body": {"schemas": [USER], "userName": "taken@lean.example"}, "twice": True},
    {"body": {"schemas": [USER], "userName": "TAKEN2@lean.example"}, "twice": True, "second": "taken2@LEAN.example"},
    {"body": {"schemas": [USER]}},
    {"body": {"schemas": [USER], "userName": "   "}},
    {"body": {"schemas": ["urn:example:unknown"], "userName": "schema@lean.example"}},
    {"body": {"schemas": [USER], "userName": "emails@lean.example", "emails": [{"value": "not an address"}]}},
    {"body": {"schemas": [USER], "userName": "id@lean.example", "id": "chosen", "meta": {"version": 'W/"9"'}}},
    {"body": {"schemas": [USER], "userName": "groups@lean.example", "groups": [{"value": "g1"}]}},
    {"body": {"schemas": [USER], "userName": "ct@lean.example"}, "headers": {"Content-Type": "text/plain"}},
    {"body": {"schemas": [USER], "userName": "query@lean.example"}, "params": {"attributes": "userName"}},
    {"body": {"schemas": [USER], "userName": "ref@lean.example",
              "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "m1"}}}},
    {"body": [1, 2], "path": "/Users"},
    {"body": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "lean group"}, "path": "/Groups"},
    {"body": {"schemas": [USER], "userName": "search@lean.example"}, "path": "/Users/.search"},
])
def test_what_the_lean_path_leaves_is_answered_as_the_library_does(apps, engine, case):
    path = case.get("path", "/Users")
    kwargs = {k: case[k] for k in ("headers", "params") if k in case}
    if case.get("twice"):
        first = _post(apps, path, case["body"], **kwargs)
        assert [a.status_code for a in first] == [201, 201]
        body = {**case["body"], "userName": case.get("second", case["body"]["userName"])}
    else:
        body = case["body"]
    ours, theirs = _post(apps, path, body, **kwargs)
    assert ours.status_code == theirs.status_code, (ours.text, theirs.text)
    if ours.status_code == 201:
        assert _without_identity(ours.json(), apps[0][1].slug) == _without_identity(theirs.json(), apps[1][1].slug)
    else:
        assert ours.json() == theirs.json()
        assert ours.status_code in (400, 404, 405, 409, 415), ours.text
