"""The HTTP edge every ingest surface shares: body limits, the JSON problem body, 503 while
PostgreSQL is down, bearer tokens and request ids. Each rule is written here once."""

import re
import uuid
from collections.abc import Awaitable, Callable, Mapping

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain import service_tokens
from domain.postgres import SqlUnitOfWork

# -- the problem body ------------------------------------------------------------------------


def problem(status: int, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The error body of the internal and admin APIs: `{"status": int, "detail": str}`, with `status` as the HTTP status."""
    return JSONResponse({"status": status, "detail": detail}, status_code=status, headers=headers)


# -- PostgreSQL unavailable ------------------------------------------------------------------

# PostgreSQL restarting, failing over or unreachable (or a deadlock lost): nothing was committed,
# so the caller may simply retry; a 503 with Retry-After says so, where a 500 reads as our bug
DATABASE_DOWN: tuple[type[DBAPIError], ...] = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 5


def unavailable(detail: str) -> JSONResponse:
    """503 + `Retry-After`: the problem body to answer when one of `DATABASE_DOWN` was raised."""
    return problem(503, detail, {"Retry-After": str(RETRY_AFTER_SECONDS)})


# -- bodies ----------------------------------------------------------------------------------


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


def service_endpoint(
    engine: Engine, topics: dict[str, str], handle: ServiceHandler, *, max_body: int = 16 * 1024
) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint of the internal API the app's backend calls: a streamed size limit, a service
    token, then `handle` in one unit of work (503 while PostgreSQL is unavailable)."""

    def _serve(token: str, body: bytes) -> Response:
        try:
            with SqlUnitOfWork.begin(engine, topics) as uow:
                if not token or service_tokens.authenticate(uow.conn, token) is None:
                    return problem(401, "a valid service token is required")
                return handle(uow, body)
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
