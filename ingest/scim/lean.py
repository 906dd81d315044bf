"""The reads IdPs send most, answered from the stored JSON without the library's request handling.

Entra ID looks a user up before every create (`GET /Users?filter=userName eq "..."`), Okta pages
the same lookup (`&startIndex=1&count=100`), and both GET users by id. scim2-server answers each by
validating the stored row into a model, copying it deep, resolving its references and dumping it
again: most of a lookup's interpreter time. The stored JSON is already what the library would
dump (it is the dump of the validated model, written by `PgStorage`), so `LeanReads` serves these
requests from it, adding `id` and `meta` as the library does (`ScimService.resource_location`, the
weak ETag of the version).

It answers only what it can answer exactly as the library would; for anything else `serve`
returns None and the library handles the request: another method or endpoint, a Group, any other
query parameter (`attributes`, `excludedAttributes`, `sortBy`...), conditional headers, a filter
other than one `userName` / `externalId` `eq` on a string, a row stored beyond the value limits,
a stored attribute that holds a reference (`$ref`) or is not returned by default. Matches are those
of the library's filter: the same indexed superset as `ingest.scim.search` (in statements built
once), then the library's comparison key (`AttributeBinding.comparable`). `tests/integration/test_lean_reads.py` compares its
answers with the library's, status, headers and body.
"""

import json
import re
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, get_args

from scim2_models import BaseModel, Path, ResourceType, Returned
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.service import ScimService
from sqlalchemy import Select, bindparam

from core.tables import scim_resources as t
from ingest.scim import stored
from ingest.scim.cost import CostLimits
from ingest.scim.paging import json_name

_LOOKUP = re.compile(r'^\s*(userName|externalId)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$', re.IGNORECASE)
_LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
CONDITIONAL = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")


def _users(cost: CostLimits) -> Select[Any]:
    return stored.readable(cost).where(t.c.org_id == bindparam("org"), t.c.resource_type == "User")


def lookups(cost: CostLimits) -> dict[str, Select[Any]]:
    """The `eq` lookups' statements (bound: `org`, `value`), by lower-cased attribute. userName is
    unique in the org, so it has no ORDER BY: one would let the index ordered by id look as cheap
    as the key's to a planner that believes a new org has one row (migration 0017)."""
    return {"username": _users(cost).where(t.c.user_name_ci == bindparam("value")),
            "externalid": _users(cost).where(t.c.external_id == bindparam("value")).order_by(t.c.id)}


class LeanReads:
    """GET of a User by id, and the `eq` lookup of users, for one service's User resource type."""

    def __init__(self, service: ScimService, cost: CostLimits, max_results: int):
        self.service = service
        self.cost = cost
        self.max_results = max_results
        self.user_type: ResourceType = next(rt for rt in service.provider.resource_types if rt.name == "User")
        model: Any = service.get_model(self.user_type)
        self.model = model
        self.not_returned = _not_returned_by_default(model)
        self.bindings = {name.lower(): (Path[model](name).resolve(), name) for name in ("userName", "externalId")}
        self.endpoint = (self.user_type.endpoint or "/Users").strip("/").casefold()
        self._one = _users(cost).where(t.c.id == bindparam("id"))
        self._by = lookups(cost)

    def serve(self, request: ScimRequest, org_id: str, conn: Any) -> ScimResponse | None:
        """The response, or None when the library must answer."""
        if request.method.upper() != "GET" or any(request.header(h) for h in CONDITIONAL):
            return None
        parts = request.path.strip("/").split("/")
        if not parts or parts[0].casefold() != self.endpoint or len(parts) > 2:
            return None
        if len(parts) == 2:
            return None if request.query else self._get(request, org_id, parts[1], conn)
        return self._lookup(request, org_id, conn)

    def _get(self, request: ScimRequest, org_id: str, resource_id: str, conn: Any) -> ScimResponse | None:
        if not resource_id or "\x00" in resource_id:
            return None
        row = conn.execute(self._one, {"org": org_id, "id": resource_id}).first()
        body = self._body(request, row) if row is not None else None
        if body is None:
            return None  # not found, or not servable here: the library says so
        return ScimResponse(HTTPStatus.OK, body, {"Content-Location": body["meta"]["location"],
                                                  "ETag": body["meta"]["version"]})

    def _lookup(self, request: ScimRequest, org_id: str, conn: Any) -> ScimResponse | None:
        parsed = self._lookup_query(request.query)
        if parsed is None:
            return None
        name, value, count = parsed
        binding, key = self.bindings[name]
        wanted = _comparable(binding, value)
        if wanted is None or "\x00" in value:
            return None
        # the indexed superset of `ingest.scim.search`, in a statement built once
        rows = conn.execute(self._by[name], {"org": org_id, "value": value.lower() if name == "username" else value}).all()
        resources = []
        for row in rows:
            if row.data is not None and _comparable(binding, row.data.get(key)) != wanted:
                continue
            body = self._body(request, row)
            if body is None:
                return None
            resources.append(body)
        page = resources[:count]
        return ScimResponse(HTTPStatus.OK, {"schemas": [_LIST], "totalResults": len(resources), "startIndex": 1,
                                            "itemsPerPage": len(page), "Resources": page}, {})

    def _lookup_query(self, query: Any) -> tuple[str, str, int] | None:
        """(attribute, value, count) of `filter=<attr> eq "<value>"`, `startIndex=1` and a `count` at most."""
        params = {k.casefold(): v for k, v in query.items()}
        if set(params) - {"filter", "startindex", "count"} or "filter" not in params:
            return None
        count = _int(params.get("count", str(self.max_results)))
        if params.get("startindex", "1").strip() != "1" or count is None or not 0 <= count <= self.max_results:
            return None
        match = _LOOKUP.match(params["filter"])
        if match is None:
            return None
        try:
            value = json.loads(f'"{match.group(2)}"')
        except ValueError:
            return None
        return match.group(1).lower(), value, count

    def _body(self, request: ScimRequest, row: Any) -> dict[str, Any] | None:
        """The resource as the library dumps it, or None when only the library can say."""
        if row.data is None or not self.servable(row.data):
            return None
        return self.body(request.base_url, row.id, row.data, row.created_at, row.updated_at, row.version)

    def servable(self, data: dict[str, Any]) -> bool:
        """Whether a stored User's JSON is, with `id` and `meta`, what the library would answer."""
        return not (self.not_returned & set(data)) and not _has_reference(data)

    def body(
        self, base_url: str, resource_id: str, data: dict[str, Any], created: datetime, updated: datetime, version: int
    ) -> dict[str, Any]:
        """A servable User as the library dumps it: its JSON, `id`, and `meta` as `ScimService.publish` sets it."""
        location = self.service.resource_location(base_url, self.user_type, resource_id)
        meta = {"resourceType": "User", "created": _when(created), "lastModified": _when(updated),
                "location": location, "version": f'W/"{version}"'}
        return {**data, "id": resource_id, "meta": meta}


def _not_returned_by_default(model: Any) -> set[str]:
    """Stored keys whose attribute, or one inside it, is not returned by default: the library decides."""
    return {json_name(model, name) for name in model.model_fields if _withheld(model, name, set())}


def _withheld(model: Any, name: str, seen: set[Any]) -> bool:
    if model.get_field_annotation(name, Returned) in (Returned.never, Returned.request):
        return True
    inner = [a for a in _types(model.model_fields[name].annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    return any(_withheld(m, n, seen | {m}) for m in inner if m not in seen for n in m.model_fields)


def _types(annotation: Any) -> list[Any]:
    found = [annotation]
    for arg in get_args(annotation):
        found += _types(arg)
    return found


def _has_reference(value: Any) -> bool:
    if isinstance(value, dict):
        return "$ref" in value or any(_has_reference(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_reference(v) for v in value)
    return False


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _comparable(binding: Any, value: Any) -> Any:
    """The library's comparison key of a string (None for anything else, or one it cannot prepare)."""
    if not isinstance(value, str):
        return None
    try:
        return binding.comparable(value)
    except ValueError:
        return None


def _int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None
