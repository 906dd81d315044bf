"""Per-org fair shares on a real ingest process: an org that used its share of the server's time
while another org is served gets 429 with Retry-After, held back before it is answered; the other
org is not refused, and a refused write changes nothing."""

import threading
import time

import pytest
from sqlalchemy import text

from tests.conftest import make_org, own_ingest, wait_for

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
DELAY = 0.4

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fair(settings, engine):
    # a tenth of a core each: a few reads a second stay well within it, writes back to back
    # (about a third of a core from one client thread) do not
    with own_ingest(settings, "ingest with fair shares", auth_cache_seconds=5.0, scim_org_cpu_per_second=0.1,
                    scim_org_cpu_burst_seconds=0.05, scim_max_in_flight_per_org=4,
                    scim_refusal_delay_seconds=DELAY) as own:
        yield own


def test_an_org_over_its_share_is_refused_late_while_another_org_is_served(fair, engine):
    hostile, victim = make_org(fair, engine), make_org(fair, engine)
    victim_statuses: list[int] = []
    stop = threading.Event()

    def victim_traffic():  # keeps the process contended, and must never be refused for the other's use
        while not stop.is_set():
            victim_statuses.append(victim.client.get("/Users", params={"count": 1}).status_code)
            time.sleep(0.25)

    thread = threading.Thread(target=victim_traffic, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(victim_statuses) >= 2, timeout=10, message="victim traffic")
        created, refused, took = [], None, 0.0
        for i in range(2000):  # writes back to back until the share is used up
            started = time.monotonic()
            response = hostile.client.post("/Users", json={"schemas": [USER], "userName": f"h{i}"})
            if response.status_code != 201:
                refused, took = response, time.monotonic() - started
                break
            created.append(f"h{i}")
        assert refused is not None and created  # a budget is spent after a request, never before the first
    finally:
        stop.set()
        thread.join(10)
    assert refused.status_code == 429
    error = refused.json()
    assert error["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"] and error["status"] == "429"
    assert "share of the server's time" in error["detail"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert took >= DELAY  # held back before it was answered
    assert victim_statuses and set(victim_statuses) == {200}
    with engine.connect() as conn:
        names = conn.execute(
            text("SELECT user_name_ci FROM scim_resources WHERE org_id = :o"), {"o": hostile.id}
        ).scalars().all()
    assert sorted(names) == sorted(created)  # the refused write changed nothing
    hostile.client.close()
    victim.client.close()


def test_an_org_alone_is_not_held_to_its_share(fair, engine):
    time.sleep(1.5)  # the previous test's orgs have gone quiet
    alone = make_org(fair, engine)
    statuses = [alone.client.post("/Users", json={"schemas": [USER], "userName": f"a{i}"}).status_code for i in range(10)]
    assert statuses == [201] * 10
    alone.client.close()


def test_a_known_org_over_its_share_is_refused_without_a_thread(settings, engine, monkeypatch):
    from starlette.testclient import TestClient

    from ingest.app import create_app
    from ingest.scim.routes import ScimEndpoint

    own = settings.model_copy(update={"auth_cache_seconds": 30.0, "scim_org_cpu_per_second": 0.001,
                                      "scim_org_cpu_burst_seconds": 0.000001, "scim_refusal_delay_seconds": 0.0})
    hostile, victim = make_org(own, engine), make_org(own, engine)
    served: list[str] = []
    serve = ScimEndpoint.serve

    def counting(self, slug, *args, **kwargs):
        served.append(slug)
        return serve(self, slug, *args, **kwargs)

    monkeypatch.setattr(ScimEndpoint, "serve", counting)
    with TestClient(create_app(own, engine)) as client:
        def get(org):
            return client.get(f"/scim/{org.slug}/v2/Users", params={"count": 1},
                              headers={"Authorization": f"Bearer {org.token}"})

        assert get(victim).status_code == 200  # another org is here: the process is shared
        assert get(hostile).status_code == 200  # its CPU time overdraws a budget of a microsecond
        before = len(served)
        refused = get(hostile)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        assert len(served) == before  # answered from the token cache and the shares, no thread hop
    hostile.client.close()
    victim.client.close()
