"""Route glue: an HTTP request on `/scim/{org}/v2/...` becomes a scim2-server request, served in
one PostgreSQL transaction with the org's storage, within the request's deadline and cost limits.

The org comes from the bearer token alone; a token of another org, an unknown org in the
path, or a disabled SCIM integration all get the same 401 (no oracle for org slugs).
"""

import asyncio
import logging
import sys
from typing import Any, cast
from urllib.parse import parse_qsl, quote

import orjson
from scim2_models import InvalidSyntaxException, PayloadTooLargeException, SCIMException, UnauthorizedException
from scim2_server.applications.base import BaseApplication
from scim2_server.handler import ScimHandler
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.routing import Operation
from scim2_server.storage import ScimStorage
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from core.settings import Settings
from domain import orgs
from domain.postgres import SqlUnitOfWork
from ingest import audit
from ingest.http import DATABASE_DOWN, BodyTooLarge, bearer_token, read_body, request_id
from ingest.rate_limit import org_rate_limiter
from ingest.scim import quirks
from ingest.scim.changes import OrgRef
from ingest.scim.cost import CostLimits
from ingest.scim.deadline import Deadline, DeadlineExceeded
from ingest.scim.fairness import CpuClock, OrgFairness
from ingest.scim.guards import Limits
from ingest.scim.lean import LeanReads
from ingest.scim.lean_create import LeanCreate
from ingest.scim.lean_patch import LeanMemberPatch
from ingest.scim.limits import RateLimitedException, UnavailableException
from ingest.scim.provider import build_service
from ingest.scim.storage import PgStorage
from ingest.token_cache import TokenCache

log = logging.getLogger("provisioner.scim")

_WRITES = {"POST", "PUT", "PATCH", "DELETE"}
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"
_RESOURCE_TYPES = {"Users": "User", "Groups": "Group"}


class ScimEndpoint:
    """An ASGI endpoint serving every org's SCIM root."""

    def __init__(self, settings: Settings, engine: Engine):
        self.settings = settings
        self.engine = engine
        self.service, self.models = build_service(settings)
        self.topics = settings.topics()
        self._tokens: TokenCache[orgs.Org] = TokenCache(settings.auth_cache_seconds)
        self._limiter = org_rate_limiter(settings)
        self._limits = Limits(settings.max_filter_length, settings.max_filter_depth)
        self._cost = CostLimits(
            settings.scim_max_attributes, settings.scim_max_values, settings.scim_max_members, settings.scim_max_operations
        )
        self._fairness = OrgFairness(
            settings.scim_max_in_flight_per_org, settings.scim_org_cpu_per_second, settings.scim_org_cpu_burst_seconds,
            on_contention=self._switch_interval,
        )
        self._delayed = 0  # refusals being held back now (the event loop's only: no lock)
        reads = LeanReads(self.service, self._cost, settings.max_results)
        self._lean = reads if settings.scim_lean_reads else None
        self._lean_create = LeanCreate(reads, self.topics) if settings.scim_lean_writes else None
        self._lean_patch = LeanMemberPatch(self.service, settings.scim_max_members) if settings.scim_lean_writes else None

    def _switch_interval(self, contended: bool) -> None:
        """Short interpreter turns while orgs share the process, Python's own while one org has it (a sync's throughput)."""
        settings = self.settings
        sys.setswitchinterval(settings.http_switch_interval_seconds if contended else settings.http_switch_interval_alone_seconds)

    async def handle(self, request: Request) -> Response:
        slug = request.path_params["org"]
        deadline = Deadline(self.settings.scim_request_deadline_seconds)  # reading the body counts too
        try:
            # streamed only (no Content-Length refusal): serve() answers the 413 as a SCIM Error,
            # after discovery, from the limit+1 bytes or so read before stopping
            body = await read_body(request, self.settings.max_body_bytes, refuse_announced=False)
        except BodyTooLarge as exc:
            body = exc.received
        scim_request = ScimRequest(
            method=request.method,
            base_url=orgs.scim_base_url(self.settings.public_url, slug),
            path=BaseApplication.split_path("/" + request.path_params.get("path", "")),
            query=dict(parse_qsl(request.url.query, keep_blank_values=True)),
            headers=list(request.headers.items()),
            body=body,
        )
        correlation_id = request_id(request.headers.get("x-request-id"))
        refused = self._refused_early(slug, request.headers.get("authorization"))
        if refused is not None:  # a known org over its limits: answered without a thread
            response = self._retry_later(refused, refused.retry_after)
        else:
            response = await run_in_threadpool(self.serve, slug, scim_request, correlation_id, deadline)
        if int(response.status) == 429:
            await self._hold_refusal()
        # header values are Latin-1: a path with other characters is sent percent-encoded (RFC 3986)
        response.headers.setdefault("Location", quote(scim_request.url, safe=_URL_SAFE))
        response.headers.setdefault("Cache-Control", "no-cache")
        response.headers["X-Request-Id"] = correlation_id
        content = b"" if response.body is None else orjson.dumps(response.body)
        return Response(content, status_code=int(response.status), headers=response.headers)

    def _refused_early(self, slug: str, authorization: str | None) -> RateLimitedException | None:
        """The refusal an org whose token was verified recently is due now, from memory alone."""
        token = bearer_token(authorization)
        org = self._tokens.get(token) if token else None
        if org is None or org.slug != slug or not org.scim_enabled:
            return None  # unknown here: serve() authenticates it
        refused = self._fairness.refusal(org.id) or self._limiter.refusal(org.id)
        if refused is not None:
            audit.attribute(org.id)
        return refused

    async def _hold_refusal(self) -> None:
        """Answer a refusal `scim_refusal_delay_seconds` late, a bounded number at once: a client
        that ignores Retry-After then gets about one answer per connection per delay."""
        if self._delayed >= self.settings.scim_refusal_delay_max or self.settings.scim_refusal_delay_seconds <= 0:
            return
        self._delayed += 1
        try:
            await asyncio.sleep(self.settings.scim_refusal_delay_seconds)
        finally:
            self._delayed -= 1

    def serve(self, slug: str, request: ScimRequest, correlation_id: str, deadline: Deadline | None = None) -> ScimResponse:
        deadline = deadline or Deadline(self.settings.scim_request_deadline_seconds)
        try:
            operation = self.service.match(request).operation
            if operation is Operation.service_provider_config:
                # scim2-server reads the storage's capability flags even for discovery: a stand-in that has only those
                return ScimHandler(self.service, cast(ScimStorage, _NoStorage())).handle(request)
            if len(request.body) > self.settings.max_body_bytes:
                raise PayloadTooLargeException(detail=f"the body exceeds {self.settings.max_body_bytes} bytes")
            deadline.check()  # waited for a thread past the deadline: the client has given up
            with self.engine.connect() as conn:
                org = self._authenticate(conn, slug, request)  # from memory, or one query under the session's timeout
                conn.commit()  # a token looked up ends its transaction here; the request's own starts below
                audit.attribute(org.id)
                self._fairness.enter(org.id)
                try:
                    with CpuClock() as cpu:
                        self._limiter.take(org.id)
                        return self._serve(org, request, correlation_id, deadline, conn)
                finally:
                    self._fairness.leave(org.id, cpu.seconds)
        except (RateLimitedException, DeadlineExceeded) as exc:
            return self._retry_later(exc, exc.retry_after)
        except SCIMException as exc:
            return self.service.error_response(exc)
        except DBAPIError as exc:
            if deadline.cancelled(exc):  # statement_timeout at work: PostgreSQL cancelled it, the transaction rolled back
                log.warning("SCIM request cancelled at its deadline", extra={"org": slug, "correlation_id": correlation_id})
                return self._retry_later(DeadlineExceeded(deadline.seconds), DeadlineExceeded.retry_after)
            if not isinstance(exc, DATABASE_DOWN):
                log.exception("SCIM request failed", extra={"org": slug, "correlation_id": correlation_id})
                return self.service.error_response(RuntimeError("internal error"))
            # PostgreSQL restarting or unreachable (or a deadlock lost): nothing was committed;
            # a 503 with Retry-After tells the IdP to come back, where a 500 reads as our bug
            log.warning(
                "SCIM request refused: database unavailable (%s)", type(exc.orig).__name__,
                extra={"org": slug, "correlation_id": correlation_id},
            )
            return self._retry_later(UnavailableException(), UnavailableException.retry_after)
        except Exception:
            log.exception("SCIM request failed", extra={"org": slug, "correlation_id": correlation_id})
            return self.service.error_response(RuntimeError("internal error"))

    def _serve(self, org: orgs.Org, request: ScimRequest, correlation_id: str, deadline: Deadline, conn: Any) -> ScimResponse:
        """The request of an authenticated org within its limits, in one transaction."""
        self._limits.check_query(request.query)
        self._cost.check_query(request.query)
        if request.method.upper() == "POST" and request.path.rstrip("/").endswith(".search"):
            self._limits.check_search_body(request.body)
            self._cost.check_search_body(_json_or_none(request.body))
        operations = self._normalise(request)
        storage = PgStorage(
            SqlUnitOfWork(conn, self.topics),
            OrgRef(org.id, org.slug, correlation_id),
            self.models,
            lock=request.method.upper() in _WRITES,
            deleting=request.method.upper() == "DELETE",
            repairing=request.method.upper() in ("PUT", "DELETE"),
            cost=self._cost,
            deadline=deadline,
            max_candidates=self.settings.scim_max_candidates,
            patch_work=(operations, self.settings.scim_max_patch_work),
            answer_body=not _answered_204(request),
        )
        lean = self._one_statement(request, org, storage, conn, deadline)
        if lean is not None:
            return lean
        with conn.begin():
            deadline.bound(conn)
            response = self._lean_patch.serve(request, storage, conn) if self._lean_patch else None
            if response is None:
                response = ScimHandler(self.service, storage).handle(request)
            audit.stage(conn, int(response.status), correlation_id)
        audit.committed()
        return response

    def _one_statement(
        self, request: ScimRequest, org: orgs.Org, storage: PgStorage, conn: Any, deadline: Deadline
    ) -> ScimResponse | None:
        """The lean answer (ingest/scim/lean.py, lean_create.py), or None. Each is one statement, so
        it runs in autocommit: no BEGIN, statement timeout or COMMIT of its own, one round trip."""
        if (self._lean is None and self._lean_create is None) or conn.in_transaction():
            return None
        # psycopg2's own switch (SQLAlchemy's isolation_level option costs ~0.1 ms each way): with
        # it, SQLAlchemy's BEGIN and COMMIT below send nothing and each statement commits itself
        driver = conn.connection.driver_connection
        driver.autocommit = True
        try:
            with conn.begin():
                response = self._lean.serve(request, org.id, conn) if self._lean else None
                if response is None and self._lean_create is not None:
                    response = self._lean_create.serve(request, storage, conn, deadline)
        finally:
            driver.autocommit = False
        return response

    def _retry_later(self, exc: Exception, seconds: int) -> ScimResponse:
        response = self.service.error_response(exc)
        response.headers["Retry-After"] = str(seconds)
        return response

    def _authenticate(self, conn: Any, slug: str, request: ScimRequest) -> orgs.Org:
        token = bearer_token(request.header("Authorization"))
        org = None
        if token:
            org = self._tokens.get(token)
            if org is None:
                org = orgs.authenticate(conn, token)
                conn.commit()
                if org is not None:
                    self._tokens.put(token, org)
        if org is None or org.slug != slug or not org.scim_enabled:
            raise UnauthorizedException(detail="a valid bearer token for this org is required")
        return org

    def _normalise(self, request: ScimRequest) -> int:
        """Let the documented shapes of real IdPs through (see ingest/scim/quirks.py); the number of
        PATCH operations that leaves (0 for any other request)."""
        if request.method.upper() not in ("POST", "PUT", "PATCH") or not request.body:
            return 0
        endpoint = request.path.strip("/").split("/")[0]
        resource_type = _RESOURCE_TYPES.get(endpoint)
        if resource_type is None:
            return 0
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            raise InvalidSyntaxException(detail="the body is not valid JSON") from None
        if request.method.upper() == "PATCH":
            self._limits.check_patch_body(body)
        self._cost.check_body(request.method, body)
        if not isinstance(body, dict):
            return 0
        normalised = quirks.normalize_body(resource_type, request.method.upper(), body)
        request.body = orjson.dumps(normalised)
        operations = next((v for k, v in normalised.items() if k.casefold() == "operations"), None)
        return len(operations) if request.method.upper() == "PATCH" and isinstance(operations, list) else 0


def _json_or_none(body: bytes) -> Any:
    """The parsed body, or None when it is not JSON (the service then says why)."""
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


class _NoStorage:
    """/ServiceProviderConfig needs no storage; any access would be a bug."""

    supports_cursors = True  # as the storages it stands for (the library checks the configuration against it)
    _search_takes_position = True
    _get_takes_response_parameters = True

    def operation(self) -> Any:
        raise RuntimeError("no storage for discovery")


def _answered_204(request: ScimRequest) -> bool:
    """A PATCH that asks for no attributes: answered 204 No Content, with the new ETag only."""
    asked = {k.casefold() for k in request.query}
    return request.method.upper() == "PATCH" and not asked & {"attributes", "excludedattributes"}

