"""The lean group PATCH of members (ingest/scim/lean_patch.py) writes and answers exactly as the
library does.

Two apps on the same database, one with `scim_lean_writes` and one without, each serving an org of
its own with the same users and group, get the same PATCHes: Entra's and Okta's additions and
removals (served lean) and the shapes left to the library (a member already there or not there,
a member named twice, an unknown or nested member, a rename, a query string,
a conditional request). Each answer's status and ETag must be equal, and then the members, the
group's version, the events staged and the audit rows.
"""

import uuid
from typing import Any

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from ingest.app import create_app
from ingest.scim import lean_patch
from tests.conftest import make_org
from tests.integration.test_lean_reads import answered_by

pytestmark = pytest.mark.integration

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class Side:
    """One app and org: its users (by index), its group, a nested group."""

    def __init__(self, settings, engine, lean: bool):
        self.org = make_org(settings, engine)
        self.org.client.close()
        self.client = TestClient(create_app(settings.model_copy(update={"scim_lean_writes": lean}), engine))
        self.client.headers.update({"Authorization": f"Bearer {self.org.token}", "Content-Type": "application/scim+json"})
        self.base = f"/scim/{self.org.slug}/v2"
        self.users = [self.post("/Users", {"schemas": [USER], "userName": f"lp{i}@example.test"})["id"] for i in range(8)]
        self.group = self.post("/Groups", {"schemas": [GROUP], "displayName": "Engineering"})["id"]
        self.nested = self.post("/Groups", {"schemas": [GROUP], "displayName": "Nested"})["id"]

    def post(self, path: str, body: dict) -> dict:
        answer = self.client.post(self.base + path, json=body)
        assert answer.status_code == 201, answer.text
        return answer.json()

    def ids(self, spec: Any) -> Any:
        """A request template with `{u3}` / `{nested}` / `{unknown}` put in for this side's ids."""
        if isinstance(spec, str):
            values = {f"u{i}": uid for i, uid in enumerate(self.users)} | {"nested": self.nested, "unknown": uuid.uuid4().hex}
            return spec.format(**values)
        if isinstance(spec, list):
            return [self.ids(s) for s in spec]
        if isinstance(spec, dict):
            return {k: self.ids(v) for k, v in spec.items()}
        return spec

    def patch(self, operations: list[dict], query: str = "", headers: dict | None = None) -> Any:
        body = {"schemas": [PATCH], "Operations": self.ids(operations)}
        return self.client.patch(f"{self.base}/Groups/{self.group}{query}", json=body, headers=headers or {})

    def state(self, engine) -> dict:
        index = {uid: f"u{i}" for i, uid in enumerate(self.users)} | {self.nested: "nested"}
        with engine.connect() as conn:
            members = sorted(
                (index[r.member_id], r.member_type, r.display)
                for r in conn.execute(
                    text("SELECT member_id, member_type, display FROM scim_group_members WHERE org_id = :o AND group_id = :g"),
                    {"o": self.org.id, "g": self.group},
                )
            )
            version = conn.execute(text("SELECT version FROM scim_resources WHERE id = :g"), {"g": self.group}).scalar()
            # within a version, ordered by member id (which differs between the sides): compared as a set
            events = sorted(
                (p["resourceversion"], p["type"], index.get(p["data"].get("member_id"), p["data"].get("member_id")))
                for p in conn.execute(
                    text("SELECT payload FROM outbox WHERE payload->>'orgid' = :o AND payload->'data'->>'group_id' = :g "
                         "ORDER BY id"),
                    {"o": self.org.id, "g": self.group},
                ).scalars()
            )  # fmt: skip
            audit = [
                (r.method, r.status)
                for r in conn.execute(
                    text("SELECT method, status FROM scim_audit WHERE org_id = :o AND method = 'PATCH' ORDER BY id"),
                    {"o": self.org.id},
                )
            ]
        return {"members": members, "version": version, "events": events, "audit": audit}


def add(*who: str, display: bool = False) -> dict:
    values = [{"value": "{" + w + "}"} | ({"display": w} if display else {}) for w in who]
    return {"op": "add", "path": "members", "value": values}


def remove(who: str) -> dict:
    return {"op": "remove", "path": 'members[value eq "{' + who + '}"]'}


# (operations, query string, headers, served lean)
PATCHES: list[tuple[list[dict], str, dict | None, bool]] = [
    ([add("u0", "u1")], "", None, True),
    ([{"op": "Add", "path": "members", "value": [{"value": "{u2}", "display": "Two"}]}], "", None, True),  # Entra's "Add"
    ([remove("u1")], "", None, True),
    ([add("u3"), remove("u2")], "", None, True),
    ([add("u0")], "", None, False),  # already a member
    ([remove("u5")], "", None, False),  # not a member
    ([add("u4", "u4")], "", None, False),  # named twice
    ([add("unknown")], "", None, False),  # not a resource of the org: the library's 400
    ([add("nested")], "", None, False),  # a nested group
    # Entra's remove by value: ingest.scim.quirks rewrites it into the filter, for both paths
    ([{"op": "Remove", "path": "members", "value": [{"value": "{u0}"}]}], "", None, True),
    ([add("u0")], "", None, True),
    ([{"op": "replace", "path": "displayName", "value": "Eng"}], "", None, False),
    ([add("u5")], "?attributes=members", None, False),
    ([add("u6")], "", {"If-Match": 'W/"1"'}, False),
    ([add("u6", "u7", display=True), remove("u3")], "", None, True),
]


def test_member_patches_are_the_library_s_answers_rows_and_events(settings, engine, monkeypatch):
    served = answered_by(monkeypatch, lean_patch.LeanMemberPatch)
    lean, library = Side(settings, engine, lean=True), Side(settings, engine, lean=False)
    for operations, query, headers, lean_served in PATCHES:
        before = len(served)
        ours, theirs = lean.patch(operations, query, headers), library.patch(operations, query, headers)
        assert (ours.status_code, ours.headers.get("ETag")) == (theirs.status_code, theirs.headers.get("ETag")), operations
        if ours.status_code >= 400:
            assert ours.json().get("scimType") == theirs.json().get("scimType"), (operations, ours.text, theirs.text)
        assert served[before] is lean_served, operations  # the lean side's answer (the library side has no lean path)
        assert len(served) == before + 1
    assert lean.state(engine) == library.state(engine)
    # u4 named twice and the nested group are the library's to add; u3 went with the last PATCH
    assert [m for m, _, _ in lean.state(engine)["members"]] == ["nested", "u0", "u4", "u5", "u6", "u7"]
