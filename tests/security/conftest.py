"""Fixtures for the security tests: the ingest app in process, orgs with every kind of
credential, and snapshots of what a request may have changed.

The app runs in process (Starlette's TestClient) on the session's real PostgreSQL, so
fuzzing is fast and a server-side exception shows its traceback in the failure.
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from starlette.testclient import TestClient

from core.settings import Settings
from core.tables import orgs as orgs_table
from core.tables import scim_group_members, scim_resources, scim_tokens
from domain import admin, service_tokens
from ingest.app import create_app
from tests.conftest import make_org

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"

def examples(default: int) -> int:
    """`default` examples, or the number PROVISIONER_FUZZ_EXAMPLES asks for."""
    wanted = int(os.environ.get("PROVISIONER_FUZZ_EXAMPLES", "0"))
    return wanted if wanted > 0 else default


@pytest.fixture(scope="session")
def app_client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    """The whole ingest app (SCIM, admin API, internal API, console, SSO) in process."""
    with TestClient(create_app(settings, engine), base_url="http://testserver", raise_server_exceptions=False) as client:
        yield client


@dataclass
class Tenant:
    """An org with a SCIM token, an admin token and some SCIM resources."""

    id: str
    slug: str
    scim_token: str
    admin_token: str
    user_id: str
    group_id: str
    member_id: str
    conflict_id: str
    marker: str  # a string only this org's data holds

    def scim(self, path: str = "") -> str:
        return f"/scim/{self.slug}/v2{path}"

    @property
    def scim_auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.scim_token}"}

    @property
    def admin_auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}


def seed(settings: Settings, engine: Engine, client: TestClient, label: str) -> Tenant:
    from tests.integration.test_admin_api import open_conflict

    scim_org = make_org(settings, engine)
    scim_org.client.close()
    marker = f"{label}-{scim_org.slug}"
    headers = {"Authorization": f"Bearer {scim_org.token}", "Content-Type": "application/scim+json"}
    base = f"/scim/{scim_org.slug}/v2"
    user = client.post(
        f"{base}/Users",
        json={
            "schemas": [USER], "userName": f"{marker}@example.com", "externalId": f"ext-{marker}",
            "displayName": f"Person {marker}", "emails": [{"value": f"{marker}@example.com", "type": "work"}],
        },
        headers=headers,
    )
    assert user.status_code == 201, user.text
    group = client.post(
        f"{base}/Groups",
        json={"schemas": [GROUP], "displayName": f"Team {marker}", "members": [{"value": user.json()["id"]}]},
        headers=headers,
    )
    assert group.status_code == 201, group.text
    conflict = open_conflict(engine, scim_org.id, f"{marker}@conflict.example.com")
    return Tenant(
        id=scim_org.id, slug=scim_org.slug, scim_token=scim_org.token,
        admin_token=admin.create_admin_token(engine, scim_org.slug), user_id=user.json()["id"],
        group_id=group.json()["id"], member_id=conflict["member_id"], conflict_id=conflict["conflict_id"], marker=marker,
    )


@pytest.fixture(scope="session")
def org_a(settings: Settings, engine: Engine, app_client: TestClient) -> Tenant:
    return seed(settings, engine, app_client, "alpha")


@pytest.fixture(scope="session")
def org_b(settings: Settings, engine: Engine, app_client: TestClient) -> Tenant:
    return seed(settings, engine, app_client, "bravo")


@pytest.fixture(scope="session")
def service_token(engine: Engine) -> str:
    return service_tokens.create(engine, "security-tests")


def snapshot(engine: Engine, org_id: str) -> dict[str, Any]:
    """Everything a SCIM request of the org may write: its SCIM rows, its outbox rows, its org and tokens."""
    with engine.connect() as conn:
        def rows(query: Any) -> list[tuple[Any, ...]]:
            return sorted(tuple(str(v) for v in row) for row in conn.execute(query))

        return {
            "org": rows(select(orgs_table).where(orgs_table.c.id == org_id)),
            "scim_tokens": rows(select(scim_tokens).where(scim_tokens.c.org_id == org_id)),
            "scim_resources": rows(select(scim_resources).where(scim_resources.c.org_id == org_id)),
            "scim_group_members": rows(select(scim_group_members).where(scim_group_members.c.org_id == org_id)),
            "outbox": rows(text("SELECT id, payload::text FROM outbox WHERE payload->>'orgid' = :o").bindparams(o=org_id)),
        }
