"""`make bench` / `make bench-quick`: measure the pipeline on this box and write the report.

Writes `bench/results.json` and `docs/benchmarks.md`. It measures and reports; nothing here
fails on a number.
"""

import argparse
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from bench import admin_lists, limits, report, runtimes, scenarios, signals
from bench.harness import ROOT, System, fresh_system

QUICK = {
    "connections": [16], "seconds": 3, "repeats": 2, "sizes": [10_000], "latency_seconds": 5,
    "billing_people": 5_000, "kafka_messages": 20_000, "sync_users": 300, "list_members": 100_000, "list_seconds": 1,
    "list_repeats": 1, "runtime_fill_seconds": 2, "runtime_rounds": 0, "signal_users": 200, "signal_rate": 100,
    "warmup_seconds": 3, "warmup_rounds": 0,  # a smoke run: no warm-up
}
FULL = {
    "connections": [4, 16, 64], "seconds": 10, "repeats": 3, "sizes": [10_000, 100_000, 1_000_000], "latency_seconds": 15,
    "billing_people": 50_000, "kafka_messages": 100_000, "sync_users": int(os.environ.get("BENCH_SYNC_USERS", "100000")),
    "list_members": 100_000, "list_seconds": 10, "list_repeats": 3, "runtime_fill_seconds": 15, "runtime_rounds": 2,
    "signal_users": 3_000, "signal_rate": 100, "warmup_seconds": 10, "warmup_rounds": 4,
}


def machine() -> dict[str, object]:
    def cmd(*args: str) -> str:
        try:
            return subprocess.run(args, capture_output=True, text=True, check=False).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "unknown"

    mem = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), "0")
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(int(mem) / 1024 / 1024, 1),
        "cpu_model": next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "unknown"),
        "python": platform.python_version(),
        "postgres": cmd("psql", "--version"),
        # java prints its version on stderr, which cmd() does not read
        "java": subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0],
        "wrk": cmd("wrk", "--version") or "wrk",
        "kafka": "Apache Kafka 4.1.1 (KRaft, single broker)",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--sync-only", type=int, metavar="USERS", help="re-measure only the initial sync, into the existing results"
    )
    parser.add_argument(
        "--signals-only", action="store_true",
        help="re-measure only deactivation → session-revoked SET delivered, into the existing results",
    )
    parser.add_argument(
        "--runtimes-only", action="store_true",
        help="re-measure only the drain on both worker runtimes, into the existing results",
    )
    parser.add_argument(
        "--latency-only", action="store_true", help="re-measure only the pipeline latency, into the existing results"
    )
    parser.add_argument(
        "--billing-only", action="store_true",
        help="re-measure only the login API and login → billing fact, into the existing results",
    )
    args = parser.parse_args()
    if args.sync_only:
        sync_only(args.sync_only)
        return
    if args.latency_only:
        latency_only()
        return
    if args.signals_only:
        plan = json.loads((ROOT / "bench" / "results.json").read_text())["plan"]
        _remeasure("revocation_signals", lambda system, engine, _: signals.revocation(
            system, engine, plan.get("signal_users", 3000), plan.get("signal_rate", 100)))
        return
    if args.billing_only:
        plan = json.loads((ROOT / "bench" / "results.json").read_text())["plan"]
        _remeasure("billing", lambda system, engine, _: scenarios.billing(
            system, engine, plan.get("billing_people", 50_000), plan.get("seconds", 10)))
        return
    if args.runtimes_only:
        plan = json.loads((ROOT / "bench" / "results.json").read_text())["plan"]
        _remeasure("worker_runtimes", lambda system, engine, _: runtimes.runtime_drains(
            system, engine, plan.get("runtime_fill_seconds", 15), plan.get("runtime_rounds", 2)))
        return
    plan = QUICK if args.quick else FULL
    started = time.monotonic()
    settings, engine, system = fresh_system()
    results = _Timed(mode="quick" if args.quick else "full", machine=machine(), plan=plan)
    try:
        system.start_ingest()
        results.start_timing()
        # 0. untimed: the pipeline drains a few rounds of writes, so the broker's JVM is warm
        results["warm_up"] = scenarios.warm_up(system, engine, plan["warmup_seconds"], plan["warmup_rounds"])
        # 1. writes with the pipeline stopped: the outbox fills, as during an IdP's burst
        results["scim_writes"] = scenarios.scim_writes(system, engine, plan["connections"], plan["seconds"], plan["repeats"])
        # 2. lookups at scale
        results["lookups"] = scenarios.lookups(system, engine, plan["sizes"], plan["seconds"], plan["repeats"])
        # 4a. drain: the relay and workers start on the full outbox
        users = int(results["scim_writes"]["users_created"])
        warmed = int(results["warm_up"]["users"])
        results["pipeline_drain"] = scenarios.pipeline_drain(system, engine, users, warmed + users, timeout=600)
        best = max(v["ours"]["requests_per_second"] for v in results["scim_writes"]["by_connections"].values())
        sustained = min(best, results["pipeline_drain"]["events_per_second"] or best)
        # 4b. latency at half and full sustained rate, with everything running
        results["pipeline_latency"] = scenarios.pipeline_latency(system, engine, sustained, plan["latency_seconds"])
        # 3. initial sync, with everything running
        results["initial_sync"] = scenarios.initial_sync(system, engine, plan["sync_users"], 32)
        # 5. billing
        results["billing"] = scenarios.billing(system, engine, plan["billing_people"], plan["seconds"])
        # 8. deactivation → session-revoked SET at the receiver, at a constant rate
        results["revocation_signals"] = signals.revocation(system, engine, plan["signal_users"], plan["signal_rate"])
        # 7. an admin's lists at 100k members (before 6: the Kafka and PostgreSQL probes leave nothing behind)
        results["admin_lists"] = admin_lists.admin_lists(
            system, engine, plan["list_members"], plan["list_seconds"], plan["list_repeats"]
        )
        # 4c. the drain on both worker runtimes, alternating (stops the pipeline)
        if plan["runtime_rounds"]:  # make bench only: a quick run leaves the comparison out
            results["worker_runtimes"] = runtimes.runtime_drains(
                system, engine, plan["runtime_fill_seconds"], plan["runtime_rounds"]
            )
        # 6. the box's own limits
        results["box_limits"] = limits.box_limits(settings, engine, plan["kafka_messages"])
    finally:
        system.stop()
        engine.dispose()
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    results["section_seconds"] = results.sections
    (ROOT / "bench").mkdir(exist_ok=True)
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (ROOT / "docs" / "benchmarks.md").write_text(report.render(results))
    print(json.dumps({k: results[k] for k in ("mode", "wall_seconds")}))


class _Timed(dict[str, Any]):
    """The results, and the seconds each scenario took: from the previous result stored (or the
    start of timing) to its own."""

    def start_timing(self) -> None:
        self.sections: dict[str, float] = {}
        self.mark = time.monotonic()

    def __setitem__(self, key: str, value: Any) -> None:
        if hasattr(self, "mark") and key not in ("section_seconds", "wall_seconds"):
            now = time.monotonic()
            self.sections[key], self.mark = round(now - self.mark, 1), now
        super().__setitem__(key, value)


def _remeasure(key: str, measure: Callable[[System, Engine, dict[str, Any]], dict[str, Any]]) -> None:
    """Run one scenario alone, on a fresh database with the whole pipeline running, and put its
    figures into the last results (and the report) under `key`."""
    path = ROOT / "bench" / "results.json"
    results = json.loads(path.read_text())
    _, engine, system = fresh_system()
    try:
        system.start_ingest()
        system.start_pipeline()
        results[key] = measure(system, engine, results)
    finally:
        system.stop()
        engine.dispose()
    path.write_text(json.dumps(results, indent=2) + "\n")
    (ROOT / "docs" / "benchmarks.md").write_text(report.render(results))
    print(json.dumps(results[key]))


def sync_only(users: int) -> None:
    """Measure the initial sync alone (it takes longest) and add it to the last results."""
    _remeasure("initial_sync", lambda system, engine, _: scenarios.initial_sync(system, engine, users, 32))


def latency_only() -> None:
    """Measure commit → applied alone, at half and full of the last run's sustained write rate."""

    def measure(system: System, engine: Engine, results: dict[str, Any]) -> dict[str, Any]:
        sustained = results["pipeline_latency"]["sustained_write_rps"]
        out = scenarios.pipeline_latency(system, engine, sustained, results["plan"]["latency_seconds"])
        return {**out, "remeasured": "alone (`python -m bench.run --latency-only`), on a fresh database"}

    _remeasure("pipeline_latency", measure)


if __name__ == "__main__":
    main()
