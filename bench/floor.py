"""What a durable SCIM create can cost on this box, side by side in one run: the in-memory
reference, minimal durable servers (bench/floor_app.py: no framework, one statement and its
commit; without and with scim2-models validation; httptools and h11), ours, and PostgreSQL alone
(pgbench, the same statement). `python -m bench.floor [--seconds 10]`; prints one JSON object.
Figures and what they mean: docs/decisions.md, "What a durable SCIM write can cost on this box"."""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from bench.harness import ROOT, System, bench_settings, fresh_database, start_reference, wait_http, wrk
from domain import orgs

PORT = 8792


def _post(url: str, token: str, seconds: int) -> dict[str, Any]:
    warm = {"BENCH_TOKEN": token, "BENCH_PREFIX": "w" + uuid.uuid4().hex[:6]}
    wrk(url, "post_users.lua", connections=4, seconds=2, env=warm)
    run = {"BENCH_TOKEN": token, "BENCH_PREFIX": uuid.uuid4().hex[:8]}
    r = wrk(url, "post_users.lua", connections=16, seconds=seconds, env=run)
    return {"requests_per_second": r.requests_per_second, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "errors": r.errors}


def _floor(mode: str, http: str, dsn: str, org_id: str, seconds: int) -> dict[str, Any]:
    env = {**os.environ, "FLOOR_MODE": mode, "FLOOR_DSN": dsn, "FLOOR_ORG": org_id}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.floor_app:app", "--port", str(PORT), "--workers", "2", "--http", http,
         "--log-level", "warning", "--no-access-log"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(3)
        return _post(f"http://127.0.0.1:{PORT}/Users", "", seconds)
    finally:
        proc.terminate()
        proc.wait()


# the floor's statement for pgbench: a fresh id per transaction, constants for the rest
_PGBENCH = """\\set n random(1, 1000000000)
WITH r AS (INSERT INTO scim_resources (org_id, id, resource_type, version, data, user_name_ci, external_id, display_name_ci,
  emails_ci) VALUES ('{org}', 'pgb-' || :n || '-' || txid_current(), 'User', 1, '{{"userName": "x", "active": true}}',
  'pgb-' || :n || '-' || txid_current(), 'e', 'bench user', ARRAY['a@b.c'])
  ON CONFLICT (org_id, user_name_ci) WHERE resource_type = 'User' DO NOTHING RETURNING id),
o AS (INSERT INTO outbox (event_id, topic, key, payload) SELECT gen_random_uuid(), 'scim', 'k', '{{"a": 1}}' FROM r RETURNING id)
INSERT INTO scim_audit (org_id, at, method, path, status, duration_ms, request_id)
SELECT '{org}', now(), 'POST', '/Users', 201, 1.0, 'r' FROM r;
"""


def _pgbench(dsn: str, org_id: str, seconds: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(_PGBENCH.format(org=org_id))
    parts = urlsplit(dsn)
    out = subprocess.run(
        ["pgbench", "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432), "-U", parts.username or "",
         "-n", "-c", "16", "-j", "2", "-T", str(seconds), "-f", script.name, parts.path.lstrip("/")],
        env={**os.environ, "PGPASSWORD": parts.password or ""}, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found = re.search(r"tps = ([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"pgbench: {out}")
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    seconds = parser.parse_args().seconds
    settings = bench_settings(2)
    engine = fresh_database(settings)
    org, token = orgs.create(engine, "floor-" + uuid.uuid4().hex[:6])
    dsn = settings.database_url.replace("postgresql+psycopg2://", "postgresql://")
    out: dict[str, Any] = {}
    ref = start_reference(8791)
    try:
        out["reference"] = _post("http://127.0.0.1:8791/Users", "", seconds)
    finally:
        ref.terminate()
        ref.wait()
    for mode, http in (("sql", "httptools"), ("sql", "h11"), ("scim", "httptools")):
        out[f"floor {mode} {http}"] = _floor(mode, http, dsn, org.id, seconds)
    system = System(settings)
    system.start("ingest", "serve")
    try:
        wait_http(settings.public_url + "/readyz", timeout=60)
        out["ours"] = _post(orgs.scim_base_url(settings.public_url, org.slug) + "/Users", token, seconds)
    finally:
        system.stop()
    out["pgbench tps"] = _pgbench(dsn, org.id, seconds)
    reference = out["reference"]["requests_per_second"]
    for row in out.values():
        if isinstance(row, dict):
            row["ratio"] = round(row["requests_per_second"] / reference, 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
