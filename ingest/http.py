"""The HTTP edge every ingest surface shares: body limits and read timeouts, the JSON problem body, 503 while
PostgreSQL is down, bearer tokens and request ids. Each rule is written here once."""

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping

import orjson
from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.tables import orgs
from domain import service_tokens
from domain.postgres import NeedsTransaction, SqlUnitOfWork
from ingest.token_cache import TokenCache

# -- the problem body ------------------------------------------------------------------------


def problem(status: int, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The error body of the internal and admin APIs: `{"status": int, "detail": str}`, with `status`
    as the HTTP status; the detail never carries a library's internals (see `public_detail`)."""
    return JSONResponse({"status": status, "detail": public_detail(detail)}, status_code=status, headers=headers)


# what a pydantic ValidationError's text adds around its messages: "2 validation errors for Model",
# "[type=..., input_value=..., input_type=...]" and a "For further information visit" link
_VALIDATION_HEADER = re.compile(r"\b\d+ validation errors? for [A-Za-z_][\w.]*")
_VALIDATION_TAG = re.compile(r"\s*\[type=[^\]]*\]")
_FURTHER_INFORMATION = re.compile(r"\s*For further information visit \S+")


def public_detail(detail: str) -> str:
    """An error detail as a caller may see it: one line, a ValidationError's text reduced to
    `field: message` parts, without pydantic's model names, error types, echoed input or links."""
    if not _VALIDATION_HEADER.search(detail) and "errors.pydantic.dev" not in detail:
        return detail
    text = _FURTHER_INFORMATION.sub("", _VALIDATION_TAG.sub("", _VALIDATION_HEADER.sub("", detail)))
    # what is left is "field\n  message" per error: "field: message; ..."
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    parts, field = [], ""
    for line in lines:
        if field:
            parts.append(f"{field}: {line}")
            field = ""
        elif " " not in line:
            field = line
        else:
            parts.append(line)
    parts += [field] if field else []
    # a caller's own prefix ("could not read it:") runs on into the first error
    joined = "".join(part + (" " if part.endswith(":") else "; ") for part in parts).removesuffix("; ").strip()
    return joined or "the request is not valid"


# -- PostgreSQL unavailable ------------------------------------------------------------------

# PostgreSQL restarting, failing over or unreachable (or a deadlock lost): nothing was committed,
# so the caller may simply retry; a 503 with Retry-After says so, where a 500 reads as our bug
DATABASE_DOWN: tuple[type[DBAPIError], ...] = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 5


def unavailable(detail: str) -> JSONResponse:
    """503 + `Retry-After`: the problem body to answer when one of `DATABASE_DOWN` was raised."""
    return problem(503, detail, {"Retry-After": str(RETRY_AFTER_SECONDS)})


# -- bodies ----------------------------------------------------------------------------------

INTERNAL_MAX_BODY_BYTES = 16 * 1024  # the internal API's largest body (`service_endpoint`'s default); routes may take less


class BodyTooLarge(Exception):
    """A request body over its limit (413). `received` holds what was read before stopping
    (at most the limit plus one chunk; empty when Content-Length alone gave it away)."""

    def __init__(self, limit: int, received: bytes = b""):
        super().__init__(f"the body exceeds {limit} bytes")
        self.limit = limit
        self.received = received


def announced_too_large(content_length: str | bytes | None, limit: int) -> bool:
    """A Content-Length over `limit`, or not a number: refused before any of the body is read."""
    if content_length is None:
        return False
    value = content_length.decode("latin-1") if isinstance(content_length, bytes) else content_length
    return not (value.isascii() and value.isdigit()) or int(value) > limit


async def read_body(request: Request, limit: int, *, refuse_announced: bool = True) -> bytes:
    """The request body, read as it streams; raises `BodyTooLarge` as soon as it passes `limit`
    bytes, leaving the rest unread (never buffered). With `refuse_announced`, a Content-Length over
    the limit is refused before reading anything. Catch `BodyTooLarge` and answer 413, e.g.
    `problem(413, str(exc))`."""
    if refuse_announced and announced_too_large(request.headers.get("content-length"), limit):
        raise BodyTooLarge(limit)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise BodyTooLarge(limit, bytes(body))
    return bytes(body)


class LimitBody:
    """ASGI middleware (e.g. `app.add_middleware(LimitBody, limit=...)`): a problem 413 for a body
    over `limit` bytes, announced or streamed, before the app reads any of it. The app then reads
    the body from memory, so it suits small limits."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = problem(413, str(BodyTooLarge(self.limit)))
        if announced_too_large(dict(scope["headers"]).get(b"content-length"), self.limit):
            await too_large(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away; let the app see the disconnect
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                await too_large(scope, receive, send)
                return
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


# -- the edge: body size and read time, before any route ------------------------------------

_SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def refusal(path: str, status: int, detail: str) -> JSONResponse:
    """The edge's own refusal (413, 408), in the shape of the surface asked: a SCIM Error under
    `/scim/`, the problem body elsewhere. It closes the connection: the rest of the body is never read."""
    headers = {"Connection": "close"}
    if path.startswith("/scim/"):
        body = {"schemas": [_SCIM_ERROR], "status": str(status), "detail": detail}
        return JSONResponse(body, status_code=status, headers=headers, media_type="application/scim+json")
    return problem(status, detail, headers)


class EdgeLimits:
    """ASGI middleware in front of every route, before authentication: a body over its route's
    limit is 413 before it is read (a Content-Length over it at once, a streamed body as soon as it
    passes it), and a body not complete `body_timeout` seconds after its head is 408. `limits` maps
    path prefixes to byte limits (the longest prefix wins; `default` for the rest), `body_timeouts`
    prefixes to shorter timeouts. After a refusal the app sees a disconnect and whatever it sends is
    dropped."""

    def __init__(self, app: ASGIApp, *, limits: Mapping[str, int], default: int, body_timeout: float,
                 body_timeouts: Mapping[str, float] | None = None):
        self.app, self.default, self.body_timeout = app, default, body_timeout
        self.limits = sorted(limits.items(), key=lambda item: -len(item[0]))
        self.timeouts = sorted((body_timeouts or {}).items(), key=lambda item: -len(item[0]))

    def limit_for(self, path: str) -> int:
        """The byte limit of a request path."""
        return next((limit for prefix, limit in self.limits if path.startswith(prefix)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        if announced_too_large(dict(scope["headers"]).get(b"content-length"), limit):
            await refusal(scope["path"], 413, str(BodyTooLarge(limit)))(scope, receive, send)
            return
        timeout = next((t for prefix, t in self.timeouts if scope["path"].startswith(prefix)), self.body_timeout)
        guard = _GuardedBody(scope, receive, send, limit, timeout)
        try:
            await self.app(scope, guard.receive, guard.send)
        except Exception:
            if not guard.refused:
                raise
            # the app failed on the body it was refused (a disconnect mid-read): the refusal stands


class _GuardedBody:
    """One request's body as `EdgeLimits` lets the app read it: counted, and timed until complete."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, limit: int, timeout: float):
        self.scope, self._receive, self._send, self.limit, self.timeout = scope, receive, send, limit, timeout
        self.deadline = asyncio.get_running_loop().time() + timeout
        self.received, self.complete, self.started, self.refused = 0, False, False, False

    async def receive(self) -> Message:
        if self.refused:
            return {"type": "http.disconnect"}
        if self.complete:
            return await self._receive()  # the body is in; what follows is only a disconnect
        try:
            remaining = max(0.0, self.deadline - asyncio.get_running_loop().time())
            message = await asyncio.wait_for(self._receive(), remaining)
        except TimeoutError:
            return await self._refuse(408, f"the body did not arrive within {self.timeout:g} seconds")
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                return await self._refuse(413, str(BodyTooLarge(self.limit)))
            self.complete = not message.get("more_body", False)
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return  # the refusal was the answer
        self.started = self.started or message["type"] == "http.response.start"
        await self._send(message)

    async def _refuse(self, status: int, detail: str) -> Message:
        if not self.started:
            await refusal(self.scope["path"], status, detail)(self.scope, self._receive, self._send)
        self.refused = True
        return {"type": "http.disconnect"}


# -- credentials and request ids -------------------------------------------------------------


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header (scheme in any case, token trimmed);
    "" when the header is missing or of another scheme."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def request_id(offered: str | None) -> str:
    """The caller's `X-Request-Id` when it is a plain short token (at most 64 of `A-Za-z0-9._:-`),
    else a fresh one, so a logged or echoed id can never carry markup or line breaks."""
    return offered if offered and _REQUEST_ID.match(offered) else uuid.uuid4().hex


ServiceHandler = Callable[[SqlUnitOfWork, bytes], Response]
# the org a service request acts for, as an org id (None: the route acts for no org, e.g. an account)
OrgOf = Callable[[SqlUnitOfWork, bytes], str | None]


def org_named_in_body(uow: SqlUnitOfWork, body: bytes) -> str | None:
    """The org of a request whose JSON body names it by slug in `org` (as `POST /internal/v1/logins` does);
    an unknown slug is returned as given, so it matches no token's scope."""
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
    slug = data.get("org") if isinstance(data, dict) else None
    if not isinstance(slug, str):
        return None
    found = uow.conn.execute(select(orgs.c.id).where(orgs.c.slug == slug)).scalar()
    return str(found) if found else slug


def _unit_of_work(
    engine: Engine, topics: dict[str, str], autocommit: bool, work: Callable[[SqlUnitOfWork], Response]
) -> Response:
    """`work` in a transaction; with `autocommit`, in autocommit first, and again in a transaction
    if it raises `NeedsTransaction` (it has written nothing then)."""
    if autocommit:
        try:
            with SqlUnitOfWork.autocommit(engine, topics) as uow:
                return work(uow)
        except NeedsTransaction:
            pass
    with SqlUnitOfWork.begin(engine, topics) as uow:
        return work(uow)


def service_endpoint(
    engine: Engine,
    topics: dict[str, str],
    handle: ServiceHandler,
    *,
    max_body: int = 16 * 1024,
    org_of: OrgOf = org_named_in_body,
    callers: TokenCache[service_tokens.ServiceCaller] | None = None,
    autocommit: bool = False,
) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint of the internal API the app's backend calls: a streamed size limit, a live service
    token (403 when it is scoped to orgs and the request acts for another; verified tokens kept in
    `callers` for its seconds), then `handle` in one unit of work (503 while PostgreSQL is unavailable).
    With `autocommit`, the unit of work is in autocommit; a handler that raises `NeedsTransaction`
    is run again in a transaction."""

    def _caller(uow: SqlUnitOfWork, token: str) -> service_tokens.ServiceCaller | None:
        caller = callers.get(token) if callers is not None and token else None
        if caller is None and token:
            caller = service_tokens.authenticate(uow.conn, token)
            if caller is not None and callers is not None:
                callers.put(token, caller)
        return caller

    def _in(uow: SqlUnitOfWork, token: str, body: bytes) -> Response:
        caller = _caller(uow, token)
        if caller is None:
            return problem(401, "a valid service token is required")
        if caller.org_ids is not None:
            org_id = org_of(uow, body)
            if org_id is not None and not caller.may_act_for(org_id):
                return problem(403, "this service token is not allowed to act for that organisation")
        return handle(uow, body)

    def _serve(token: str, body: bytes) -> Response:
        try:
            return _unit_of_work(engine, topics, autocommit, lambda uow: _in(uow, token, body))
        except DATABASE_DOWN:
            return unavailable("the service cannot record this right now; retry after the delay in Retry-After")

    async def endpoint(request: Request) -> Response:
        try:
            # before the token is checked: an oversized body is refused without reading the rest
            body = await read_body(request, max_body)
        except BodyTooLarge as exc:
            return problem(413, str(exc))
        return await run_in_threadpool(_serve, bearer_token(request.headers.get("authorization")), body)

    return endpoint
