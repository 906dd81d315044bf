"""The group PATCH IdPs send most, adding and removing members, without the library's work on the
whole group.

Entra ID and Okta fill a group with PATCHes of up to 100 members (`{"op": "add", "path":
"members", "value": [{"value": id}, ...]}`) and empty it with `remove`, by `members[value eq
"id"]` or by a list of values. The library answers each by loading the group with every member
into its model, applying the operation to it, dumping it back and (`PgStorage.update`) diffing
the members: the cost of a PATCH grows with the group, ~40 ms at 900 members. `LeanMemberPatch`
reads only the members the PATCH names, with the storage's locks and rules, and writes the
difference, its events and the group's new version in the request's transaction; the answer is the
library's 204 with the new ETag (`ingest.scim.provider.Service`).

It serves only what it can serve exactly as the library would; for anything else `serve` returns
None before writing anything, and the library handles the request in the same transaction:
another method or resource, any query parameter, a conditional header, any other operation or
path, an add whose values are not plain `{"value": id}` (with at most a `display`), a remove
other than by `members[value eq "id"]`, a member named twice, an add of a member or a remove of
a non-member (the library's answer, whatever it is), a member that is not a user of this org,
and a group that would pass the members limit. Unlike the library's path, the bound on PATCH
operations x group members (`scim_max_patch_work`) does not apply: that bounds the library's
work on the whole group, which this path does not do. `tests/integration/test_lean_patch.py` compares its answers,
rows and events with the library's.
"""

import re
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import orjson
from scim2_models import InvalidValueException
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.routing import Operation
from sqlalchemy import delete, func, insert, select, update

from core.tables import scim_group_members as gm
from core.tables import scim_resources as t
from ingest.scim import changes
from ingest.scim.lean import CONDITIONAL
from ingest.scim.storage import PgStorage, etag

_PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
_BY_VALUE = re.compile(r'^\s*members\s*\[\s*value\s+eq\s+"([^"\\]+)"\s*\]\s*$', re.IGNORECASE)
Change = tuple[str, str, str | None]  # ("add" | "remove", member id, display)


class LeanMemberPatch:
    """PATCH of a Group's members, for one service (whose Group resource type it serves)."""

    def __init__(self, service: Any, max_members: int):
        self.service = service
        self.max_members = max_members
        self.group_type = next(rt for rt in service.provider.resource_types if rt.name == "Group")

    def serve(self, request: ScimRequest, storage: PgStorage, conn: Any) -> ScimResponse | None:
        """The 204, staged in the request's transaction; or None, with nothing written."""
        if request.method.upper() != "PATCH" or request.query or any(request.header(h) for h in CONDITIONAL):
            return None
        target = self.service.match(request)
        if target.operation is not Operation.patch or target.me or target.endpoint is None or not target.resource_id:
            return None
        if self.service.resource_type_at(target.endpoint) is not self.group_type:
            return None
        ops = _changes(request.body)
        if ops is None:
            return None
        return self._apply(storage, conn, str(target.resource_id), ops)

    def _apply(self, storage: PgStorage, conn: Any, group_id: str, ops: list[Change]) -> ScimResponse | None:
        org = storage.org
        row = conn.execute(
            select(t.c.version, t.c.data)
            .where(t.c.org_id == org.id, t.c.id == group_id, t.c.resource_type == "Group")
            .with_for_update()
        ).first()
        if row is None:
            return None  # the library answers the 404
        named = [member for _, member, _ in ops]
        if len(set(named)) < len(named):
            return None  # a member named twice: the library's order of effects
        before = {r.member_id: r.member_type for r in conn.execute(
            select(gm.c.member_id, gm.c.member_type).where(gm.c.org_id == org.id, gm.c.group_id == group_id,
                                                           gm.c.member_id.in_(named))
        )}  # fmt: skip
        added = [member for op, member, _ in ops if op == "add"]
        removed = [member for op, member, _ in ops if op == "remove"]
        if any(m in before for m in added) or any(m not in before for m in removed):
            return None  # an add of a member or a remove of a non-member: the library's answer
        after = {m: kind for m, kind in before.items() if m not in removed}
        if added:
            try:
                found = storage.existing_members(added)
            except InvalidValueException:
                return None  # a member that is not a resource of the org: the library's 400
            if "Group" in found.values():
                return None  # a nested group: the library's cycle rule
            after.update(found)
            count = conn.execute(select(func.count()).where(gm.c.org_id == org.id, gm.c.group_id == group_id)).scalar_one()
            if count + len(added) - len(removed) > self.max_members:
                return None  # the library answers the limit
        displays = {member: display for op, member, display in ops if op == "add"}
        storage.check_deadline()
        version = row.version + 1
        conn.execute(
            update(t).where(t.c.org_id == org.id, t.c.id == group_id).values(version=version, updated_at=datetime.now(UTC))
        )
        if removed:
            conn.execute(delete(gm).where(gm.c.org_id == org.id, gm.c.group_id == group_id, gm.c.member_id.in_(removed)))
        if added:
            rows = [{"org_id": org.id, "group_id": group_id, "member_id": m, "member_type": after[m], "display": displays.get(m)}
                    for m in added]  # fmt: skip
            conn.execute(insert(gm), rows)
        data = dict(row.data)
        storage.uow.stage(changes.group_events(org, group_id, data, data, before, after, version))
        return _no_content(version)


def _no_content(version: int) -> ScimResponse:
    return ScimResponse(HTTPStatus.NO_CONTENT, None, {"ETag": etag(version)})


def _changes(body: bytes | str | None) -> list[Change] | None:
    """The PATCH's member additions and removals, in order; None for any other shape."""
    try:
        data = orjson.loads(body or b"")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or set(data) != {"schemas", "Operations"} or data["schemas"] != [_PATCH_OP]:
        return None
    operations = data["Operations"]
    if not isinstance(operations, list) or not operations:
        return None
    out: list[Change] = []
    for operation in operations:
        found = _operation(operation)
        if found is None:
            return None
        out += found
    return out


def _operation(operation: Any) -> list[Change] | None:
    if not isinstance(operation, dict) or not set(operation) <= {"op", "path", "value"}:
        return None
    op, path, value = operation.get("op"), operation.get("path"), operation.get("value")
    if not isinstance(op, str) or op.lower() not in ("add", "remove") or not isinstance(path, str):
        return None
    op = op.lower()
    by_value = _BY_VALUE.match(path)
    if op == "remove":  # by its filter only: a remove carrying a value is the library's to refuse
        return [("remove", by_value.group(1), None)] if by_value and value is None else None
    if path.strip().lower() != "members" or not isinstance(value, list) or not value:
        return None
    out: list[Change] = []
    for item in value:
        if not isinstance(item, dict) or not set(item) <= {"value", "display"}:
            return None
        member, display = item.get("value"), item.get("display")
        if not isinstance(member, str) or not member or "\x00" in member or not (display is None or isinstance(display, str)):
            return None
        out.append((op, member, display))
    return out
