"""One org's stalled IdP against another org's SCIM latency: `python -m bench.idp_stall [--seconds 20]`.

Org A's OIDC token endpoint (a loopback server) sleeps 8 s; 45 browsers keep A's callbacks in flight.
Org B sends `GET /Users?count=1` at 20 requests/s, alone and then during the stall; the p50/p99 of both
windows and the answers A's browsers got are printed as JSON. It measures; it never fails on a number.
"""

import argparse
import json
import multiprocessing
import statistics
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx

from bench.abuse_idp import SlowIdp
from bench.harness import System, fresh_database, wait_http
from core.settings import Settings, free_port, isolated
from domain import orgs
from ingest.sso import oidc

CALLBACKS, SLEEP_SECONDS, RATE = 45, 8.0, 20.0


def victim(base_url: str, token: str, seconds: float) -> list[float]:
    """Latencies (ms) of B's `GET /Users?count=1`, sent at RATE per second for `seconds` (in a process of its
    own, so the attacking threads' GIL does not show in its figures)."""
    out, end = [], time.monotonic() + seconds
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        while (start := time.monotonic()) < end:
            assert client.get("/Users", params={"count": 1}).status_code == 200
            out.append((time.monotonic() - start) * 1000)
            time.sleep(max(0.0, 1 / RATE - (time.monotonic() - start)))
    return out


def attacker(base: str, stop: threading.Event, answers: dict[str, int], lock: threading.Lock) -> None:
    """One browser signing in to org A again and again: login, then a callback that waits on the token endpoint."""
    with httpx.Client(timeout=30, follow_redirects=False) as browser:
        while not stop.is_set():
            started = browser.get(f"{base}/login")
            kind = f"login {started.status_code}"
            if started.status_code == 302:
                state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
                kind = f"callback {browser.get(f'{base}/callback', params={'state': state, 'code': 'c'}).status_code}"
            with lock:
                answers[kind] = answers.get(kind, 0) + 1


def summary(ms: list[float]) -> dict[str, float]:
    return {"requests": len(ms), "p50_ms": round(statistics.median(ms), 1),
            "p99_ms": round(statistics.quantiles(ms, n=100)[98], 1), "max_ms": round(max(ms), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    base = Settings()
    url = urlunsplit(urlsplit(base.database_url)._replace(path="/provisioner_bench_idp"))
    settings = isolated(base, f"bench-idp-{uuid.uuid4().hex[:6]}", url, log_level="ERROR", scim_rate_limit_per_second=0,
                        idp_allow_private_addresses=True)  # the slow IdP is on loopback, standing in for a public one
    engine = fresh_database(settings)
    system = System(settings)
    system.start("ingest", "serve")
    try:
        wait_http(f"{settings.public_url}/readyz")
        (org_a, _), (_, token_b) = orgs.create(engine, "org-a"), orgs.create(engine, "org-b")
        idp = SlowIdp(free_port(), delay=SLEEP_SECONDS).start()  # its token endpoint waits 8 s
        oidc.configure(engine, settings, org_a.slug, issuer=idp.issuer, client_id="a", client_secret="s")
        scim = httpx.Client(base_url=orgs.scim_base_url(settings.public_url, "org-b"), timeout=30,
                            headers={"Authorization": f"Bearer {token_b}", "Content-Type": "application/scim+json"})
        for i in range(50):
            scim.post("/Users", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"u{i}@b.example"})
        b_url = orgs.scim_base_url(settings.public_url, "org-b")
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        idle = pool.submit(victim, b_url, token_b, args.seconds / 2).result()
        stop, lock, answers = threading.Event(), threading.Lock(), {}
        sso = f"{settings.public_url}/sso/org-a/oidc"
        threads = [threading.Thread(target=attacker, args=(sso, stop, answers, lock), daemon=True) for _ in range(CALLBACKS)]
        for thread in threads:
            thread.start()
        time.sleep(1)  # every browser has reached A's pages
        stalled = pool.submit(victim, b_url, token_b, args.seconds).result()
        pool.shutdown()
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        print(json.dumps({"idle": summary(idle), "org_a_idp_stalled": summary(stalled), "org_a_answers": answers,
                          "idp_calls_per_org": settings.idp_calls_per_org, "idp_threads": settings.idp_threads,
                          "idp_read_timeout_seconds": settings.idp_read_timeout_seconds}, indent=2))
    finally:
        system.stop()
        engine.dispose()


if __name__ == "__main__":
    main()
