"""Per-org SCIM rate limit on a real ingest process: 429 with Retry-After and a SCIM Error."""

import concurrent.futures

import pytest
from sqlalchemy import text

from tests.conftest import make_org, own_ingest

USER = "urn:ietf:params:scim:schemas:core:2.0:User"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def limited(settings, engine):
    with own_ingest(settings, "rate-limited ingest", scim_rate_limit_per_second=25, scim_rate_limit_burst=10) as own:
        yield own


def test_an_org_over_its_rate_gets_429_and_nothing_changes(limited, engine):
    noisy, quiet = make_org(limited, engine), make_org(limited, engine)

    def create(i):
        return noisy.client.post("/Users", json={"schemas": [USER], "userName": f"burst-{i}"})

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(create, range(80)))
    refused = [r for r in responses if r.status_code == 429]
    created = [r for r in responses if r.status_code == 201]
    assert refused and created and len(refused) + len(created) == 80
    error = refused[0].json()
    assert error["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"] and error["status"] == "429"
    assert int(refused[0].headers["Retry-After"]) >= 1
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM scim_resources WHERE org_id = :o"), {"o": noisy.id}).scalar()
    assert stored == len(created)  # a refused request wrote nothing
    # another org is not affected by the noisy one
    assert quiet.client.get("/Users").status_code == 200
