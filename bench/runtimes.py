"""The drain on both worker runtimes, alternating: kafka-python's consumer and faust-streaming's agents.

Each round fills the outbox with the pipeline stopped (wrk POSTs users for a few seconds), then
starts the relay and the three workers on one runtime and times two things: until every user is
a member (the drain figure of §4) and until every consumer is idle (the conflict and billing
workers have read the member events too). The runtimes alternate, and swap who goes first each
round, so a box that speeds up or slows down within the run favours neither.
"""

import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, text

from bench import scenarios
from bench.harness import System, wrk
from domain import orgs

RUNTIMES = ("kafka-python", "faust")
_PIPELINE = scenarios.PIPELINE


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar() or 0)


def _one_drain(system: System, engine: Engine, runtime: str, url: str, token: str, seconds: int) -> dict[str, Any]:
    scenarios._wait_idle(engine)
    system.stop(*_PIPELINE)
    filled = time.monotonic()
    wrk(url, "post_users.lua", connections=16, seconds=seconds,
        env={"BENCH_TOKEN": token, "BENCH_PREFIX": f"rt-{uuid.uuid4().hex[:8]}"})
    # a static member of the stopped pipeline holds its partitions until its session ends
    time.sleep(max(0.0, system.settings.consumer_session_timeout_ms / 1000 + 1 - (time.monotonic() - filled)))
    events = _count(engine, "SELECT count(*) FROM outbox")
    expected = _count(engine, "SELECT count(*) FROM members WHERE source = 'scim'") + events
    # dynamic members: a stopped worker leaves its group at once, so the other runtime's members
    # (another partition assignor) can join it without waiting for a static member's session to end
    system.settings = system.settings.model_copy(update={"worker_runtime": runtime, "consumer_static_membership": False})
    system.start_pipeline()
    started = time.monotonic()
    while scenarios._applied(engine) < expected and time.monotonic() - started < 300:
        time.sleep(0.1)
    applied = time.monotonic() - started
    idle = scenarios._wait_idle(engine) - 2.0  # _wait_idle waits 2 s of quiet before it returns
    return {
        "runtime": runtime,
        "events": events,
        "members_applied": scenarios._applied(engine) >= expected,
        "events_per_second": round(events / applied, 1),
        "all_consumers_idle_seconds": round(applied + max(0.0, idle), 1),
    }


def runtime_drains(system: System, engine: Engine, seconds: int, rounds: int) -> dict[str, Any]:
    """`rounds` drains per runtime, alternating; medians, and faust's rate over kafka-python's."""
    org, token = orgs.create(engine, "bench-runtimes-" + uuid.uuid4().hex[:6])
    url = orgs.scim_base_url(system.settings.public_url, org.slug) + "/Users"
    default, static = system.settings.worker_runtime, system.settings.consumer_static_membership
    runs: list[dict[str, Any]] = []
    try:
        for round_ in range(rounds):
            order = RUNTIMES if round_ % 2 == 0 else RUNTIMES[::-1]
            runs.extend(_one_drain(system, engine, runtime, url, token, seconds) for runtime in order)
    finally:
        system.stop(*_PIPELINE)
        system.settings = system.settings.model_copy(update={"worker_runtime": default, "consumer_static_membership": static})
    out: dict[str, Any] = {"fill_seconds": seconds, "rounds": rounds, "runs": runs,
                           "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
    for runtime in RUNTIMES:
        mine = [r for r in runs if r["runtime"] == runtime]
        out[runtime] = {
            "events_per_second": round(statistics.median(r["events_per_second"] for r in mine), 1),
            "all_consumers_idle_seconds": round(statistics.median(r["all_consumers_idle_seconds"] for r in mine), 1),
            "all_applied": all(r["members_applied"] for r in mine),
        }
    kafka_python = max(out["kafka-python"]["events_per_second"], 0.1)
    out["faust_over_kafka_python"] = round(out["faust"]["events_per_second"] / kafka_python, 2)
    return out
