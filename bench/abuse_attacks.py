"""The hostile org's request classes for `make abuse`: each a small async function, registered by
name in ATTACKS, that keeps a bounded number of requests going until the deadline and tallies
every answer. Add a class by writing one more `@attack(...)` function."""

import asyncio
import contextlib
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

TIMEOUT = 20.0  # a hostile client gives up after this; the server may go on (what the report looks for)
HUGE = 50 * 1024 * 1024
CHUNKED = 20 * 1024 * 1024
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@dataclass
class Target:
    """What the hostile org holds: its URLs and credentials, its users, the slow IdP, loopback ports to probe."""

    public_url: str
    slug: str
    scim: str
    token: str
    admin_token: str
    flood_scim: str
    flood_token: str
    big_user: str
    small_user: str
    probe_ports: dict[str, int]


@dataclass
class Tally:
    """The answers one class got: status (or what happened instead) counts and the longest wait."""

    statuses: Counter[str] = field(default_factory=Counter)
    longest_s: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)

    def record(self, status: object, started: float) -> None:
        self.statuses[str(status)] += 1
        self.longest_s = max(self.longest_s, time.monotonic() - started)


Attack = Callable[[Target, Tally, float], Awaitable[None]]
ATTACKS: dict[str, Attack] = {}


def attack(name: str) -> Callable[[Attack], Attack]:
    def register(fn: Attack) -> Attack:
        ATTACKS[name] = fn
        return fn

    return register


async def repeat(one: Callable[[int], Awaitable[object]], tally: Tally, deadline: float, *, concurrency: int,
                 total: int | None = None) -> None:
    """`concurrency` loops calling one(i) until the deadline (at most `total` calls); what is still
    waiting at the deadline is cancelled and counted as `unanswered at end`."""
    count = 0

    async def loop() -> None:
        nonlocal count
        while time.monotonic() < deadline and (total is None or count < total):
            count += 1
            started = time.monotonic()
            try:
                await one(count)
            except asyncio.CancelledError:
                tally.record("unanswered at end", started)
                raise
            except (httpx.HTTPError, OSError, asyncio.IncompleteReadError) as exc:
                tally.record(type(exc).__name__, started)
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(loop()) for _ in range(concurrency)]
    _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def _client(base: str, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Content-Type": "application/scim+json", **({"Authorization": f"Bearer {token}"} if token else {})}
    return httpx.AsyncClient(base_url=base, headers=headers, timeout=TIMEOUT, limits=httpx.Limits(max_connections=64))


async def _timed(tally: Tally, request: Awaitable[httpx.Response]) -> httpx.Response:
    started = time.monotonic()
    response = await request
    tally.record(response.status_code, started)
    return response


@attack("search_5000_attributes")
async def search_attributes(t: Target, tally: Tally, deadline: float) -> None:
    """POST /.search naming 5,000 made-up attributes (the issue's 900 s request), 4 at a time, 8 in all."""
    body = {"schemas": [SEARCH], "attributes": [f"urn:x:made:up:attr{i}" for i in range(5000)], "count": 1}
    async with _client(t.scim, t.token) as client:
        await repeat(lambda i: _timed(tally, client.post("/.search", json=body)), tally, deadline, concurrency=4, total=8)


@attack("user_10000_emails_get_sort")
async def big_user(t: Target, tally: Tally, deadline: float) -> None:
    """GET of the user with 10,000 emails, and GET /Users?sortBy=title&count=1, 2 at a time."""
    async with _client(t.scim, t.token) as client:
        async def one(i: int) -> None:
            if i % 2:
                await _timed(tally, client.get(f"/Users/{t.big_user}"))
            else:
                await _timed(tally, client.get("/Users", params={"sortBy": "title", "count": 1}))

        await repeat(one, tally, deadline, concurrency=2)


@attack("patch_5000_operations")
async def patch_operations(t: Target, tally: Tally, deadline: float) -> None:
    """PATCH with 5,000 operations on one user, 2 at a time, 20 in all."""
    body = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": f"t{i}"} for i in range(5000)]}
    async with _client(t.scim, t.token) as client:
        await repeat(lambda i: _timed(tally, client.patch(f"/Users/{t.small_user}", json=body)), tally, deadline,
                     concurrency=2, total=20)


async def _status(reader: asyncio.StreamReader) -> str:
    line = await reader.readline()
    match = re.match(rb"HTTP/1\.[01] (\d{3})", line)
    return match.group(1).decode() if match else "closed"


async def _open(t: Target) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(t.public_url)
    return await asyncio.open_connection(parts.hostname, parts.port)


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n").encode()


async def _send_until_answered(writer: asyncio.StreamWriter, answer: asyncio.Task[Any], total: int, *, chunked: bool) -> int:
    """Send up to `total` bytes of body (raw or as chunks) until the server answers; the bytes sent."""
    chunk, sent = b" " * 65536, 0
    with contextlib.suppress(OSError):  # the server may answer and close mid-body
        while sent < total and not answer.done():
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            await writer.drain()
            sent += len(chunk)
        if chunked and not answer.done():
            writer.write(b"0\r\n\r\n")
    return sent


@attack("declared_50mb_body")
async def declared_huge(t: Target, tally: Tally, deadline: float) -> None:
    """Content-Length 50 MB on the login API (no token) and on SCIM: answered from the headers
    alone within 2 s, or the body is sent (as the issue's client did) and the answer awaited."""
    tally.notes.setdefault("answered_before_body", 0)

    async def one(i: int) -> None:
        path, auth = (("/internal/v1/logins", {}) if i % 2 else
                      (urlsplit(t.scim).path + "/Users", {"Authorization": f"Bearer {t.token}"}))
        started = time.monotonic()
        reader, writer = await _open(t)
        try:
            writer.write(_head("POST", path, {"Content-Type": "application/json", "Content-Length": str(HUGE), **auth}))
            await writer.drain()
            answer = asyncio.create_task(_status(reader))
            done, _ = await asyncio.wait([answer], timeout=2.0)
            if done:
                tally.notes["answered_before_body"] += 1
            else:
                await _send_until_answered(writer, answer, HUGE, chunked=False)
            tally.record(await asyncio.wait_for(answer, TIMEOUT), started)
        finally:
            writer.close()

    await repeat(one, tally, deadline, concurrency=2, total=6)


@attack("chunked_20mb_body")
async def chunked(t: Target, tally: Tally, deadline: float) -> None:
    """A chunked POST /Users of up to 20 MB: how much the server reads before it answers."""
    sent_mb: list[float] = tally.notes.setdefault("mb_sent_before_answer", [])

    async def one(i: int) -> None:
        started = time.monotonic()
        reader, writer = await _open(t)
        try:
            headers = {"Content-Type": "application/scim+json", "Transfer-Encoding": "chunked",
                       "Authorization": f"Bearer {t.token}"}
            writer.write(_head("POST", urlsplit(t.scim).path + "/Users", headers))
            answer = asyncio.create_task(_status(reader))
            sent = await _send_until_answered(writer, answer, CHUNKED, chunked=True)
            sent_mb.append(round(sent / 1048576, 1))
            tally.record(await asyncio.wait_for(answer, TIMEOUT), started)
        finally:
            writer.close()

    await repeat(one, tally, deadline, concurrency=1, total=4)


@attack("slow_loris")
async def slow_loris(t: Target, tally: Tally, deadline: float) -> None:
    """20 connections that never finish their headers, 20 that never finish their body (a byte every
    5 s): how long the server keeps each open (`open at end` when it never closed them)."""

    async def one(i: int) -> None:
        started = time.monotonic()
        reader, writer = await _open(t)
        try:
            if i % 2:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            else:
                headers = {"Content-Type": "application/scim+json", "Content-Length": "1000",
                           "Authorization": f"Bearer {t.token}"}
                writer.write(_head("POST", urlsplit(t.scim).path + "/Users", headers) + b'{"schemas":')
            answer = asyncio.create_task(_status(reader))
            while time.monotonic() < deadline - 0.5 and not answer.done():
                await asyncio.wait([answer], timeout=max(0.0, min(5.0, deadline - 0.5 - time.monotonic())))
                if not answer.done():
                    try:
                        writer.write(b"X-Slow: 1\r\n" if i % 2 else b" ")
                        await writer.drain()
                    except OSError:  # closed by the server: the answer (or the reset) says how
                        await asyncio.wait([answer], timeout=1.0)
                        break
            status = (answer.result() if not answer.exception() else "reset") if answer.done() else "open at end"
            tally.record(f"{'headers' if i % 2 else 'body'}: {status}", started)
            answer.cancel()
        finally:
            writer.close()

    await repeat(one, tally, deadline, concurrency=40, total=40)


@attack("flood_over_rate_limit")
async def flood(t: Target, tally: Tally, deadline: float) -> None:
    """GET /Users?count=1 from 16 concurrent loops, far over the rate limit (the same attacker's second
    org, so its 429s do not also throttle the expensive classes above)."""
    async with _client(t.flood_scim, t.flood_token) as client:
        await repeat(lambda i: _timed(tally, client.get("/Users", params={"count": 1})), tally, deadline, concurrency=16)


@attack("oidc_callback_slow_idp")
async def oidc_slow(t: Target, tally: Tally, deadline: float) -> None:
    """45 concurrent sign-ins: login (state + browser cookie), then the callback, whose token
    exchange hits the org's IdP that waits 8 s."""
    base = f"/sso/{t.slug}/oidc"

    async def one(i: int) -> None:
        async with httpx.AsyncClient(base_url=t.public_url, timeout=TIMEOUT) as browser:
            login = await browser.get(f"{base}/login")
            state = parse_qs(urlsplit(login.headers.get("location", "")).query).get("state", [""])[0]
            if login.status_code != 302 or not state:
                tally.record(f"login {login.status_code}", time.monotonic())
                return
            await _timed(tally, browser.get(f"{base}/callback", params={"code": f"c{i}", "state": state}))

    await repeat(one, tally, deadline, concurrency=45)


@attack("saml_metadata_loopback")
async def saml_ports(t: Target, tally: Tally, deadline: float) -> None:
    """PUT the SAML metadata_url at loopback ports (closed, PostgreSQL, Kafka, the slow IdP, ingest
    itself), 2 at a time; notes the distinct error messages (one message for every port is the goal)."""
    ports = list(t.probe_ports.items())
    messages: dict[str, str] = tally.notes.setdefault("message_by_port", {})
    async with _client(t.public_url + "/admin/v1", t.admin_token) as client:
        async def one(i: int) -> None:
            name, port = ports[i % len(ports)]
            url = f"http://127.0.0.1:{port}/saml/metadata"
            response = await _timed(tally, client.put("/org/sso/saml", json={"metadata_url": url}))
            try:
                detail = str(response.json().get("detail", ""))
            except ValueError:
                detail = response.text[:200]
            if response.status_code != 503:  # a 503 is the org's IdP call budget being full, whatever the port
                messages[name] = detail.replace(url, "<url>")[:300]

        await repeat(one, tally, deadline, concurrency=2)
