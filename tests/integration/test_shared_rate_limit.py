"""One SCIM rate limit per org across ingest processes: the bucket in PostgreSQL, spent by two
limiters (as two processes would) and by two real ingest processes on one database."""

import os
import subprocess
import sys
import time

import httpx
import pytest
from sqlalchemy import text

from core.settings import free_port, to_env
from ingest.rate_limit import SharedOrgRateLimiter
from ingest.scim.limits import OrgRateLimiter, RateLimitedException
from tests.conftest import _die_with_parent, make_org, wait_for

pytestmark = pytest.mark.integration

RATE, BURST = 25.0, 10


def _granted(limiters, org_id: str, attempts: int) -> tuple[int, float]:
    granted, started = 0, time.monotonic()
    for i in range(attempts):
        try:
            limiters[i % len(limiters)].take(org_id)
            granted += 1
        except RateLimitedException as exc:
            assert exc.retry_after >= 1
    return granted, time.monotonic() - started


def _most(elapsed: float) -> int:
    """What one bucket may grant in `elapsed` seconds (one more for the refill rounding)."""
    return int(BURST + RATE * elapsed) + 1


def test_two_processes_share_one_bucket(settings, engine):
    org = make_org(settings, engine)
    shared = [SharedOrgRateLimiter(engine, RATE, BURST), SharedOrgRateLimiter(engine, RATE, BURST)]
    granted, elapsed = _granted(shared, org.id, 60)
    assert BURST <= granted <= _most(elapsed), (granted, elapsed)
    # the per-process buckets this replaces grant the burst once per process
    alone, _ = _granted([OrgRateLimiter(RATE, BURST), OrgRateLimiter(RATE, BURST)], org.id, 2 * BURST)
    assert alone == 2 * BURST


def test_the_bucket_refills_at_the_rate_and_orgs_are_apart(settings, engine):
    noisy, quiet = make_org(settings, engine), make_org(settings, engine)
    limiter = SharedOrgRateLimiter(engine, RATE, BURST)
    _granted([limiter], noisy.id, 3 * BURST)
    with pytest.raises(RateLimitedException):
        limiter.take(noisy.id)
    limiter.take(quiet.id)  # another org's bucket is full
    time.sleep(3 / RATE)  # three tokens' worth
    assert _granted([limiter], noisy.id, 10)[0] in (2, 3, 4)


def test_a_deleted_org_leaves_no_bucket(settings, engine):
    org = make_org(settings, engine)
    SharedOrgRateLimiter(engine, RATE, BURST).take(org.id)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM orgs WHERE id = :id"), {"id": org.id})
        assert conn.execute(text("SELECT count(*) FROM scim_rate_buckets WHERE org_id = :id"), {"id": org.id}).scalar() == 0


@pytest.fixture(scope="module")
def two_ingests(settings, engine):
    procs, urls = [], []
    for _ in range(2):
        port = free_port()
        own = settings.model_copy(update={"http_port": port, "public_url": f"http://127.0.0.1:{port}",
                                          "scim_rate_limit_per_second": RATE, "scim_rate_limit_burst": BURST})
        procs.append(subprocess.Popen([sys.executable, "-m", "cli", "serve"], env={**os.environ, **to_env(own)},
                                      preexec_fn=_die_with_parent))
        urls.append(own.public_url)
    for url in urls:
        wait_for(lambda url=url: _up(url), timeout=30, message="ingest")
    yield urls
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=15)


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_two_real_ingest_processes_grant_the_rate_once(settings, engine, two_ingests):
    org = make_org(settings, engine)
    clients = [httpx.Client(base_url=f"{url}/scim/{org.slug}/v2", headers={"Authorization": f"Bearer {org.token}"})
               for url in two_ingests]
    started, statuses = time.monotonic(), []
    for i in range(60):
        statuses.append(clients[i % 2].get("/Users?count=1").status_code)
    elapsed = time.monotonic() - started
    assert set(statuses) <= {200, 429}
    assert BURST <= statuses.count(200) <= _most(elapsed), (statuses.count(200), elapsed)
    for client in clients:
        client.close()


def test_a_flood_is_refused_without_a_database_round_trip(settings, engine):
    org = make_org(settings, engine)
    limiter = SharedOrgRateLimiter(engine, RATE, BURST)
    calls = []
    begin = engine.begin

    def counted():
        calls.append(1)
        return begin()

    limiter.engine = type("Counted", (), {"begin": staticmethod(counted)})()
    granted, elapsed = _granted([limiter], org.id, 2000)
    assert BURST <= granted <= _most(elapsed)
    # one round trip per token granted, and about one per refill interval while refused: not one per request
    assert len(calls) <= granted + int(elapsed * RATE) + 2, (len(calls), granted, elapsed)
