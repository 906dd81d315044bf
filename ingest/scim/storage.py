"""A scim2-server storage on PostgreSQL, scoped to one org and one request's transaction.

It stores each resource as JSONB with its looked-up attributes in indexed columns, keeps
group members as rows, and stages the lifecycle events of every write in the outbox within
the same transaction (ARCHITECTURE §3.1). The request's connection is owned by the caller,
which commits after the response is built, or rolls back on any error.

What it stores obeys the input rules: a User has a non-blank `userName` (RFC 7643 §4.1.1), no
multi-valued attribute holds more values than the cost limits allow, and a group never
contains itself, directly or through nested groups. A resource stored before those limits is not
served (`400 tooMany`: it would cost seconds of the server's time) but may be replaced or deleted.
Searches page as `ingest.scim.paging` says; one that must evaluate its candidates in memory
evaluates at most `max_candidates` of them (more is `400 tooMany`).
"""

import uuid
from datetime import UTC, datetime
from typing import Any

from scim2_models import (
    InvalidValueException,
    Meta,
    NotFoundException,
    PreconditionFailedException,
    Resource,
    ResourceType,
    ResponseParameters,
    SearchRequest,
    TooManyException,
    UniquenessException,
)
from scim2_server.storage import ScimStorage, SearchPage
from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from core.tables import scim_group_members as gm
from core.tables import scim_resources as t
from domain.postgres import SqlUnitOfWork
from ingest.scim import changes, paging, rules, stored
from ingest.scim.cost import CostLimits
from ingest.scim.deadline import Deadline
from ingest.scim.emails import STORED
from ingest.scim.provider import type_name
from ingest.scim.search import lowered

# Attributes the service never keeps: password is write-only and this system never needs it;
# groups on a User is derived from the groups' members.
_DROPPED = ("password", "groups", "meta", "id")
# built once (a statement built per call is compiled and hashed per call); for a User the unique
# index answers the uniqueness question in the same statement
_CREATE = {
    False: pg_insert(t).returning(*t.c),
    True: pg_insert(t)
    .on_conflict_do_nothing(index_elements=["org_id", "user_name_ci"], index_where=t.c.resource_type == "User")
    .returning(*t.c),
}


def etag(version: int) -> str:
    return f'W/"{version}"'


def _version_of(etag: str | None) -> int | None:
    if not etag:
        return None
    try:
        return int(etag.removeprefix("W/").strip('"'))
    except ValueError:
        return -1


class PgStorage(ScimStorage):
    """Resources of one org. `lock=True` reads rows FOR UPDATE, so a read-modify-write is serialised."""

    supports_cursors = True  # RFC 9865: keyset pages by id, or the library's over the candidates (paging.py)

    def __init__(
        self,
        uow: SqlUnitOfWork,
        org: changes.OrgRef,
        models: dict[str, type[Resource[Any]]],
        *,
        lock: bool = False,
        deleting: bool = False,
        repairing: bool = False,
        cost: CostLimits | None = None,
        deadline: Deadline | None = None,
        max_candidates: int | None = None,
        patch_work: tuple[int, int] = (0, 0),
        answer_body: bool = True,
    ):
        self.uow = uow
        self.conn = uow.conn
        self.org = org
        self.models = models
        self.lock = lock
        self.deleting = deleting
        self.repairing = repairing  # a PUT or DELETE may read a resource stored beyond the limits
        self.cost = cost
        self.deadline = deadline
        self.max_candidates = max_candidates
        self.patch_operations, self.max_patch_work = patch_work  # a PATCH's operations, and their bound x members
        self._members_cache: dict[str, dict[str, str]] = {}
        # False for a PATCH whose answer is a 204: only the new ETag is read of what `update` returns
        self.answer_body = answer_body

    # -- reading -----------------------------------------------------------------------

    def _row(self, resource_type: ResourceType, resource_id: str) -> Any:
        if "\x00" in resource_id:  # no stored id holds one, and PostgreSQL refuses it as a parameter
            raise NotFoundException(detail=f"{resource_type.name} {resource_id!r} not found")
        query = self.readable().where(
            t.c.org_id == self.org.id, t.c.id == resource_id, t.c.resource_type == resource_type.name
        )
        if self.lock:
            if self.deleting and resource_type.name == "User":
                self._lock_groups_of(resource_id)
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        if row is None:
            raise NotFoundException(detail=f"{resource_type.name} {resource_id!r} not found")
        return row

    def _lock_groups_of(self, member_id: str) -> None:
        """Deleting a user removes it from its groups: lock those groups first (in id order, and
        before the user, the order a group PATCH takes them in), so a concurrent PATCH of one of
        them either sees the user gone or finishes before it goes, never half of each."""
        groups = select(gm.c.group_id).where(gm.c.org_id == self.org.id, gm.c.member_id == member_id)
        self.conn.execute(
            select(t.c.id).where(t.c.org_id == self.org.id, t.c.id.in_(groups)).order_by(t.c.id).with_for_update()
        ).all()

    def _members(self, group_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {gid: [] for gid in group_ids}
        if not group_ids:
            return found
        rows = self.conn.execute(
            select(gm.c.group_id, gm.c.member_id, gm.c.member_type, gm.c.display)
            .where(gm.c.org_id == self.org.id, gm.c.group_id.in_(group_ids))
            .order_by(gm.c.group_id, gm.c.added_at, gm.c.member_id)
        )
        for r in rows:
            member = {"value": r.member_id, "type": r.member_type, "$ref": f"{r.member_type}s/{r.member_id}"}
            if r.display:
                member["display"] = r.display
            found[r.group_id].append(member)
        return found

    def _resource(self, row: Any, members: list[dict[str, Any]] | None = None) -> Resource[Any]:
        stored.check_readable(row, self.cost)
        data = dict(row.data)
        if row.resource_type == "Group" and members:
            data["members"] = members
        if self.cost is not None and not self.repairing:
            self.cost.check_stored(row.resource_type, data)
        resource = self.models[row.resource_type].model_validate(data, context={STORED: True})
        resource.id = row.id
        resource.meta = Meta(
            resource_type=row.resource_type,
            created=row.created_at,
            last_modified=row.updated_at,
            version=etag(row.version),
        )
        return resource

    def load(
        self, rows: list[Any], response_parameters: ResponseParameters[Any] | None = None, *, members: bool = True
    ) -> list[Resource[Any]]:
        """The resources of rows read with `readable` (or `paging`'s partial rows)."""
        group_ids = [r.id for r in rows if r.resource_type == "Group"] if members else []
        members_of = self._members(group_ids) if group_ids and _wants_members(response_parameters) else {}
        for gid, found in members_of.items():
            self._members_cache[gid] = {m["value"]: m["type"] for m in found}
        loaded = []
        for i, r in enumerate(rows):
            if i % paging.CHECK_EVERY == 0:
                self.check_deadline()
            loaded.append(self._resource(r, members_of.get(r.id)))
        return loaded

    def check_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.check()

    def get(
        self, resource_type: ResourceType, resource_id: str, *, response_parameters: ResponseParameters[Any] | None = None
    ) -> Resource[Any]:
        resource = self.load([self._row(resource_type, resource_id)], response_parameters)[0]
        if self.lock and self.patch_operations and resource_type.name == "Group":
            self._check_patch_work(resource_id)
        return resource

    def _check_patch_work(self, group_id: str) -> None:
        """The library applies each PATCH operation to the whole group: bound operations x members."""
        members = len(self._members_cache.get(group_id, {}))
        if self.max_patch_work and self.patch_operations * members > self.max_patch_work:
            raise TooManyException(
                detail=f"{self.patch_operations} PATCH operations on a group of {members} members is more work than allowed "
                f"({self.max_patch_work} operations x members); send fewer operations, each with several values"
            )

    def search(
        self, resource_types: list[ResourceType], search_request: SearchRequest[Any], *, position: Any = None
    ) -> SearchPage:
        return paging.search(self, sorted({type_name(rt) for rt in resource_types}), search_request, position)

    def readable(self) -> Any:
        """Rows of resources, `data` withheld where it passes the value limits (`stored.readable`)."""
        return stored.readable(None if self.repairing else self.cost)

    def max_values(self) -> int | None:
        return None if self.repairing or self.cost is None else self.cost.max_values

    # -- writing -----------------------------------------------------------------------

    def columns(self, resource_type: str, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "user_name_ci": data.get("userName", "").lower() if resource_type == "User" else None,
            "external_id": data.get("externalId"),
            "display_name_ci": (data.get("displayName") or "").lower() or None,
            "emails_ci": lowered([e.get("value", "") for e in data.get("emails") or []]),
        }

    def stored_data(
        self, resource_type: str, resource: Resource[Any]
    ) -> tuple[dict[str, Any], dict[str, str], dict[str, str | None]]:
        """The JSONB body (without members), the members by id with type, and their display names."""
        data = resource.model_dump(mode="json")
        for key in _DROPPED:
            data.pop(key, None)
        rules.check_stored(resource_type, data, self.cost)
        members = data.pop("members", None) or []
        types = {m["value"]: m.get("type") or "User" for m in members if m.get("value")}
        displays = {m["value"]: m.get("display") for m in members if m.get("value")}
        return data, types, displays

    def _check_unique(self, resource_type: str, data: dict[str, Any], resource_id: str) -> None:
        if resource_type != "User":
            return
        taken = self.conn.execute(
            select(t.c.id).where(
                t.c.org_id == self.org.id,
                t.c.resource_type == "User",
                t.c.user_name_ci == data.get("userName", "").lower(),
                t.c.id != resource_id,
            )
        ).first()
        if taken:
            raise UniquenessException(detail=f"userName {data.get('userName')!r} is already taken")

    def _stage(self, events: list[Any]) -> None:
        self.uow.stage(events)

    def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        self.check_deadline()  # the library's work before this may have used it up: then write nothing
        name = type_name(resource_type)
        resource_id = uuid.uuid4().hex
        data, member_types, displays = self.stored_data(name, resource)
        now = datetime.now(UTC)
        values = {"org_id": self.org.id, "id": resource_id, "resource_type": name, "version": 1, "data": data,
                  "created_at": now, "updated_at": now, **self.columns(name, data)}
        row = self.conn.execute(_CREATE[name == "User"], values).first()
        if row is None:
            raise UniquenessException(detail=f"userName {data.get('userName')!r} is already taken")
        member_types = self._write_members(resource_id, {}, member_types, displays)
        if name == "User":
            self._stage(changes.user_events(self.org, resource_id, None, data, 1))
            return self._resource(row)
        self._stage(changes.group_events(self.org, resource_id, None, data, {}, member_types, 1))
        return self.get(resource_type, resource_id)

    def update(
        self, resource_type: ResourceType, resource: Resource[Any], *, expected_version: str | None = None
    ) -> Resource[Any]:
        self.check_deadline()
        name = type_name(resource_type)
        resource_id = str(resource.id)
        row = self._locked(resource_type, resource_id, expected_version)
        data, member_types, displays = self.stored_data(name, resource)
        self._check_unique(name, data, resource_id)
        version = row.version + 1
        updated = self.conn.execute(
            update(t)
            .where(t.c.org_id == self.org.id, t.c.id == resource_id)
            .values(version=version, data=data, updated_at=datetime.now(UTC), **self.columns(name, data))
            .returning(*t.c)
        ).one()
        if name == "User":
            self._stage(changes.user_events(self.org, resource_id, dict(row.data), data, version))
            return self._resource(updated)
        else:
            before = self._current_members(resource_id)
            member_types = self._write_members(resource_id, before, member_types, displays)
            self._stage(changes.group_events(self.org, resource_id, dict(row.data), data, before, member_types, version))
        if not self.answer_body:  # no second read of the whole group (ingest.scim.provider.Service)
            resource.meta = Meta(resource_type=name, created=updated.created_at, last_modified=updated.updated_at,
                                 version=etag(version))  # fmt: skip
            return resource
        return self.get(resource_type, resource_id)

    def delete(self, resource_type: ResourceType, resource_id: str, *, expected_version: str | None = None) -> None:
        row = self._locked(resource_type, resource_id, expected_version)
        version = row.version + 1
        self.conn.execute(delete(t).where(t.c.org_id == self.org.id, t.c.id == resource_id))
        self.conn.execute(delete(gm).where(gm.c.org_id == self.org.id, gm.c.member_id == resource_id))
        if resource_type.name == "User":
            self._stage(changes.user_events(self.org, resource_id, dict(row.data), None, version))
        else:
            self.conn.execute(delete(gm).where(gm.c.org_id == self.org.id, gm.c.group_id == resource_id))
            self._stage(changes.group_events(self.org, resource_id, dict(row.data), None, {}, {}, version))

    def _locked(self, resource_type: ResourceType, resource_id: str, expected_version: str | None) -> Any:
        row = None if "\x00" in resource_id else self.conn.execute(
            select(t)
            .where(t.c.org_id == self.org.id, t.c.id == resource_id, t.c.resource_type == resource_type.name)
            .with_for_update()
        ).first()
        if row is None:
            raise NotFoundException(detail=f"{resource_type.name} {resource_id!r} not found")
        wanted = _version_of(expected_version)
        if wanted is not None and wanted != row.version:
            raise PreconditionFailedException(detail=f"version is {etag(row.version)}, not {expected_version}")
        return row

    def _current_members(self, group_id: str) -> dict[str, str]:
        rows = self.conn.execute(
            select(gm.c.member_id, gm.c.member_type).where(gm.c.org_id == self.org.id, gm.c.group_id == group_id)
        )
        return {r.member_id: r.member_type for r in rows}

    def existing_members(self, ids: list[str]) -> dict[str, str]:
        """The resource type of each new member; a member that is not in this org is refused."""
        storable = [m for m in ids if "\x00" not in m]
        rows = self.conn.execute(
            select(t.c.id, t.c.resource_type).where(t.c.org_id == self.org.id, t.c.id.in_(storable)).with_for_update(read=True)
        )
        found = {r.id: r.resource_type for r in rows}
        missing = [m for m in ids if m not in found]
        if missing:
            raise InvalidValueException(detail=f"members {', '.join(sorted(missing)[:5])} are not resources of this org")
        return found

    def _write_members(
        self, group_id: str, before: dict[str, str], after: dict[str, str], displays: dict[str, str | None]
    ) -> dict[str, str]:
        """Apply the membership difference as row inserts and deletes, never a rewrite of the list.

        Returns the members with their stored resource types (what the events announce).
        """
        added = [m for m in after if m not in before]
        removed = [m for m in before if m not in after]
        if added:
            after = {**after, **self.existing_members(added)}
            rules.refuse_cycle(self.conn, self.org.id, group_id, [m for m in added if after[m] == "Group"])
        if removed:
            self.conn.execute(
                delete(gm).where(gm.c.org_id == self.org.id, gm.c.group_id == group_id, gm.c.member_id.in_(removed))
            )
        if added:
            self.conn.execute(
                insert(gm),
                [
                    {
                        "org_id": self.org.id, "group_id": group_id, "member_id": m,
                        "member_type": after[m], "display": displays.get(m),
                    }
                    for m in added
                ],
            )
        return after


def _wants_members(response_parameters: ResponseParameters[Any] | None) -> bool:
    if response_parameters is None:
        return True
    excluded = {str(a).lower() for a in (response_parameters.excluded_attributes or [])}
    if "members" in excluded or any(a.endswith(":members") for a in excluded):
        return False
    attributes = response_parameters.attributes
    if attributes:
        return any("members" in str(a).lower() for a in attributes)
    return True
