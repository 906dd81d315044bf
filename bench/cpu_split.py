"""Where the CPU of a sign-in goes: the login API under wrk (8 connections), with or without the
pipeline, and each process family's CPU seconds per request read from /proc (ingest, PostgreSQL,
Kafka, the relay, each worker). A profile's first step, not a benchmark: it writes nothing.

    python -m bench.cpu_split [--seconds 12] [--people 60000] [--no-pipeline]
    python -m bench.cpu_split --drain 20    # the same for a drain: CPU per user.created applied
    python -m bench.cpu_split --sync 20000  # the same for make bench's initial sync: CPU per user

With --drain, users are created for that many seconds with the relay paused (the outbox fills, as
in make bench's drain), then the relay resumes and the CPU is counted until every user is a member
and every consumer has gone quiet.

Run on the running stack (`bash deploy/local/stack.sh env`), on a fresh database of its own.
"""

import argparse
import json
import os
import time
import uuid

from sqlalchemy import Engine, text

from bench import scenarios
from bench.harness import System, fresh_system, wrk
from domain import orgs, service_tokens


def _family(cmd: str) -> str:
    if "postgres" in cmd:
        return "postgres"
    if "kafka" in cmd:
        return "kafka"
    if " -m cli serve" in cmd or "multiprocessing" in cmd:
        return "ingest"
    if " -m cli relay" in cmd:
        return "relay"
    if " -m cli worker " in cmd:
        return "worker " + cmd.split(" worker ", 1)[1].split()[0]
    return "other"


def cpu_ticks() -> dict[str, int]:
    """Each process family's CPU so far, in clock ticks (user + system)."""
    out: dict[str, int] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat, open(f"/proc/{pid}/cmdline") as cmdline:
                fields, cmd = stat.read().rsplit(")", 1)[1].split(), cmdline.read().replace("\0", " ")
        except OSError:
            continue  # gone meanwhile
        family = _family(cmd)
        out[family] = out.get(family, 0) + int(fields[11]) + int(fields[12])
    return out


def _print_split(spent: dict[str, float], wall: float, count: int, unit: str) -> None:
    print(f"| process | CPU s | share of one core | ms per {unit} |\n| --- | --- | --- | --- |")
    for family, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"| {family} | {seconds:.2f} | {seconds / wall:.0%} | {seconds / count * 1000:.3f} |")
    total = sum(spent.values())
    print(f"| all | {total:.2f} | {total / wall:.0%} | {total / count * 1000:.3f} |")


def _since(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    hz = os.sysconf("SC_CLK_TCK")
    return {k: (after[k] - before.get(k, 0)) / hz for k in after if after[k] > before.get(k, 0)}


def drain(system: System, engine: Engine, seconds: int) -> None:
    system.start_pipeline()
    scenarios._wait_idle(engine)
    expected = scenarios._applied(engine)
    events = scenarios.fill_paused(system, engine, seconds, "drain")
    expected += events
    before, started = cpu_ticks(), time.monotonic()
    while scenarios._applied(engine) < expected and time.monotonic() - started < 600:
        time.sleep(0.1)
    applied_after, at_applied = time.monotonic() - started, cpu_ticks()
    scenarios._wait_idle(engine)
    print(json.dumps({"users": events, "members_applied_seconds": round(applied_after, 2),
                      "events_per_second": round(events / applied_after, 1)}))  # fmt: skip
    print("\nuntil every user is a member:")
    _print_split(_since(before, at_applied), applied_after, events, "event")
    print("\nuntil every consumer is quiet (the conflict, billing and signals workers' share included):")
    _print_split(_since(before, cpu_ticks()), time.monotonic() - started, events, "event")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--people", type=int, default=60_000)
    parser.add_argument("--no-pipeline", action="store_true", help="ingest alone: the outbox fills")
    parser.add_argument("--drain", type=int, metavar="SECONDS", help="fill the outbox this long, then split its drain")
    parser.add_argument("--sync", type=int, metavar="USERS", help="split an Entra-shaped initial sync of this many users")
    args = parser.parse_args()
    settings, engine, system = fresh_system()
    try:
        system.start_ingest()
        if args.drain:
            drain(system, engine, args.drain)
            return
        if args.sync:
            # as in make bench, other orgs' users are in the table's statistics when the sync begins
            seeded, _ = orgs.create(engine, "cpu-seed-" + uuid.uuid4().hex[:6])
            with engine.begin() as conn:
                conn.execute(text(scenarios._SEED), {"org": seeded.id, "start": 0, "stop": 100_000})
                conn.execute(text("ANALYZE scim_resources"))
            system.start_pipeline()
            before, started = cpu_ticks(), time.monotonic()
            sync = scenarios.initial_sync(system, engine, args.sync, 32)
            print(json.dumps(sync))
            _print_split(_since(before, cpu_ticks()), time.monotonic() - started, args.sync, "user")
            return
        if not args.no_pipeline:
            system.start_pipeline()
        org, _ = orgs.create(engine, "cpu-" + uuid.uuid4().hex[:6])
        scenarios._seed_people(engine, org.id, "seed", args.people)
        token = service_tokens.create(engine, "cpu-split")
        url = settings.public_url + "/internal/v1/logins"
        env = {"BENCH_TOKEN": token, "BENCH_ORG": org.slug, "BENCH_SIZE": str(args.people), "BENCH_PREFIX": "seed"}
        wrk(url, "logins.lua", connections=8, seconds=3, env=env)  # warm: pools, caches, the first batches
        time.sleep(3)
        before, started = cpu_ticks(), time.monotonic()
        result = wrk(url, "logins.lua", connections=8, seconds=args.seconds, env=env)
        after, wall = cpu_ticks(), time.monotonic() - started
    finally:
        system.stop()
        engine.dispose()
    spent = _since(before, after)
    print(json.dumps({"requests_per_second": result.requests_per_second, "p99_ms": result.p99_ms, "errors": result.errors,
                      "pipeline": not args.no_pipeline}))  # fmt: skip
    _print_split(spent, wall, result.requests, "request")


if __name__ == "__main__":
    main()
