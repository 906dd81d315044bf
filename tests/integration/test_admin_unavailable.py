"""With PostgreSQL unreachable, the admin API answers 503 + Retry-After in its problem shape, never a 500."""

import pytest
from starlette.testclient import TestClient

from core import metrics  # noqa: F401  (the app registers its metrics on import)
from core.settings import free_port, isolated
from ingest.app import create_app

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", "/org", None), ("GET", "/org/members", None), ("POST", "/org/members", {"email": "a@example.test"}),
     ("PATCH", "/org/settings", {"scim_enabled": True})],
)
def test_the_admin_api_answers_503_with_retry_after_when_the_database_is_down(settings, method, path, body):
    # a PostgreSQL URL nothing listens on: connecting fails like during a restart
    down = isolated(settings, "down", f"postgresql://provisioner:provisioner@127.0.0.1:{free_port()}/provisioner")
    with TestClient(create_app(down), raise_server_exceptions=False) as client:
        response = client.request(method, f"/admin/v1{path}", json=body, headers={"Authorization": "Bearer adm_x"})
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    assert response.json()["status"] == 503 and "retry" in response.json()["detail"].lower()
