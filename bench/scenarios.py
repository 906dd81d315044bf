"""Benchmark scenarios. Each returns plain dicts of figures; medians over repeats where timed."""

import os
import signal
import statistics
import tempfile
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy import Engine, text

from bench.harness import PacedResult, System, start_reference, vegeta, wrk, wrk_until
from core.settings import free_port
from domain import orgs, service_tokens


def median_runs(run, repeats: int) -> dict[str, Any]:
    results = [run() for _ in range(repeats)]
    return {
        "requests_per_second": round(statistics.median(r.requests_per_second for r in results), 1),
        "p50_ms": round(statistics.median(r.p50_ms for r in results), 2),
        "p99_ms": round(statistics.median(r.p99_ms for r in results), 2),
        "errors": sum(r.errors for r in results),
        "requests": sum(r.requests for r in results),
        "runs": [round(r.requests_per_second, 1) for r in results],
    }


# -- 1. SCIM write throughput, side by side with the reference ------------------------------


def scim_writes(system: System, engine: Engine, connections: list[int], seconds: int, repeats: int) -> dict[str, Any]:
    org, token = orgs.create(engine, "bench-writes-" + uuid.uuid4().hex[:6])
    ours_url = orgs.scim_base_url(system.settings.public_url, org.slug) + "/Users"
    ref_port = free_port()
    reference = start_reference(ref_port)
    out: dict[str, Any] = {"org": org.slug, "by_connections": {}}
    try:
        for c in connections:
            tag = uuid.uuid4().hex[:6]
            # each run gets a fresh user-name prefix: the users of one run must not collide with the last run's
            ours = median_runs(
                lambda c=c, tag=tag: wrk(
                    ours_url, "post_users.lua", connections=c, seconds=seconds,
                    env={"BENCH_TOKEN": token, "BENCH_PREFIX": f"o{tag}-{uuid.uuid4().hex[:4]}"},
                ),
                repeats,
            )
            ref = median_runs(
                lambda c=c, tag=tag: wrk(
                    f"http://127.0.0.1:{ref_port}/Users", "post_users.lua", connections=c, seconds=seconds,
                    env={"BENCH_PREFIX": f"r{tag}-{uuid.uuid4().hex[:4]}"},
                ),
                repeats,
            )
            out["by_connections"][str(c)] = {
                "ours": ours,
                "reference": ref,
                "ratio": round(ours["requests_per_second"] / max(ref["requests_per_second"], 0.1), 2),
            }
    finally:
        reference.terminate()
        reference.wait(timeout=10)
    with engine.connect() as conn:
        out["users_created"] = conn.execute(text("SELECT count(*) FROM scim_resources WHERE org_id = :o"), {"o": org.id}).scalar()
        out["outbox_rows"] = conn.execute(text("SELECT count(*) FROM outbox")).scalar()
    out["org_id"] = org.id
    return out


# -- 2. Lookups at scale ---------------------------------------------------------------------

_SEED = """
INSERT INTO scim_resources (org_id, id, resource_type, version, data, user_name_ci, external_id, display_name_ci, emails_ci)
SELECT :org, md5(:org || i::text), 'User', 1,
       jsonb_build_object(
         'schemas', jsonb_build_array('urn:ietf:params:scim:schemas:core:2.0:User'),
         'userName', 'seed-' || i || '@bench.test', 'externalId', 'ext-seed-' || i, 'active', true,
         'displayName', 'Seed ' || i, 'name', jsonb_build_object('givenName', 'Seed', 'familyName', i::text),
         'emails', jsonb_build_array(
           jsonb_build_object('value', 'seed-' || i || '@bench.test', 'type', 'work', 'primary', true))),
       'seed-' || i || '@bench.test', 'ext-seed-' || i, 'seed ' || i, ARRAY['seed-' || i || '@bench.test']
FROM generate_series(:start, :stop - 1) AS i
"""


def lookups(system: System, engine: Engine, sizes: list[int], seconds: int, repeats: int) -> dict[str, Any]:
    org, token = orgs.create(engine, "bench-lookups-" + uuid.uuid4().hex[:6])
    url = orgs.scim_base_url(system.settings.public_url, org.slug) + "/Users"
    out: dict[str, Any] = {"org": org.slug, "by_size": {}}
    seeded = 0
    for size in sizes:
        started = time.monotonic()
        for start in range(seeded, size, 100_000):
            with engine.begin() as conn:
                conn.execute(text(_SEED), {"org": org.id, "start": start, "stop": min(size, start + 100_000)})
        with engine.begin() as conn:
            conn.execute(text("ANALYZE scim_resources"))
        seed_seconds = time.monotonic() - started
        seeded = size
        row: dict[str, Any] = {"seed_seconds": round(seed_seconds, 1)}
        for attr in ("userName", "externalId"):
            env = {"BENCH_TOKEN": token, "BENCH_ATTR": attr, "BENCH_SIZE": str(size), "BENCH_PREFIX": "seed",
                   "BENCH_PATH": urlsplit(url).path}
            row[attr] = median_runs(lambda env=env: wrk(url, "lookup.lua", connections=16, seconds=seconds, env=env), repeats)
        out["by_size"][str(size)] = row
    out["reference"] = _reference_lookups(min(sizes), seconds, repeats)
    return out


def _reference_lookups(size: int, seconds: int, repeats: int) -> dict[str, Any]:
    """The same lookups of the same users, served by the reference from memory (one process)."""
    port = free_port()
    reference = start_reference(port, users=size)
    try:
        row: dict[str, Any] = {"users": size}
        for attr in ("userName", "externalId"):
            env = {"BENCH_ATTR": attr, "BENCH_SIZE": str(size), "BENCH_PREFIX": "seed", "BENCH_PATH": "/Users"}
            url = f"http://127.0.0.1:{port}/Users"
            row[attr] = median_runs(lambda env=env, url=url: wrk(url, "lookup.lua", connections=16, seconds=seconds, env=env),
                                    repeats)
        return row
    finally:
        reference.terminate()
        reference.wait(timeout=10)


# -- 4. Pipeline: drain rate, then latency at half and full load ----------------------------


def _applied(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM members WHERE source = 'scim'")).scalar()


PIPELINE = ("relay", "membership", "billing", "conflicts", "signals")


def fill_paused(system: System, engine: Engine, seconds: int, name: str) -> int:
    """With the pipeline running and its relay paused (SIGSTOP), POST users into a new org for
    `seconds` (wrk, 16 connections): the outbox fills while the workers stay in their groups.
    The relay resumes before this returns; returns the users created."""
    org, token = orgs.create(engine, f"{name}-{uuid.uuid4().hex[:6]}")
    url = orgs.scim_base_url(system.settings.public_url, org.slug) + "/Users"
    relay = system.children["relay"]
    relay.send_signal(signal.SIGSTOP)
    try:
        wrk(url, "post_users.lua", connections=16, seconds=seconds,
            env={"BENCH_TOKEN": token, "BENCH_PREFIX": f"{name[:5]}{uuid.uuid4().hex[:6]}"})  # fmt: skip
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM scim_resources WHERE org_id = :o"), {"o": org.id}).scalar())
    finally:
        relay.send_signal(signal.SIGCONT)


def warm_up(system: System, engine: Engine, seconds: int, rounds: int) -> dict[str, Any]:
    """Before anything is timed, the pipeline drains what `seconds` of writes left, `rounds` times,
    then stops. A freshly started broker's JVM is still compiling its hot paths: on the first
    ~50,000 events of a drain it spent 2-3x the CPU per event of a broker that has run a while
    (bench/notes.md "A warm broker"), and a broker in production has run a while."""
    users, started = 0, time.monotonic()
    if not rounds:
        return {"users": 0, "rounds": 0, "seconds": 0.0}
    system.start_pipeline()
    try:
        for _ in range(rounds):
            users += fill_paused(system, engine, seconds, "bench-warmup")
            _wait_idle(engine)
    finally:
        system.stop(*PIPELINE)
    return {"users": users, "rounds": rounds, "seconds": round(time.monotonic() - started, 1)}


def pipeline_drain(system: System, engine: Engine, events: int, expected: int, timeout: float) -> dict[str, Any]:
    """Start the relay and workers on an outbox of `events` users; time until `expected` users
    are members (those of earlier scenarios included)."""
    started = time.monotonic()
    system.start_pipeline()
    ready = time.monotonic() - started
    t0 = time.monotonic()
    while _applied(engine) < expected and time.monotonic() - t0 < timeout:
        time.sleep(0.25)
    elapsed = time.monotonic() - t0
    applied = _applied(engine) - (expected - events)
    return {
        "events": events,
        "applied": applied,
        "seconds": round(elapsed, 2),
        "events_per_second": round(applied / elapsed, 1) if elapsed else None,
        "pipeline_start_seconds": round(ready, 1),
        "note": "each event is a user.created: relay publish, membership apply, member.created, conflict check",
    }


def _paced_posts(url: str, token: str, rate: float, seconds: float, prefix: str) -> PacedResult:
    """POST unique users at a constant rate (vegeta: an open-loop generator in Go, off the GIL)."""
    headers = {"Authorization": [f"Bearer {token}"], "Content-Type": ["application/scim+json"]}
    targets = []
    for i in range(int(rate * seconds) + 1):
        name = f"{prefix}-{i}@bench.test"
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name,
                "emails": [{"value": name, "primary": True}]}
        targets.append({"method": "POST", "url": url, "header": headers, "body": orjson.dumps(body)})
    return vegeta(targets, rate, seconds)


def _latencies(engine: Engine, org_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT EXTRACT(EPOCH FROM m.created_at - r.created_at) FROM members m "
                "JOIN scim_resources r ON r.org_id = m.org_id AND r.id = m.scim_user_id WHERE m.org_id = :o"
            ),
            {"o": org_id},
        ).scalars().all()
    values = sorted(float(v) for v in rows)
    if not values:
        return {"count": 0}
    q = statistics.quantiles(values, n=100) if len(values) > 1 else [values[0]] * 99
    return {"count": len(values), "p50_ms": round(q[49] * 1000, 1), "p99_ms": round(q[98] * 1000, 1),
            "max_ms": round(values[-1] * 1000, 1)}


def _wait_idle(engine: Engine, timeout: float = 600) -> float:
    """Until the outbox is empty and no consumer has recorded an event for 2 s: latency runs
    must not start behind the backlog of an earlier scenario (the conflict and billing workers
    still reading a drain's member events). Returns the seconds waited."""
    started = time.monotonic()
    last = None
    quiet_since = time.monotonic()
    while time.monotonic() - started < timeout:
        with engine.connect() as conn:
            pending = conn.execute(text("SELECT count(*) FROM outbox")).scalar()
            processed = conn.execute(text("SELECT count(*) FROM processed_events")).scalar()
        if pending or processed != last:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= 2.0:
            break
        last = processed
        time.sleep(0.5)
    return round(time.monotonic() - started, 1)


def _wait_members(engine: Engine, org_id: str, count: int, *, timeout: float) -> None:
    """Wait until the org has `count` members, or `timeout` seconds have passed."""
    started = time.monotonic()
    with engine.connect() as conn:
        def members() -> int:
            return conn.execute(text("SELECT count(*) FROM members WHERE org_id = :o"), {"o": org_id}).scalar()

        while members() < count and time.monotonic() - started < timeout:
            time.sleep(0.1)
            conn.commit()


def pipeline_latency(system: System, engine: Engine, sustained_rps: float, seconds: int) -> dict[str, Any]:
    out: dict[str, Any] = {"sustained_write_rps": sustained_rps}
    for share in (0.5, 1.0):
        waited = _wait_idle(engine)
        org, token = orgs.create(engine, f"bench-latency-{int(share * 100)}-" + uuid.uuid4().hex[:6])
        url = orgs.scim_base_url(system.settings.public_url, org.slug) + "/Users"
        rate = max(1.0, sustained_rps * share)
        paced = _paced_posts(url, token, rate, seconds, f"lat{int(share * 100)}")
        t0 = time.monotonic()
        _wait_members(engine, org.id, round(paced.sent * paced.success_ratio), timeout=120)
        out[f"{int(share * 100)}%"] = {
            "target_rps": round(rate, 1),
            "achieved_rps": paced.achieved_rps,
            "sent": paced.sent,
            "success_ratio": paced.success_ratio,
            "request_p99_ms": paced.p99_ms,
            "lag_drained_seconds_after_load": round(time.monotonic() - t0, 2),
            "waited_for_idle_seconds_before": waited,
            "commit_to_applied": _latencies(engine, org.id),
        }
    return out


# -- 5. Billing path ---------------------------------------------------------------------------


def _seed_people(engine: Engine, org_id: str, prefix: str, people: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO members (id, org_id, email, email_ci, user_name, status, source) "
                "SELECT gen_random_uuid(), :o, :p || '-' || i || '@bench.test', :p || '-' || i || '@bench.test', "
                ":p || '-' || i || '@bench.test', 'provisioned', 'scim' FROM generate_series(0, :n - 1) AS i"
            ),
            {"o": org_id, "n": people, "p": prefix},
        )


def _billed(engine: Engine, org_id: str, expected: int, timeout: float) -> tuple[float, list[float]]:
    """Wait until `expected` first logins of the org are billed; (seconds waited, login → fact delays)."""
    t0 = time.monotonic()
    with engine.connect() as conn:
        def billed() -> int:
            conn.commit()
            return conn.execute(text("SELECT count(*) FROM seats WHERE org_id = :o"), {"o": org_id}).scalar()

        while billed() < expected and time.monotonic() - t0 < timeout:
            time.sleep(0.2)
        rows = conn.execute(
            text("SELECT EXTRACT(EPOCH FROM updated_at - first_login_at) FROM seats WHERE org_id = :o"), {"o": org_id}
        ).scalars().all()
    return time.monotonic() - t0, sorted(float(v) for v in rows)


def _quantiles_ms(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=100) if len(values) > 1 else [values[0] if values else 0.0] * 99
    return {"p50_ms": round(q[49] * 1000, 1), "p99_ms": round(q[98] * 1000, 1)}


def billing(system: System, engine: Engine, people: int, seconds: int) -> dict[str, Any]:
    """The login API's closed-loop rate (wrk), then first login → billing fact at half that rate,
    paced (vegeta), each on people of their own who never signed in."""
    org, _ = orgs.create(engine, "bench-billing-" + uuid.uuid4().hex[:6])
    _seed_people(engine, org.id, "seed", people)
    token = service_tokens.create(engine, "bench")
    url = system.settings.public_url + "/internal/v1/logins"
    result = wrk(
        url, "logins.lua", connections=8, seconds=seconds,
        env={"BENCH_TOKEN": token, "BENCH_ORG": org.slug, "BENCH_SIZE": str(people), "BENCH_PREFIX": "seed"},
    )
    expected = min(people, result.requests - result.errors)
    waited, values = _billed(engine, org.id, expected, timeout=180)
    out: dict[str, Any] = {
        "login_api": {"requests_per_second": round(result.requests_per_second, 1), "p99_ms": round(result.p99_ms, 2),
                      "errors": result.errors},
        "first_logins": len(values),
        "expected": expected,
        "billed_within_seconds_after_load": round(waited, 2),
        "login_to_billing_fact": _quantiles_ms(values),
    }
    _wait_idle(engine)
    rate = max(1.0, result.requests_per_second / 2)
    paced_org, _ = orgs.create(engine, "bench-billing-paced-" + uuid.uuid4().hex[:6])
    count = int(rate * seconds) + 1
    _seed_people(engine, paced_org.id, "paced", count)
    headers = {"Authorization": [f"Bearer {token}"], "Content-Type": ["application/json"]}
    targets = [{"method": "POST", "url": url, "header": headers,
                "body": orjson.dumps({"org": paced_org.slug, "email": f"paced-{i}@bench.test", "method": "password"})}
               for i in range(count)]  # fmt: skip
    paced = vegeta(targets, rate, seconds)
    sent = round(paced.sent * paced.success_ratio)
    waited, values = _billed(engine, paced_org.id, sent, timeout=180)
    out["half_rate"] = {"target_rps": round(rate, 1), "achieved_rps": paced.achieved_rps, "sent": paced.sent,
                        "success_ratio": paced.success_ratio, "first_logins": len(values),
                        "billed_within_seconds_after_load": round(waited, 2), "login_to_billing_fact": _quantiles_ms(values)}
    return out


# -- 3. Initial sync: Entra's first cycle for one org ------------------------------------------


def initial_sync(system: System, engine: Engine, users: int, connections: int, group_size: int = 1000) -> dict[str, Any]:
    """Entra's first cycle for one org, driven by wrk (bench/wrk/entra_*.lua): lookup then create
    per user, then groups created and filled with PATCHes of 100 members; timed until every
    user is a member and every membership a link in PostgreSQL (applied, not just accepted)."""
    org, token = orgs.create(engine, "bench-sync-" + uuid.uuid4().hex[:6])
    base = orgs.scim_base_url(system.settings.public_url, org.slug)
    env = {"BENCH_TOKEN": token, "BENCH_USERS": str(users), "BENCH_PREFIX": f"sync-{org.slug}",
           "BENCH_GROUP_SIZE": str(group_size)}

    def count(sql: str) -> int:
        with engine.connect() as conn:
            return conn.execute(text(sql), {"o": org.id}).scalar()

    started = time.monotonic()
    users_sql = "SELECT count(*) FROM scim_resources WHERE org_id = :o AND resource_type = 'User'"
    user_load = wrk_until(base, "entra_users.lua", connections=connections, env=env, stored=lambda: count(users_sql),
                          target=users)
    users_done = time.monotonic()
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, external_id FROM scim_resources WHERE org_id = :o AND resource_type = 'User'"), {"o": org.id}
        ).all()
    ids = [row[0] for row in sorted(rows, key=lambda r: int(r[1].removeprefix("ext-")))]
    with tempfile.NamedTemporaryFile("w", suffix=".ids", delete=False) as f:
        f.write("\n".join(ids) + "\n")
    try:
        group_load = wrk_until(base, "entra_groups.lua", connections=min(connections, max(1, users // group_size)),
                               env={**env, "BENCH_IDS_FILE": f.name},
                               stored=lambda: count("SELECT count(*) FROM scim_group_members WHERE org_id = :o"),
                               target=len(ids))
    finally:
        os.unlink(f.name)
    accepted = time.monotonic()

    def applied() -> tuple[int, int]:
        return (count("SELECT count(*) FROM members WHERE org_id = :o"),
                count("SELECT count(*) FROM member_group_links WHERE org_id = :o AND present"))

    while applied() != (users, len(ids)) and time.monotonic() - accepted < 3600:
        time.sleep(0.5)
    final = applied()
    done = time.monotonic()
    return {
        "users": users,
        "memberships": len(ids),
        "connections": connections,
        "load_generator": "wrk (bench/wrk/entra_users.lua, entra_groups.lua), one connection per thread",
        "errors": user_load.errors + group_load.errors,
        "requests": user_load.requests + group_load.requests,
        "user_phase_requests_per_second": user_load.requests_per_second,
        "user_phase_p99_ms": user_load.p99_ms,
        "group_phase_p99_ms": group_load.p99_ms,
        "users_accepted_seconds": round(users_done - started, 1),
        "all_accepted_seconds": round(accepted - started, 1),
        "all_applied_seconds": round(done - started, 1),
        "applied": {"members": final[0], "memberships": final[1]},
    }
