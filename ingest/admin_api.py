"""The admin API an org's administrators call: `admin_api(settings, engine)`, mounted at `/admin/v1`.

The org comes from the admin token alone (`Authorization: Bearer adm_...`); SCIM and service
tokens are refused. Every rule lives in `core.admin` (and `core.orgs`, `core.members`, the SSO
modules): this module is request and response models, authentication, transactions and error
mapping. Endpoints are sync `def`s, so FastAPI runs their blocking database work in its
threadpool. Errors have one shape, `{"status": int, "detail": str}`; a body that does not match
its schema (or a query parameter out of its enumeration) is 422, a well-formed request the rules
refuse is 400, 403, 404 or 409, a body over 64 KiB is 413. `docs/admin-api.md` describes it.
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, model_validator
from sqlalchemy import Connection, Engine, select
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import admin, credentials, orgs, sso_config
from core.members import list_members
from core.settings import Settings
from core.tables import admin_tokens
from core.tables import orgs as orgs_table
from ingest import audit
from ingest.sso import oidc, saml

MAX_BODY_BYTES = 64 * 1024


# -- models ----------------------------------------------------------------------------------


class Problem(BaseModel):
    """Every error response."""

    status: int = Field(examples=[404])
    detail: str = Field(examples=["no such member in this organisation"])


class OrgSettings(BaseModel):
    manual_provisioning: bool = Field(description="Admins may add members by hand (POST /org/members).")
    sso_provisioning: bool = Field(description="A first SSO sign-in creates the member (just in time).")
    scim_enabled: bool = Field(description="The org's IdP may push users and groups over SCIM.")


class OrgOut(BaseModel):
    id: str
    slug: str
    name: str
    settings: OrgSettings
    scim_base_url: str | None = Field(None, description="Present only while SCIM is enabled.")


class SettingsChange(BaseModel):
    """The toggles to change; an omitted (or null) toggle keeps its value."""

    model_config = ConfigDict(extra="forbid")

    manual_provisioning: StrictBool | None = None
    sso_provisioning: StrictBool | None = None
    scim_enabled: StrictBool | None = None


class RotatedToken(BaseModel):
    scim_token: str = Field(description="The new SCIM bearer token. Shown once: it is stored only as a hash.")
    scim_base_url: str
    previous_tokens_valid_for_seconds: int = Field(description="How long the tokens issued before keep working.")


class Member(BaseModel):
    id: str
    email: str | None
    user_name: str | None
    display_name: str | None
    status: Literal["provisioned", "active", "deactivated", "conflict", "removed"] = Field(
        description="`conflict` while an email conflict is open, whatever the lifecycle status."
    )
    lifecycle_status: Literal["provisioned", "active", "deactivated", "removed"]
    error: str | None = Field(description="Why the member is in conflict, and what to do; null otherwise.")
    account_id: str | None = Field(description="The SaaS account this member is, once acquired.")
    source: str = Field(description="How the member arrived: `scim`, `sso` or `manual`.")
    scim_user_id: str | None
    first_login_at: datetime | None
    created_at: datetime
    updated_at: datetime


class NewMember(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320, examples=["ann@example.com"])
    display_name: str | None = Field(None, max_length=256, examples=["Ann Example"])


class AddedMember(BaseModel):
    event_id: str = Field(description="The `member.manually_added` event; the member appears once it is applied.")
    email: str


class Activity(BaseModel):
    event_id: str
    type: str = Field(description="The CloudEvents type of what arrived, e.g. `io.provisioner.login.succeeded`.")
    source: str = Field(description="Where it came from: `scim`, `sso`, `app` or `manual`.")
    summary: dict[str, Any]
    at: datetime


class Conflict(BaseModel):
    id: str
    member_id: str
    account_id: str
    email: str | None
    status: Literal["open", "acquired", "dismissed"]
    error: str
    created_at: datetime
    resolved_at: datetime | None


class Resolution(BaseModel):
    id: str
    status: Literal["acquired", "dismissed"]
    member_id: str
    account_id: str


class OidcConnection(BaseModel):
    configured: bool
    issuer: str | None = None
    client_id: str | None = None
    login_url: str = Field(description="Where members start an OIDC sign-in.")
    redirect_uri: str = Field(description="The redirect URI to register at the OpenID Provider.")


class SamlConnection(BaseModel):
    configured: bool
    idp_entity_id: str | None = None
    idp_sso_url: str | None = None
    idp_metadata_url: str | None = Field(None, description="The IdP metadata URL, when configured from one.")
    login_url: str = Field(description="Where members start a SAML sign-in (SP-initiated).")
    acs_url: str = Field(description="Assertion Consumer Service URL to give the IdP.")
    entity_id: str = Field(description="Our service provider's entity id (audience).")
    metadata_url: str = Field(description="Our service provider metadata, to upload to the IdP.")


class SsoOut(BaseModel):
    """Never includes the OIDC client secret."""

    sso_provisioning: bool
    oidc: OidcConnection
    saml: SamlConnection


class OidcConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    issuer: str = Field(max_length=2048, examples=["https://idp.example.com"])
    client_id: str = Field(min_length=1, max_length=1024)
    client_secret: str = Field(min_length=1, max_length=4096, json_schema_extra={"writeOnly": True})


class OidcConfigured(BaseModel):
    login_url: str
    redirect_uri: str
    issuer: str


class SamlConfig(BaseModel):
    """Exactly one of `metadata_xml` (the IdP metadata document) and `metadata_url` (https)."""

    model_config = ConfigDict(extra="forbid")

    metadata_xml: str | None = None
    metadata_url: str | None = Field(None, max_length=2048, examples=["https://idp.example.com/saml/metadata"])

    @model_validator(mode="after")
    def _exactly_one(self) -> "SamlConfig":
        if bool(self.metadata_xml) == bool(self.metadata_url):
            raise ValueError("give exactly one of metadata_xml and metadata_url")
        return self


class SamlConfigured(BaseModel):
    login_url: str
    acs_url: str
    entity_id: str
    metadata_url: str


class AuditEntry(BaseModel):
    """One SCIM request made with this organisation's credential. Bodies are never kept."""

    id: int
    at: datetime = Field(description="When the request arrived.")
    method: str
    path: str = Field(examples=["/scim/acme/v2/Users/0b1e..."])
    query: str | None = Field(
        description="The query string with values that may hold personal data replaced by `?` "
        '(filter values always, e.g. `filter=userName eq "?"`).'
    )
    status: int = Field(description="The HTTP status answered.")
    duration_ms: float
    user_agent: str | None
    request_id: str = Field(description="The `X-Request-Id` of the response (the IdP's own, when it sent one).")
    client_address: str | None


class AuditPage(BaseModel):
    entries: list[AuditEntry] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` to get older entries; null on the last page.")


# -- errors ----------------------------------------------------------------------------------


def _problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"status": status, "detail": detail}, status_code=status, headers=headers)


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "request"


def _readable(exc: RequestValidationError) -> str:
    """One line per problem, e.g. `body.email: Field required`, `query.status: Input should be ...`."""
    lines = []
    for error in exc.errors()[:10]:
        if error.get("type") == "json_invalid":
            lines.append("body: not valid JSON")
        elif error.get("type") == "extra_forbidden":
            lines.append(f"{_where(error['loc'])}: unknown field")
        else:
            message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
            lines.append(f"{_where(error['loc'])}: {message}")
    return "; ".join(dict.fromkeys(lines)) or "the request is not valid"


_DESCRIBED = {
    400: "Refused by the rules (the detail says which)",
    401: "No admin token, or not a valid one",
    403: "Not allowed by the organisation's settings",
    404: "No such resource in this organisation",
    409: "Conflicts with the current state",
    413: "Body over 64 KiB",
    422: "The body or a parameter does not match its schema",
}


def _utc(value: datetime | None, name: str) -> datetime | None:
    """A time in UTC: PostgreSQL takes offsets up to 15:59 only, ISO 8601 up to 23:59."""
    try:
        return value.astimezone(UTC) if value is not None else None
    except OverflowError:
        raise admin.AdminError(422, f"query.{name}: out of range") from None


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error responses a route documents (401 on all of them)."""
    return {s: {"model": Problem, "description": _DESCRIBED[s]} for s in sorted({401, *statuses})}


ERRORS = _errors()
WITH_QUERY = _errors(422)
WITH_BODY = (413, 422)


class _LimitBody:
    """413 for a body over `limit` bytes, announced or streamed, before the app reads any of it."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = _problem(413, f"the body exceeds {self.limit} bytes")
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
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


# -- authentication --------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """The org an admin token belongs to, and the actor recorded in its events."""

    org: orgs.Org
    actor: str


_bearer = HTTPBearer(auto_error=False, bearerFormat="adm_...", description="An org admin token.")


class _Unauthorized(Exception):
    pass


def admin_api(settings: Settings, engine: Engine) -> FastAPI:
    app = FastAPI(
        title="Provisioner admin API",
        version="1",
        description="What an organisation's administrators do: settings, SCIM token, members, email conflicts, SSO. "
        "The organisation is the admin token's.",
        openapi_url="/openapi.json",
        servers=[{"url": "/admin/v1", "description": "mounted under the ingest server"}],
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        generate_unique_id_function=lambda route: route.name,
    )
    topics = settings.topics()

    @app.exception_handler(admin.AdminError)
    async def _admin_error(_: Request, exc: admin.AdminError) -> JSONResponse:
        return _problem(exc.status, str(exc))

    @app.exception_handler(_Unauthorized)
    async def _unauthorized(_: Request, exc: _Unauthorized) -> JSONResponse:
        return _problem(401, "an admin token is required (Authorization: Bearer adm_...)", {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _problem(422, _readable(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, UnicodeDecodeError):  # FastAPI's 400 for a JSON body that is not UTF-8
            return _problem(422, "body: not valid JSON (not UTF-8)")
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        return _problem(exc.status_code, detail, getattr(exc, "headers", None))

    app.add_middleware(_LimitBody, limit=MAX_BODY_BYTES)

    def caller(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Caller:
        token = creds.credentials.strip() if creds else ""
        if not token.startswith("adm_") or len(token) > 256:
            raise _Unauthorized()
        with engine.connect() as conn:
            org = admin.authenticate(conn, token)
            if org is None:
                raise _Unauthorized()
            name = conn.execute(
                select(admin_tokens.c.name).where(admin_tokens.c.token_hash == credentials.token_hash(token))
            ).scalar()
        return Caller(org=org, actor=f"admin-api:{name or 'admin'}")

    Admin = Annotated[Caller, Depends(caller)]

    @contextmanager
    def transaction(who: Caller, *, lock: bool = False) -> Iterator[tuple[Connection, orgs.Org]]:
        """A transaction with the org as it is now (its row locked when `lock`)."""
        with engine.begin() as conn:
            query = select(orgs_table).where(orgs_table.c.id == who.org.id)
            row = conn.execute(query.with_for_update() if lock else query).first()
            if row is None:
                raise _Unauthorized()  # the org was deleted since the token was checked
            yield conn, orgs.Org.of(row)

    def org_out(org: orgs.Org) -> OrgOut:
        return OrgOut(
            id=org.id, slug=org.slug, name=org.name, settings=OrgSettings(**admin.settings_of(org)),
            scim_base_url=orgs.scim_base_url(settings.public_url, org.slug) if org.scim_enabled else None,
        )

    def known_id(value: str, what: str) -> str:
        """Ids are UUIDs; anything else names nothing here (404, never a database error)."""
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise admin.AdminError(404, f"no such {what} in this organisation") from None

    # -- org and settings ----------------------------------------------------------------------

    @app.get("/org", response_model=OrgOut, response_model_exclude_none=True, responses=ERRORS, tags=["org"])
    def get_org(who: Admin) -> OrgOut:
        """The admin token's organisation and its provisioning settings."""
        with transaction(who) as (_, org):
            return org_out(org)

    @app.patch("/org/settings", response_model=OrgSettings, responses=_errors(*WITH_BODY), tags=["org"])
    def change_settings(change: SettingsChange, who: Admin) -> OrgSettings:
        """Change provisioning toggles; an `org.settings.changed` event records before and after."""
        with transaction(who, lock=True) as (conn, org):
            org = admin.change_settings(conn, org, topics, who.actor, **change.model_dump())
            return OrgSettings(**admin.settings_of(org))

    @app.post("/org/scim-token/rotate", response_model=RotatedToken, responses=ERRORS, tags=["org"])
    def rotate_scim_token(who: Admin) -> RotatedToken:
        """Issue a new SCIM token; tokens issued before keep working for the overlap, then stop."""
        token = orgs.rotate_token(engine, who.org.slug, settings.token_overlap_seconds)
        return RotatedToken(
            scim_token=token, scim_base_url=orgs.scim_base_url(settings.public_url, who.org.slug),
            previous_tokens_valid_for_seconds=settings.token_overlap_seconds,
        )

    # -- members -------------------------------------------------------------------------------

    @app.get("/org/members", response_model=list[Member], responses=WITH_QUERY, tags=["members"])
    def get_members(
        who: Admin,
        status: Annotated[
            Literal["provisioned", "active", "deactivated", "conflict", "removed"] | None,
            Query(description="Only members with this status; without it, every member but the removed ones."),
        ] = None,
    ) -> list[Member]:
        with transaction(who) as (conn, org):
            return [Member(**m) for m in list_members(conn, org.id, status=status)]

    @app.post(
        "/org/members", status_code=202, response_model=AddedMember, responses=_errors(400, 403, 409, *WITH_BODY), tags=["members"]
    )
    def add_member(new: NewMember, who: Admin) -> AddedMember:
        """Add a person by hand (while `manual_provisioning` is on). Accepted: the member appears
        with source `manual` once the membership worker applies the event."""
        with transaction(who) as (conn, org):
            event_id = admin.add_member(conn, org, topics, who.actor, new.email, new.display_name)
        return AddedMember(event_id=event_id, email=new.email.strip())

    @app.get("/org/members/{member_id}/activity", response_model=list[Activity], responses=_errors(404, 422), tags=["members"])
    def member_activity(member_id: str, who: Admin) -> list[Activity]:
        """The member's recent provisioning activity, newest first (at most 50 entries)."""
        member_id = known_id(member_id, "member")
        with transaction(who) as (conn, org):
            return [Activity(**a) for a in admin.member_activity_of(conn, org, member_id)]

    # -- conflicts -----------------------------------------------------------------------------

    @app.get("/org/conflicts", response_model=list[Conflict], responses=WITH_QUERY, tags=["conflicts"])
    def get_conflicts(
        who: Admin, status: Annotated[Literal["open", "acquired", "dismissed", "all"], Query()] = "open"
    ) -> list[Conflict]:
        """Email conflicts: a member whose email is an account outside this organisation."""
        with transaction(who) as (conn, org):
            return [Conflict(**c) for c in admin.list_conflicts(conn, org, None if status == "all" else status)]

    def resolve(conflict_id: str, who: Caller, *, acquire: bool) -> Resolution:
        key = known_id(conflict_id, "open conflict")
        with transaction(who) as (conn, org):
            return Resolution(**admin.resolve(conn, org, topics, who.actor, key, acquire=acquire))

    @app.post("/org/conflicts/{conflict_id}/acquire", response_model=Resolution, responses=_errors(404, 422), tags=["conflicts"])
    def acquire_conflict(conflict_id: str, who: Admin) -> Resolution:
        """Acquire the existing account into this organisation: it becomes the member."""
        return resolve(conflict_id, who, acquire=True)

    @app.post("/org/conflicts/{conflict_id}/dismiss", response_model=Resolution, responses=_errors(404, 422), tags=["conflicts"])
    def dismiss_conflict(conflict_id: str, who: Admin) -> Resolution:
        """Dismiss the conflict: the member stays, unlinked from the account."""
        return resolve(conflict_id, who, acquire=False)

    # -- SCIM audit trail ----------------------------------------------------------------------

    @app.get("/org/scim-audit", response_model=AuditPage, responses=WITH_QUERY, tags=["audit"])
    def get_scim_audit(
        who: Admin,
        limit: Annotated[int, Query(ge=1, le=500, description="Entries per page.")] = 100,
        cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page.")] = None,
        status: Annotated[
            str | None, Query(pattern=r"^[1-5](\d\d|xx)$", description="A status (`409`) or a class (`4xx`).")
        ] = None,
        method: Annotated[Literal["GET", "POST", "PUT", "PATCH", "DELETE"] | None, Query()] = None,
        since: Annotated[AwareDatetime | None, Query(description="Entries at or after this time (ISO 8601 with offset).")] = None,
        until: Annotated[AwareDatetime | None, Query(description="Entries before this time (ISO 8601 with offset).")] = None,
    ) -> AuditPage:
        """Every SCIM request made with this organisation's credentials, served or refused, newest
        first; kept for the configured retention period."""
        try:
            after = audit.decode_cursor(cursor) if cursor is not None else None
        except ValueError as exc:
            raise admin.AdminError(422, f"query.cursor: {exc}") from None
        since, until = _utc(since, "since"), _utc(until, "until")
        with transaction(who) as (conn, org):
            entries, next_cursor = audit.list_entries(
                conn, org.id, limit=limit, after=after, status=status, method=method, since=since, until=until
            )
        return AuditPage(entries=[AuditEntry(**e) for e in entries], next_cursor=next_cursor)

    # -- SSO -----------------------------------------------------------------------------------

    @app.get("/org/sso", response_model=SsoOut, responses=ERRORS, tags=["sso"])
    def get_sso(who: Admin) -> SsoOut:
        """Which protocols are configured, and the URLs to give the IdP (client secrets are never returned)."""
        with transaction(who) as (conn, org):
            o, s = sso_config.get(conn, org.id, "oidc"), sso_config.get(conn, org.id, "saml")
        oidc_base = f"{settings.public_url.rstrip('/')}/sso/{org.slug}/oidc"
        return SsoOut(
            sso_provisioning=org.sso_provisioning,
            oidc=OidcConnection(
                configured=o is not None, issuer=(o or {}).get("issuer"), client_id=(o or {}).get("client_id"),
                login_url=f"{oidc_base}/login", redirect_uri=f"{oidc_base}/callback",
            ),
            saml=SamlConnection(
                configured=s is not None, idp_entity_id=(s or {}).get("idp_entity_id"), idp_sso_url=(s or {}).get("sso_url"),
                idp_metadata_url=(s or {}).get("metadata_url"), **saml.urls(settings, org.slug),
            ),
        )

    @app.put("/org/sso/oidc", response_model=OidcConfigured, responses=_errors(400, *WITH_BODY), tags=["sso"])
    def configure_oidc(config: OidcConfig, who: Admin) -> OidcConfigured:
        """Connect an OpenID Provider (its discovery document must name exactly this issuer)."""
        try:
            out = oidc.configure(engine, settings, who.org.slug, **config.model_dump())
        except ValueError as exc:
            raise admin.AdminError(400, str(exc)) from None
        return OidcConfigured(**out)

    @app.put("/org/sso/saml", response_model=SamlConfigured, responses=_errors(400, *WITH_BODY), tags=["sso"])
    def configure_saml(config: SamlConfig, who: Admin) -> SamlConfigured:
        """Connect a SAML IdP from its metadata (the XML, or an https URL to fetch it from)."""
        try:
            out = saml.configure(engine, settings, who.org.slug, **config.model_dump())
        except ValueError as exc:
            raise admin.AdminError(400, str(exc)) from None
        return SamlConfigured(**out)

    return app


def openapi_document(settings: Settings | None = None) -> dict[str, Any]:
    """The OpenAPI document, without a database (what `schemas/openapi/admin.json` holds)."""
    from sqlalchemy import create_engine

    return admin_api(settings or Settings(), create_engine("postgresql+psycopg2://")).openapi()

