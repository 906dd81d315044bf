"""The admin API's one error shape, `{"status": int, "detail": str}`: the handlers that answer it
and the error responses each route documents."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain import admin
from ingest.admin.models import Problem
from ingest.http import DATABASE_DOWN, problem, unavailable


class Unauthorized(Exception):
    """No admin token, not a valid one, or one whose org is gone: 401."""


_DESCRIBED = {
    400: "Refused by the rules (the detail says which)",
    401: "No admin token, or not a valid one",
    403: "Not allowed by the organisation's settings",
    404: "No such resource in this organisation",
    409: "Conflicts with the current state",
    413: "Body over 64 KiB",
    422: "The body or a parameter does not match its schema",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error responses a route documents (401 on all of them)."""
    return {s: {"model": Problem, "description": _DESCRIBED[s]} for s in sorted({401, *statuses})}


ERRORS = documented()
WITH_QUERY = documented(422)
WITH_BODY = (413, 422)


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


async def _admin_error(_: Request, exc: admin.AdminError) -> JSONResponse:
    return problem(exc.status, str(exc))


async def _unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
    return problem(401, "an admin token is required (Authorization: Bearer adm_...)", {"WWW-Authenticate": "Bearer"})


async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    return problem(422, _readable(exc))


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    if isinstance(exc.__cause__, UnicodeDecodeError):  # FastAPI's 400 for a JSON body that is not UTF-8
        return problem(422, "body: not valid JSON (not UTF-8)")
    detail = exc.detail if isinstance(exc.detail, str) else "request refused"
    return problem(exc.status_code, detail, getattr(exc, "headers", None))


async def _database_down(_: Request, exc: Exception) -> JSONResponse:
    # PostgreSQL restarting or unreachable: nothing was written, the caller may retry (a 500 reads as our bug)
    return unavailable("the admin API cannot reach its database right now; retry after the delay in Retry-After")


def install_error_handlers(app: FastAPI) -> None:
    """Every refusal, ours or FastAPI's (validation, unknown route or method), in the one shape;
    503 with Retry-After while PostgreSQL is down."""
    app.exception_handler(admin.AdminError)(_admin_error)
    for database_down in DATABASE_DOWN:
        app.exception_handler(database_down)(_database_down)
    app.exception_handler(Unauthorized)(_unauthorized)
    app.exception_handler(RequestValidationError)(_invalid)
    app.exception_handler(StarletteHTTPException)(_http_error)
