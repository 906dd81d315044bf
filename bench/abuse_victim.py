"""The victim org's SCIM latency, paced, from a process of its own (so the hostile load's client
work never lands in the victim's timings)."""

import statistics
import time
from dataclasses import dataclass
from typing import Any

import httpx

KINDS = ("list", "get", "filter", "patch")
TIMEOUT = 30.0


@dataclass(frozen=True)
class Victim:
    """What the probe needs: the org's SCIM base URL, its token, one of its users."""

    base: str
    token: str
    user_id: str
    user_name: str


def _request(client: httpx.Client, victim: Victim, kind: str, i: int) -> httpx.Response:
    if kind == "list":
        return client.get("/Users", params={"count": 1})
    if kind == "get":
        return client.get(f"/Users/{victim.user_id}")
    if kind == "filter":
        return client.get("/Users", params={"filter": f'userName eq "{victim.user_name}"'})
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "displayName", "value": f"Victim {i}"}]}
    return client.patch(f"/Users/{victim.user_id}", json=body)


def quantiles(values: list[float]) -> dict[str, float | int | None]:
    """p50/p99/max in ms of a list of seconds."""
    if not values:
        return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    q = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else [values[0]] * 99
    return {"count": len(values), "p50_ms": round(q[49] * 1000, 2), "p99_ms": round(q[98] * 1000, 2),
            "max_ms": round(max(values) * 1000, 2)}


def probe(victim: Victim, seconds: float, rate: float) -> dict[str, Any]:
    """Cycle through the four kinds at `rate` requests/s for `seconds`: a request due during a slow
    one starts as soon as it ends (the stall is measured, not skipped), but missed slots are not
    made up in a burst (which would trip the victim's own rate limit); latencies overall and per kind."""
    headers = {"Authorization": f"Bearer {victim.token}", "Content-Type": "application/scim+json"}
    times: dict[str, list[float]] = {k: [] for k in KINDS}
    statuses: dict[str, int] = {}
    with httpx.Client(base_url=victim.base, headers=headers, timeout=TIMEOUT) as client:
        started = due = time.monotonic()
        i = 0
        while time.monotonic() - started < seconds:
            kind = KINDS[i % len(KINDS)]
            t0 = time.perf_counter()
            try:
                code = str(_request(client, victim, kind, i).status_code)
            except httpx.HTTPError as exc:
                code = type(exc).__name__
            times[kind].append(time.perf_counter() - t0)
            statuses[code] = statuses.get(code, 0) + 1
            i += 1
            due = max(due + 1 / rate, time.monotonic())
            time.sleep(max(0.0, due - time.monotonic()))
    every = [t for values in times.values() for t in values]
    return {"overall": quantiles(every), "by_kind": {k: quantiles(v) for k, v in times.items()}, "statuses": statuses,
            "rate": rate, "seconds": seconds}
