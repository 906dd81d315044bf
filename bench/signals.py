"""§8 of `make bench`: SCIM deactivation → session-revoked SET delivered, at a constant rate.

Users are provisioned and applied first; then vegeta PATCHes them `active: false` at a constant
rate while the whole pipeline runs. A receiver on loopback (threads, in this process) verifies
each SET's ES256 signature against the JWKS ingest publishes, as a relying app would, and answers
202. The delay of each signal is from its deactivation's SCIM commit (`occurred_at`, the member
event's `causetime`) to the receiver holding the verified SET, and, as the worker records it, to
the 202 being recorded (`delivered_at`).
"""

import statistics
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import orjson
from sqlalchemy import Engine, text

from bench.harness import System, vegeta
from domain import orgs

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
TARGET_P99_SECONDS = 2.0


class _Receiver:
    def __init__(self, settings: Any):
        self.url = urlsplit(settings.caep_push_url)
        self.issuer, self.audience = settings.public_url.rstrip("/"), settings.caep_push_url
        keys = httpx.get(f"{settings.public_url}/.well-known/jwks.json", timeout=10).json()["keys"]
        self.keys = {k["kid"]: jwt.PyJWK(k).key for k in keys}
        self.arrived: dict[str, float] = {}  # jti -> wall time the verified SET was held
        self.invalid = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                token = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                status = receiver.receive(token)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((self.url.hostname or "127.0.0.1", self.url.port or 80), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def receive(self, token: str) -> int:
        try:
            kid = jwt.get_unverified_header(token)["kid"]
            claims = jwt.decode(token, self.keys[kid], algorithms=["ES256"], audience=self.audience, issuer=self.issuer)
        except (jwt.PyJWTError, KeyError):
            with self.lock:
                self.invalid += 1
            return 400
        with self.lock:
            self.arrived.setdefault(claims["jti"], time.time())
        return 202

    def close(self) -> None:
        self.httpd.shutdown()


def _quantiles(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    values.sort()
    q = statistics.quantiles(values, n=100) if len(values) > 1 else [values[0]] * 99
    return {"count": len(values), "p50_ms": round(q[49] * 1000, 1), "p99_ms": round(q[98] * 1000, 1),
            "max_ms": round(values[-1] * 1000, 1)}


def revocation(system: System, engine: Engine, users: int, rate: float) -> dict[str, Any]:
    settings = system.settings
    receiver = _Receiver(settings)
    org, token = orgs.create(engine, "bench-signals-" + uuid.uuid4().hex[:6])
    base = orgs.scim_base_url(settings.public_url, org.slug)
    headers = {"Authorization": [f"Bearer {token}"], "Content-Type": ["application/scim+json"]}
    try:
        creates = [{"method": "POST", "url": f"{base}/Users", "header": headers, "body": orjson.dumps(
            {"schemas": [USER], "userName": f"leaver{i}@bench.test", "emails": [{"value": f"leaver{i}@bench.test"}]})}
            for i in range(users)]  # fmt: skip
        vegeta(creates, min(400.0, users / 2), users / min(400.0, users / 2))
        with engine.connect() as conn:
            deadline = time.monotonic() + 120
            while conn.execute(text("SELECT count(*) FROM members WHERE org_id = :o"), {"o": org.id}).scalar() < users:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
                conn.commit()
            ids = conn.execute(text("SELECT id FROM scim_resources WHERE org_id = :o AND resource_type = 'User'"),
                               {"o": org.id}).scalars().all()
        body = orjson.dumps({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]})
        patches = [{"method": "PATCH", "url": f"{base}/Users/{i}", "header": headers, "body": body} for i in ids]
        paced = vegeta(patches, rate, len(patches) / rate)
        expected = round(paced.sent * paced.success_ratio)
        deadline = time.monotonic() + 120
        while len(receiver.arrived) < expected and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)  # the last 202s recorded by the worker
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT jti::text, occurred_at, delivered_at, attempts FROM security_events WHERE org_id = :o"
            ), {"o": org.id}).all()  # fmt: skip
    finally:
        receiver.close()
    to_receiver = [receiver.arrived[r.jti] - r.occurred_at.timestamp() for r in rows if r.jti in receiver.arrived]
    to_recorded = [(r.delivered_at - r.occurred_at).total_seconds() for r in rows if r.delivered_at]
    out = {
        "users": len(ids), "target_rps": rate, "achieved_rps": paced.achieved_rps, "sent": paced.sent,
        "success_ratio": paced.success_ratio, "signals": len(rows), "verified_by_receiver": len(receiver.arrived),
        "invalid": receiver.invalid, "retried": sum(1 for r in rows if r.attempts > 1),
        "deactivation_to_receiver": _quantiles(to_receiver), "deactivation_to_recorded": _quantiles(to_recorded),
        "target_p99_seconds": TARGET_P99_SECONDS, "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }  # fmt: skip
    return out


def render(r: dict[str, Any] | None) -> list[str]:
    if not r:
        return ["Not measured in this run."]
    a, b = r["deactivation_to_receiver"], r["deactivation_to_recorded"]
    p99 = a.get("p99_ms") or 1e9
    every = r["verified_by_receiver"] >= round(r["sent"] * r["success_ratio"])
    verdict = "**met**" if p99 <= TARGET_P99_SECONDS * 1000 and every else "**missed**"
    return [
        f"{r.get('measured_at', '')}: {r['users']:,} provisioned users deactivated over SCIM by vegeta at "
        f"{r['target_rps']} req/s asked, "
        f"{r['achieved_rps']} sent ({r['sent']:,} PATCHes, {r['success_ratio']:.0%} accepted), with the whole pipeline "
        f"running; a receiver on loopback verified {r['verified_by_receiver']:,} of {r['signals']:,} signals "
        f"({r['invalid']} invalid, {r['retried']} needed a retry).",
        "",
        "| from the SCIM deactivation's commit to | p50 ms | p99 ms | max ms |",
        "| --- | --- | --- | --- |",
        f"| the receiver holding the verified SET | {a.get('p50_ms')} | {a.get('p99_ms')} | {a.get('max_ms')} |",
        f"| the worker recording the 202 | {b.get('p50_ms')} | {b.get('p99_ms')} | {b.get('max_ms')} |",
        "",
        f"Target (the SLO, `deploy/prometheus/rules.yml`): p99 ≤ {TARGET_P99_SECONDS:g} s from deactivation to "
        f"delivered, every signal verified: {verdict} ({a.get('p99_ms')} ms).",
    ]
