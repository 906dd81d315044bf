"""Input rules for what the SCIM storage may write: checked on the resource as it would be stored.

A User has a non-blank `userName` (RFC 7643 §4.1.1 makes it required; "" or "  " is no name);
no value holds U+0000 (PostgreSQL's text and jsonb cannot store it); no multi-valued attribute
holds more values than the cost limits allow; a group never contains itself, directly or
through nested groups. Each is `400 invalidValue`, raised before anything is written.
Email values are not checked here: IdPs' own test collections send values that are not addresses.
"""

from typing import Any

from scim2_models import InvalidValueException
from sqlalchemy import Connection, text

from ingest.scim.cost import CostLimits

# The groups below the given ones (through groups that are members); UNION stops at stored cycles.
_BELOW = text(
    """
    WITH RECURSIVE below(id) AS (
        SELECT unnest(CAST(:ids AS text[]))
        UNION
        SELECT m.member_id FROM scim_group_members m JOIN below b ON m.group_id = b.id
        WHERE m.org_id = CAST(:org AS uuid) AND m.member_type = 'Group'
    )
    SELECT 1 FROM below WHERE id = :target LIMIT 1
    """
)


def has_nul(value: Any) -> bool:
    """Whether a JSON value holds U+0000, which PostgreSQL's text and jsonb cannot store."""
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, str):
            if "\x00" in current:
                return True
        elif isinstance(current, dict):
            stack.extend(current.keys())
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
    return False


def check_stored(resource_type: str, data: dict[str, Any], cost: CostLimits | None) -> None:
    """Refuse a resource body (as dumped for storage, members included) that breaks a rule."""
    if has_nul(data):
        raise InvalidValueException(detail="values cannot contain the NUL character (U+0000)")
    if resource_type == "User" and not str(data.get("userName") or "").strip():
        raise InvalidValueException(detail="userName must not be empty or blank (RFC 7643 §4.1.1)")
    if cost is not None:
        cost.check_values(data)


def refuse_cycle(conn: Connection, org_id: str, group_id: str, added_groups: list[str]) -> None:
    """A group may not gain itself as a member, nor a group that (through its nested groups) contains it.

    The caller holds this group's row FOR UPDATE and the added groups' rows FOR SHARE, so two
    concurrent writes that would close a cycle between them are serialised (or one loses a deadlock).
    """
    if group_id in added_groups:
        raise InvalidValueException(detail="a group cannot be a member of itself")
    if added_groups and conn.execute(_BELOW, {"ids": added_groups, "org": org_id, "target": group_id}).first():
        raise InvalidValueException(detail="these members would make the group a member of itself, through nested groups")
