"""`make abuse`: a hostile org runs a bounded mix of expensive and slow requests while another
org's SCIM latency is measured, idle and under attack.

Writes `bench/abuse.json` and the "Abuse: one hostile org" section of `docs/benchmarks.md`. Like
`make bench` it measures and reports; it fails only when the harness itself breaks.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text

from bench import abuse_report
from bench.abuse_attacks import ATTACKS, Tally, Target
from bench.abuse_idp import SlowIdp
from bench.abuse_setup import (
    AbuseSystem,
    Sampler,
    abuse_settings,
    active_queries,
    cpu_seconds,
    hostile_org,
    rss_mb,
    victim_org,
)
from bench.abuse_victim import Victim, probe
from bench.harness import ROOT
from core.settings import free_port

GRACE_SECONDS = 5.0  # after the attack: what the server still runs then outlived its clients


async def _attack(target: Target, names: list[str], seconds: float) -> dict[str, Tally]:
    deadline = time.monotonic() + seconds
    tallies = {name: Tally() for name in names}
    await asyncio.gather(*(ATTACKS[name](target, tallies[name], deadline) for name in names))
    return tallies


def access_log(path: Path, offset: int) -> dict[str, dict[str, Any]]:
    """Per route label, from ingest's access log after `offset`: requests, statuses, longest duration_ms."""
    routes: dict[str, dict[str, Any]] = {}
    with open(path, "rb") as log:
        log.seek(offset)
        for line in log:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("message") != "request" or "duration_ms" not in entry:
                continue
            row = routes.setdefault(entry["route"], {"requests": 0, "max_ms": 0.0, "statuses": {}})
            row["requests"] += 1
            row["max_ms"] = max(row["max_ms"], float(entry["duration_ms"]))
            row["statuses"][str(entry["status"])] = row["statuses"].get(str(entry["status"]), 0) + 1
    return routes


def audit(engine: Engine, since: datetime) -> dict[str, dict[str, Any]]:
    """Per org slug, from the SCIM audit table since `since`: rows and the longest duration_ms."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT o.slug, count(*), max(a.duration_ms) FROM scim_audit a JOIN orgs o ON o.id = a.org_id "
            "WHERE a.at >= :since GROUP BY o.slug"), {"since": since}).all()
    return {slug: {"rows": int(n), "max_ms": round(float(m), 1)} for slug, n, m in rows}


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _warm(victim: Victim) -> None:
    with httpx.Client(base_url=victim.base, headers={"Authorization": f"Bearer {victim.token}"}, timeout=30) as client:
        for _ in range(20):
            client.get("/Users", params={"count": 1})


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One run: start, seed, measure idle, attack while measuring, collect the server's side."""
    started = time.monotonic()
    settings = abuse_settings(args.http_workers, args.rate_limit)
    system = AbuseSystem(settings)
    idp = SlowIdp(free_port(), delay=args.idp_delay).start()
    names = args.classes or list(ATTACKS)
    out: dict[str, Any] = {"plan": {"attack_seconds": args.seconds, "idle_seconds": args.idle_seconds, "victim_rate": args.rate,
                                    "rate_limit": args.rate_limit,
                                    "http_workers": args.http_workers, "pipeline": not args.no_pipeline,
                                    "idp_delay_seconds": args.idp_delay, "classes": names,
                                    "attacker_nice": args.attacker_nice, "control": args.control}}
    out["deadline_seconds"] = getattr(settings, "scim_request_deadline_seconds", None)
    try:
        system.start(pipeline=not args.no_pipeline, control=args.control)
        victim = victim_org(system)
        target, out["hostile_setup"] = hostile_org(system, idp)
        if args.control:
            public, control = target.public_url, system.control_url
            target = replace(target, public_url=control, scim=target.scim.replace(public, control),
                             flood_scim=target.flood_scim.replace(public, control))
        _warm(victim)
        out["rss_mb"] = {"before": rss_mb(system.ingest_pid)}
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            out["idle"] = pool.submit(probe, victim, args.idle_seconds, args.rate).result()
            offset, since = system.log_path.stat().st_size, datetime.now(UTC)
            sampler = Sampler(system)
            sampler.start()
            control = system.children.get("control ingest")
            control_cpu = cpu_seconds(control.pid) if control else 0.0
            cpu = (cpu_seconds(system.ingest_pid), _own_cpu(), time.monotonic(), os.getloadavg()[0])
            under = pool.submit(probe, victim, args.seconds, args.rate)
            if args.attacker_nice:
                os.nice(args.attacker_nice)  # this process runs the hostile clients from here on
            tallies = asyncio.run(_attack(target, names, args.seconds))
            out["under_attack"] = under.result()
            wall = time.monotonic() - cpu[2]
            # on a small box the hostile clients compete with ingest for the same cores: say how much
            out["cpu"] = {"cores": os.cpu_count(), "attack_wall_s": round(wall, 1),
                          "ingest_cores_used": round((cpu_seconds(system.ingest_pid) - cpu[0]) / wall, 2),
                          "hostile_client_cores_used": round((_own_cpu() - cpu[1]) / wall, 2),
                          "load_average_before": cpu[3], "load_average_after": os.getloadavg()[0]}
            if control:
                out["cpu"]["control_ingest_cores_used"] = round((cpu_seconds(control.pid) - control_cpu) / wall, 2)
        time.sleep(GRACE_SECONDS)
        sampler.halt.set()
        still, oldest = active_queries(system.engine)
        out["server"] = {
            "longest_query_seen_s": sampler.longest_query_s, "most_active_queries": sampler.max_active,
            "active_queries_after_grace": still, "oldest_query_after_grace_s": oldest, "grace_seconds": GRACE_SECONDS,
            "access_log": access_log(system.log_path, offset), "audit": audit(system.engine, since),
            "hostile_slug": target.slug, "victim_slug": victim.base.split("/scim/")[1].split("/")[0],
        }
        out["rss_mb"] |= {"max_during": sampler.max_rss_mb, "after": rss_mb(system.ingest_pid)}
        out["classes"] = {name: {"statuses": dict(t.statuses), "longest_client_s": round(t.longest_s, 2), "notes": t.notes}
                          for name, t in tallies.items()}
        out["idp_hits"] = dict(idp.hits)
    finally:
        system.stop()
        idp.stop()
    out["wall_seconds"] = round(time.monotonic() - started, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the hostile org attacks")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="how long the victim is measured alone")
    parser.add_argument("--rate", type=float, default=20.0, help="victim requests per second (under its rate limit)")
    parser.add_argument("--rate-limit", type=float, default=25.0, help="the per-org SCIM limit, req/s (Entra needs 25)")
    parser.add_argument("--http-workers", type=int, default=1, help="ingest processes (1: the issue's setup)")
    parser.add_argument("--idp-delay", type=float, default=8.0, help="seconds the slow IdP waits")
    parser.add_argument("--no-pipeline", action="store_true", help="ingest only, no relay and workers")
    parser.add_argument("--classes", nargs="*", choices=sorted(ATTACKS), help="only these hostile classes")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "benchmarks.md", help="the report to update")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "abuse.json", help="where the raw figures go")
    parser.add_argument("--label", default="this run", help="what this run measured (e.g. the code it ran)")
    parser.add_argument("--baseline", type=Path, help="an earlier run's JSON, shown beside this one")
    parser.add_argument("--attacker-nice", type=int, default=0,
                        help="run the hostile clients at this nice level (their CPU as if on a box of their own)")
    parser.add_argument("--control", action="store_true",
                        help="aim the hostile clients at a second ingest process: the victim's slowdown from the box alone")
    args = parser.parse_args()
    results = run(args)
    results["measured_at"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results["label"] = args.label
    if args.baseline:
        earlier = json.loads(args.baseline.read_text())
        before = earlier.get("baseline") or []
        results["baseline"] = [*(before if isinstance(before, list) else [before]), abuse_report.summary(earlier)]
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    section = abuse_report.render(results)
    abuse_report.update(args.report, section)
    print(section)


if __name__ == "__main__":
    main()
