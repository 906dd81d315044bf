"""The page of a search, reading no more of the org's rows than the search needs.

Reading a row whole costs the ingest process about 75 µs of validation (more for a rich one);
a search over 10,000 candidates that read each one whole cost it seconds, for one short request.
So, in order:

1. An unfiltered, unsorted listing pages in SQL, ordered by id: only the page is read. Paged by
   RFC 9865 cursor, it is a keyset page (`id > last id`): ids never change, so a resource that
   exists throughout a walk is on exactly one page whatever is written meanwhile. (A cursor of a
   filtered or sorted search pages the library's way, over the candidates, by sort value and id.)
2. An unfiltered sort that PostgreSQL orders exactly as scim2-models does pages in SQL too
   (`sql_sort_key`): one resource type, on the id, `meta.created`, `meta.lastModified`, or a
   singular string attribute (a sub-attribute of a singular complex one included) whose stored
   values are all ASCII. On ASCII, the library's comparison key (NFC, then lower case unless
   caseExact) is PostgreSQL's `lower()` under the "C" collation, and both compare code points;
   a value outside ASCII, or of another JSON type, sends the search to 3.
3. Anything else evaluates the filter and sorts with scim2-models. Candidates the indexes narrow
   (a few rows) are read whole, in one query; a scan reads its candidates with only the top-level
   attributes the filter and the sort name (`referenced`), and then the resources of the page
   whole. Answers are the library's own: a filter or a sort depends on the attributes it names
   and nothing else.
"""

from typing import TYPE_CHECKING, Any

from scim2_models import Extension, InvalidCursorException, Resource, ScimFilter, SearchRequest, TooManyException
from scim2_models.path import Comparison, LogicalExpr, Not, Present, ValuePath
from scim2_server.memory import _page
from scim2_server.storage import SearchPage
from sqlalchemy import ColumnElement, Select, case, cast, false, func, null, or_, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB

from core.tables import scim_resources as t
from ingest.scim.search import narrowing

if TYPE_CHECKING:
    from ingest.scim.storage import PgStorage

CHECK_EVERY = 200  # rows between deadline checks in Python-side loops (the storage's too)
_NOT_ASCII = r"[^\x01-\x7f]"
_COLUMNS = {("meta", "created"): t.c.created_at, ("meta", "last_modified"): t.c.updated_at}


def search(storage: "PgStorage", names: list[str], search_request: SearchRequest[Any], position: Any) -> SearchPage:
    """The page of `search_request` over the org's resources of the types `names`."""
    where = [t.c.org_id == storage.org.id, t.c.resource_type.in_(names)]
    if search_request.filter is None and search_request.sort_by is None:
        if search_request.cursor is not None:
            return _keyset_page(storage, where, search_request, position)
        return _plain_page(storage, where, search_request)
    if search_request.filter is None and search_request.cursor is None and len(names) == 1:
        key = sql_sort_key(search_request, storage.models[names[0]])
        page = _sql_sorted_page(storage, where, search_request, key) if key is not None else None
        if page is not None:
            return page
    return _candidates_page(storage, where, search_request, position)


def _plain_page(storage: "PgStorage", where: list[ColumnElement[bool]], search_request: SearchRequest[Any]) -> SearchPage:
    total = storage.conn.execute(select(func.count()).select_from(t).where(*where)).scalar_one()
    start = search_request.start_index_0 or 0
    return SearchPage(total, _rows(storage, where, search_request, start, total, t.c.id))


def _keyset_page(
    storage: "PgStorage", where: list[ColumnElement[bool]], search_request: SearchRequest[Any], position: Any
) -> SearchPage:
    """A cursor page of the listing by id: after the last id of the page before, or before the first of the one after."""
    total = storage.conn.execute(select(func.count()).select_from(t).where(*where)).scalar_one()
    count = search_request.count if search_request.count is not None else total
    if count == 0:
        return SearchPage(total, [])
    forward, anchor = _keyset_position(position)
    bound = [] if anchor is None else [t.c.id > anchor if forward else t.c.id < anchor]
    query = storage.readable().where(*where, *bound).order_by(t.c.id if forward else t.c.id.desc()).limit(count + 1)
    rows = list(storage.conn.execute(query))
    beyond, rows = len(rows) > count, rows[:count]
    resources = storage.load(rows if forward else rows[::-1])
    if not resources:
        return SearchPage(total, [])
    first, last = resources[0].id, resources[-1].id

    def any_where(condition: ColumnElement[bool]) -> bool:
        return bool(storage.conn.execute(select(select(t.c.id).where(*where, condition).exists())).scalar_one())

    after = beyond if forward else any_where(t.c.id > last)
    before = (anchor is not None and any_where(t.c.id < first)) if forward else beyond
    return SearchPage(total, resources, next={"d": "next", "i": last} if after else None,
                      previous={"d": "previous", "i": first} if before else None)  # fmt: skip


def _keyset_position(position: Any) -> tuple[bool, str | None]:
    """(forward, the id the page starts after or ends before) of a position `_keyset_page` gave; the first page's is None."""
    if position is None:
        return True, None
    if not isinstance(position, dict) or position.get("d") not in ("next", "previous") or not isinstance(position.get("i"), str):
        raise InvalidCursorException
    return position["d"] == "next", position["i"]


def _rows(
    storage: "PgStorage",
    where: list[ColumnElement[bool]],
    search_request: SearchRequest[Any],
    start: int,
    total: int,
    *order: ColumnElement[Any],
) -> list[Resource[Any]]:
    if search_request.count == 0 or start >= total:
        return []
    query = storage.readable().where(*where).order_by(*order).offset(start)
    if search_request.count is not None:
        query = query.limit(search_request.count)
    return storage.load(list(storage.conn.execute(query)))


# -- 2. sorting in SQL ---------------------------------------------------------------


class SqlSortKey:
    """What a sort orders by in SQL; `path`, when it is a string stored at that JSON path."""

    def __init__(self, expression: ColumnElement[Any], path: list[str] | None = None):
        self.expression = expression
        self.path = path


def sql_sort_key(search_request: SearchRequest[Any], model: type[Resource[Any]]) -> SqlSortKey | None:
    """The SQL expression that orders as `search_request.sort` does, or None where only scim2-models can."""
    binding = search_request.sort_binding(model)
    if binding is None:
        return None
    if binding.field_name == "id" and binding.sub_field_name is None:
        return SqlSortKey(t.c.id)
    column = _COLUMNS.get((binding.field_name, binding.sub_field_name or ""))
    if column is not None:
        return SqlSortKey(column)
    if binding.is_multivalued or binding.target_type is not str:
        return None
    path = [json_name(binding.model, binding.field_name)]
    if binding.sub_field_name is not None:
        path.append(json_name(binding.field_type, binding.sub_field_name))
    if issubclass(binding.model, Extension):
        path.insert(0, binding.urn.rsplit(":", 1)[0])
    ordered = func.jsonb_extract_path_text(t.c.data, *path).collate("C")
    return SqlSortKey(ordered if binding.case_exact else func.lower(ordered), path)


def json_name(model: Any, field_name: str) -> str:
    """The attribute's name in the stored JSON (its alias) for a model's Python field name."""
    field = model.model_fields[field_name]
    return str(field.serialization_alias or field.alias or field_name)


def _sql_sorted_page(
    storage: "PgStorage", where: list[ColumnElement[bool]], search_request: SearchRequest[Any], key: SqlSortKey
) -> SearchPage | None:
    """The page ordered in SQL, or None when a stored value would order differently there."""
    differs: ColumnElement[Any] = false()
    if key.path is not None:
        node, text = func.jsonb_extract_path(t.c.data, *key.path), func.jsonb_extract_path_text(t.c.data, *key.path)
        differs = func.coalesce(
            func.bool_or(or_(func.jsonb_typeof(node).notin_(["string", "null"]), text.op("~")(_NOT_ASCII))), false()
        )
    total, unsafe = storage.conn.execute(select(func.count(), differs).select_from(t).where(*where)).one()
    if unsafe:
        return None
    descending = search_request.sort_order == SearchRequest.SortOrder.descending
    missing = key.expression.is_(None)
    order = [missing.desc(), key.expression.desc(), t.c.id.desc()] if descending else [missing, key.expression, t.c.id]
    start = search_request.start_index_0 or 0
    return SearchPage(total, _rows(storage, where, search_request, start, total, *order))


# -- 3. partial candidates -----------------------------------------------------------


def _candidates_page(
    storage: "PgStorage", where: list[ColumnElement[bool]], search_request: SearchRequest[Any], position: Any
) -> SearchPage:
    """Candidates narrowed by the indexes, read in part; the filter and the sort by scim2-models; the page whole."""
    scim_filter = search_request.filter
    condition = narrowing(scim_filter)
    keys = referenced(search_request) if condition is None else None  # few candidates: whole, in one query
    query = storage.readable() if keys is None else _partial(keys, storage.max_values())
    query = query.where(*where, *([condition] if condition is not None else []))
    if storage.max_candidates is not None:
        query = query.limit(storage.max_candidates + 1)  # one more than allowed tells "too many" from "all"
    rows = list(storage.conn.execute(query))
    if storage.max_candidates is not None and len(rows) > storage.max_candidates:
        raise TooManyException(
            detail=f"the filter or sortBy would evaluate more than {storage.max_candidates} resources in memory; "
            "filter on an indexed attribute (id, userName, externalId, displayName, emails.value) or leave out sortBy"
        )
    candidates = storage.load(rows, members=keys is None or "members" in keys)
    if scim_filter is not None and not scim_filter.models:
        scim_filter = ScimFilter(str(scim_filter))
    found = []
    for i, r in enumerate(candidates):
        if i % CHECK_EVERY == 0:
            storage.check_deadline()
        if scim_filter is None or scim_filter.match(r):
            found.append(r)
    page = _page(search_request, position, found)
    if keys is not None and page.resources:
        ids = [r.id for r in page.resources]
        whole = {r.id: r for r in storage.load(list(storage.conn.execute(storage.readable().where(*where, t.c.id.in_(ids)))))}
        page.resources = [whole[i] for i in ids if i in whole]
    return page


def referenced(search_request: SearchRequest[Any]) -> set[str] | None:
    """The top-level JSON keys (lower case) the filter and the sort read, or None when not known."""
    keys = {"schemas"}
    if search_request.sort_by is not None:
        keys |= _keys_of_path(str(search_request.sort_by))
    if search_request.filter is not None:
        found = _keys_of_node(search_request.filter.ast)
        if found is None:
            return None
        keys |= found
    return keys


def _keys_of_path(path: str) -> set[str]:
    """`title` -> {title}; `name.familyName` -> {name}; `urn:...:User:employeeNumber` -> {the URN, employeenumber}."""
    if path.lower().startswith("urn:"):
        uri, _, attr = path.rpartition(":")
        return {uri.lower(), attr.split(".", 1)[0].lower()}
    return {path.split(".", 1)[0].lower()}


def _keys_of_node(node: Any) -> set[str] | None:
    if isinstance(node, Comparison | Present | ValuePath):
        path = node.attr_path
        return {path.attr.lower()} | ({path.uri.lower()} if path.uri else set())
    if isinstance(node, Not):
        return _keys_of_node(node.expr)
    if isinstance(node, LogicalExpr):
        keys: set[str] = set()
        for term in node.terms:
            found = _keys_of_node(term)
            if found is None:
                return None
            keys |= found
        return keys
    return None


def _partial(keys: set[str], max_values: int | None) -> Select[Any]:
    """Resource rows whose `data` holds only the top-level `keys` (compared without case), and their longest list.

    As `stored.readable`: `data` is NULL where one of those attributes holds more than `max_values` values."""
    each = func.jsonb_each(t.c.data).table_valued("key", "value").alias("e")
    chosen = func.lower(each.c.key).in_(sorted(keys))
    data = select(func.coalesce(func.jsonb_object_agg(each.c.key, each.c.value), cast("{}", JSONB))).where(chosen)
    values = select(func.coalesce(func.max(func.jsonb_array_length(each.c.value)), 0)).where(
        chosen, func.jsonb_typeof(each.c.value) == "array"
    )
    longest = values.scalar_subquery()
    subset: ColumnElement[Any] = data.scalar_subquery()
    if max_values is not None:
        subset = case((longest > max_values, null()), else_=subset)
    columns = [c for c in t.c if c.name != "data"]
    return select(*columns, type_coerce(subset, JSONB).label("data"), longest.label("values_max"))
