"""A hostile org in the same fault run: a bounded mix of expensive and slow requests against ingest.

The request shapes are those of `make abuse` (bench/abuse_attacks.py), smaller and in rounds so
that they cost the run a bounded share of a 2-core box: every `PERIOD` seconds, for at most
`ROUND` seconds, a POST /.search naming thousands of attributes, PATCHes of 5,000 operations, a
declared 50 MB Content-Length whose body never comes, slow-loris connections that never finish
their headers, and a flood of cheap GETs far over the org's rate limit. Its org is not in the
IdP's ledgers, so the invariant checker never looks at what it was refused; its answers are
tallied by class and status for the report (a refusal is 4xx/429/503 or a closed connection).
"""

import asyncio
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Engine

from core.settings import Settings
from domain import orgs as org_service

PERIOD = 15.0
ROUND = 8.0
TIMEOUT = 10.0
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ATTRIBUTES = 3000
OPERATIONS = 5000
HUGE = 50 * 1024 * 1024


@dataclass
class Target:
    public_url: str
    scim: str  # the hostile org's SCIM base URL
    token: str
    user_id: str  # the user its PATCHes hit


@dataclass
class Tally:
    """Answers by request class and status (or what happened instead)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: Counter[tuple[str, str]] = field(default_factory=Counter)
    rounds: int = 0
    longest_s: float = 0.0

    last: str = ""

    def record(self, what: str, status: object, started: float) -> None:
        with self.lock:
            self.last = str(status)
            self.answers[(what, str(status))] += 1
            self.longest_s = max(self.longest_s, time.monotonic() - started)

    def by_status(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for (_, status), n in self.answers.items():
            out[status] += n
        return out

    def expensive_accepted(self) -> int:
        """Expensive requests answered 2xx (the flood's cheap GETs are answered until the limit bites)."""
        return sum(n for (what, s), n in self.answers.items() if what != "flood" and s.isdigit() and int(s) < 300)


def setup(settings: Settings, engine: Engine) -> Target:
    """The hostile org, with one user for its PATCHes (created while nothing fails yet)."""
    org, token = org_service.create(engine, f"chaos-hostile-{uuid.uuid4().hex[:6]}")
    scim = f"{settings.public_url}/scim/{org.slug}/v2"
    body = {"schemas": [USER], "userName": f"target@{org.slug}.test", "active": True}
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    for _ in range(20):
        try:
            r = httpx.post(f"{scim}/Users", json=body, headers=headers, timeout=10)
            if r.status_code == 201:
                return Target(settings.public_url, scim, token, r.json()["id"])
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError("could not create the hostile org's user")


def _client(t: Target) -> httpx.AsyncClient:
    headers = {"Content-Type": "application/scim+json", "Authorization": f"Bearer {t.token}"}
    return httpx.AsyncClient(base_url=t.scim, headers=headers, timeout=TIMEOUT, limits=httpx.Limits(max_connections=16))


async def _guard(tally: Tally, what: str, call) -> None:
    started = time.monotonic()
    try:
        status = await call()
    except (httpx.HTTPError, OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
        status = "closed" if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, ConnectionError,
                                               asyncio.IncompleteReadError)) else type(exc).__name__
    tally.record(what, status, started)


async def _raw(t: Target, head: bytes, wait: float) -> str:
    """Send a request head (and no more) and return the status the server answers within `wait` s."""
    parts = urlsplit(t.public_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(head)
        await writer.drain()
        try:
            line = await asyncio.wait_for(reader.readline(), wait)
        except TimeoutError:
            return "open at end"
        return line.split()[1].decode() if line.startswith(b"HTTP/1.") and len(line.split()) > 1 else "closed"
    finally:
        writer.close()


async def _round(t: Target, tally: Tally, rng: random.Random) -> None:
    deadline = time.monotonic() + ROUND
    path = urlsplit(t.scim).path
    search = {"schemas": [SEARCH], "attributes": [f"urn:x:made:up:attr{i}" for i in range(ATTRIBUTES)], "count": 1}
    patch = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": f"t{i}"}
                                                for i in range(OPERATIONS)]}
    auth = f"Authorization: Bearer {t.token}\r\n"
    declared = (f"POST {path}/Users HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/scim+json\r\n"
                f"Content-Length: {HUGE}\r\n\r\n").encode()
    loris = f"GET {path}/Users HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}X-Slow: 1\r\n".encode()  # headers never end

    async with _client(t) as client:
        async def status(request) -> str:
            return str((await request).status_code)

        async def flood() -> None:
            while time.monotonic() < deadline - ROUND / 2:
                await _guard(tally, "flood", lambda: status(client.get("/Users", params={"count": 1})))
                if tally.last != "200":  # ingest is down or refusing: do not spin
                    await asyncio.sleep(0.2)

        jobs = [_guard(tally, "search", lambda: status(client.post("/.search", json=search))) for _ in range(2)]
        jobs += [_guard(tally, "patch 5000 ops", lambda: status(client.patch(f"/Users/{t.user_id}", json=patch)))
                 for _ in range(2)]
        jobs += [_guard(tally, "declared 50 MB", lambda: _raw(t, declared, ROUND - 1)) for _ in range(2)]
        jobs += [_guard(tally, "slow loris", lambda: _raw(t, loris, ROUND - 1)) for _ in range(6)]
        jobs += [flood() for _ in range(6)]
        rng.shuffle(jobs)
        tasks = [asyncio.ensure_future(j) for j in jobs]
        _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()) + TIMEOUT)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


class Attacker:
    """Rounds of hostile requests until `stop` is set (one thread, one event loop per round)."""

    def __init__(self, target: Target, stop: threading.Event, rng: random.Random):
        self.target, self.stop, self.rng = target, stop, rng
        self.tally = Tally()

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                asyncio.run(_round(self.target, self.tally, self.rng))
            except Exception as exc:  # noqa: BLE001 - an attacker's own failure must not stop the run
                self.tally.record("attacker", type(exc).__name__, started)
            self.tally.rounds += 1
            self.stop.wait(max(0.0, PERIOD - (time.monotonic() - started)))
