"""Cost limits on a SCIM request: how many attribute names, values, members and PATCH operations it may carry.

Checked on the raw JSON before scim2-models parses it (a 10,000-email body is refused in
milliseconds, not validated address by address), and again on the resource a write would
store (so PATCH adds cannot grow an attribute past the limit one request at a time).
Every refusal is `400 invalidValue` and changes nothing. The limits are `scim_max_*` in
`core.settings.Settings`; docs/operations.md lists them.
"""

from collections.abc import Mapping
from typing import Any

from scim2_models import InvalidValueException, TooManyException

_ATTRIBUTE_PARAMETERS = ("attributes", "excludedattributes")


class CostLimits:
    """The configured bounds; each `check_*` raises InvalidValueException when one is passed."""

    def __init__(self, max_attributes: int, max_values: int, max_members: int, max_operations: int):
        self.max_attributes = max_attributes
        self.max_values = max_values
        self.max_members = max_members
        self.max_operations = max_operations

    def check_query(self, query: Mapping[str, str]) -> None:
        """`attributes` and `excludedAttributes` of a query string hold at most `max_attributes` names."""
        for key, value in query.items():
            if key.casefold() in _ATTRIBUTE_PARAMETERS:
                self._check_attributes(key, value.split(","))

    def check_search_body(self, payload: Any) -> None:
        """The same bound on the attribute lists of a POST `.search` body (RFC 7644 §3.4.3)."""
        if not isinstance(payload, dict):
            return
        for key, value in payload.items():
            if str(key).casefold() in _ATTRIBUTE_PARAMETERS:
                if isinstance(value, str):
                    value = value.split(",")
                if isinstance(value, list):
                    self._check_attributes(str(key), value)

    def check_body(self, method: str, body: Any) -> None:
        """A POST/PUT resource or a PATCH request (RFC 7644 §3.5.2) within the value, member and operation bounds."""
        if not isinstance(body, dict):
            return
        if method.upper() != "PATCH":
            self.check_values(body)
            return
        for key, operations in body.items():
            if str(key).casefold() != "operations" or not isinstance(operations, list):
                continue
            if len(operations) > self.max_operations:
                raise InvalidValueException(
                    detail=f"the request has {len(operations)} PATCH operations; at most {self.max_operations} are allowed"
                )
            for operation in operations:
                if isinstance(operation, dict):
                    self._check_operation(operation)

    def check_values(self, resource: Mapping[str, Any], attribute: str = "") -> None:
        """No list in a resource (at any depth) is longer than its bound: `members` lists
        `max_members`, any other multi-valued attribute `max_values`."""
        stack: list[tuple[str, Any]] = [(attribute, dict(resource))]
        while stack:
            name, value = stack.pop()
            if isinstance(value, list):
                self._check_list(name, len(value))
                stack.extend((name, item) for item in value)
            elif isinstance(value, dict):
                stack.extend((str(key), item) for key, item in value.items())

    def check_stored(self, resource_type: str, data: Mapping[str, Any]) -> None:
        """A stored resource is within the bounds (its attributes and its extensions' attributes:
        cheap enough for every read); raises TooManyException for one stored before them, which
        would cost the server seconds to serve (every value is validated and copied)."""
        for name, value in data.items():
            values = [(name, value)] if isinstance(value, list) else []
            if isinstance(value, dict):
                values = [(f"{name}:{key}", item) for key, item in value.items() if isinstance(item, list)]
            for attribute, items in values:
                members = attribute.casefold() == "members" or attribute.casefold().endswith(":members")
                limit = self.max_members if members else self.max_values
                if len(items) > limit:
                    raise TooManyException(
                        detail=f"this {resource_type} was stored before the server's limits: {attribute} holds {len(items)} "
                        f"values, more than the {limit} it stores or serves; replace it (PUT) or delete it"
                    )

    def _check_operation(self, operation: dict[str, Any]) -> None:
        value = next((v for k, v in operation.items() if str(k).casefold() == "value"), None)
        path = next((v for k, v in operation.items() if str(k).casefold() == "path"), None)
        name = _attribute_of(path) if isinstance(path, str) else ""
        self.check_values({name: value} if name else value if isinstance(value, dict) else {"value": value})

    def _check_list(self, name: str, length: int) -> None:
        members = name.casefold() == "members" or name.casefold().endswith(":members")
        limit = self.max_members if members else self.max_values
        if length > limit:
            raise InvalidValueException(detail=f"{name or 'a list'} has {length} values; at most {limit} are allowed")

    def _check_attributes(self, key: str, names: list[Any]) -> None:
        if len(names) > self.max_attributes:
            raise InvalidValueException(detail=f"{key} names {len(names)} attributes; at most {self.max_attributes} are allowed")


def _attribute_of(path: str) -> str:
    """The attribute a PATCH path targets: `members[value eq "x"]` and `...:2.0:Group:members` are `members`."""
    head = path.split("[", 1)[0]
    if head.lower().startswith("urn:"):
        head = head.rsplit(":", 1)[-1]
    return head.split(".", 1)[0]
