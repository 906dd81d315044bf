"""With PostgreSQL unreachable, SCIM and the internal API answer 503 + Retry-After, never a 500."""

import pytest
from starlette.testclient import TestClient

from core import metrics  # noqa: F401  (the app registers its metrics on import)
from core.settings import free_port, isolated
from ingest.app import create_app

pytestmark = pytest.mark.integration


def test_scim_answers_503_with_retry_after_when_the_database_is_down(settings):
    # a PostgreSQL URL nothing listens on: connecting fails like during a restart
    down = isolated(settings, "down", f"postgresql://provisioner:provisioner@127.0.0.1:{free_port()}/provisioner")
    with TestClient(create_app(down), raise_server_exceptions=False) as client:
        for method, path, body in [
            ("GET", "/scim/acme/v2/Users?filter=userName%20eq%20%22a%22", None),
            ("POST", "/scim/acme/v2/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a"}),
        ]:
            response = client.request(method, path, json=body, headers={"Authorization": "Bearer scim_x"})
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] == "5"
            error = response.json()
            assert error["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"] and error["status"] == "503"
            assert "retry" in error["detail"].lower()


def test_the_internal_login_api_answers_503_too(settings):
    down = isolated(settings, "down", f"postgresql://provisioner:provisioner@127.0.0.1:{free_port()}/provisioner")
    with TestClient(create_app(down), raise_server_exceptions=False) as client:
        response = client.post(
            "/internal/v1/logins", json={"org": "acme", "email": "a@example.test"}, headers={"Authorization": "Bearer svc_x"}
        )
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert response.json()["status"] == 503
