"""Which stored rows a SCIM filter can match: an indexed superset, narrowed in SQL.

The storage evaluates the filter itself with scim2-models (`ScimFilter.match`), so the
SQL here only has to return a superset of the matches. Equality on the looked-up attributes
(userName, externalId, displayName, emails.value, id) uses the indexes; anything else scans
the org's resources of that type.
"""

from typing import Any

from scim2_models import ScimFilter
from scim2_models.path import AttrPath, Comparison, LogicalExpr, ValuePath
from scim2_models.path.expressions import CompareOperator, LogicalOperator
from sqlalchemy import ColumnElement, and_, false, or_

from core.tables import scim_resources as t


def _column_condition(attr: str, sub: str | None, value: str) -> ColumnElement[bool] | None:
    attr, sub = attr.lower(), (sub or "").lower()
    if "\x00" in value:  # nothing stored holds U+0000 (PostgreSQL refuses it), so nothing is equal to it
        return false()
    if attr == "username" and not sub:
        return t.c.user_name_ci == value.lower()
    if attr == "externalid" and not sub:
        return t.c.external_id == value
    if attr == "displayname" and not sub:
        return t.c.display_name_ci == value.lower()
    if attr == "id" and not sub:
        return t.c.id == value
    if attr == "emails" and sub in ("", "value"):
        return t.c.emails_ci.contains([value.lower()])
    return None


def _narrow(node: Any, value_path: AttrPath | None = None) -> ColumnElement[bool] | None:
    if isinstance(node, Comparison):
        if node.op != CompareOperator.eq or not isinstance(node.value, str):
            return None
        path = node.attr_path
        if path.uri and not path.uri.endswith(":User") and not path.uri.endswith(":Group"):
            return None
        if value_path is not None:
            return _column_condition(value_path.attr, path.attr, node.value) if not path.sub_attr else None
        return _column_condition(path.attr, path.sub_attr, node.value)
    if isinstance(node, ValuePath):
        return _narrow(node.val_filter, node.attr_path)
    if isinstance(node, LogicalExpr):
        parts = [_narrow(term, value_path) for term in node.terms]
        known = [p for p in parts if p is not None]
        if node.op == LogicalOperator.and_:
            return and_(*known) if known else None
        if len(known) == len(parts):  # an OR narrows only when each of its terms does
            return or_(*known)
    return None


def narrowing(scim_filter: ScimFilter[Any] | None) -> ColumnElement[bool] | None:
    """An indexed condition that every match satisfies, or None when only a scan will do."""
    if scim_filter is None:
        return None
    return _narrow(scim_filter.ast)


def lowered(values: list[str]) -> list[str]:
    return sorted({v.lower() for v in values if v})

