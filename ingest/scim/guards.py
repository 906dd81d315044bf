"""Limits on what a SCIM request may ask for, checked before the library parses or the storage runs it.

A filter longer than `max_filter_length` characters, or nested deeper than `max_filter_depth`,
is `400 invalidFilter` (RFC 7644 §3.4.2.2 and §3.12); a PATCH path over the same limits is
`400 invalidPath`. The depth of an expression is the deeper of its bracket nesting (`(...)`
and `[...]`, outside string literals) and its and/or/not nesting (`a or b and c` is 2).
A `startIndex` beyond `MAX_START_INDEX` is `400 invalidValue`: no org holds that many
resources, and the echoed value must fit a JSON integer every client can read.
`count` needs no check here: scim2-server bounds it by `filter.maxResults`.
"""

import json
from collections.abc import Mapping
from typing import Any

from scim2_models import InvalidFilterException, InvalidPathException, InvalidValueException, ScimFilter
from scim2_models.path import LogicalExpr, Not, ValuePath

MAX_START_INDEX = 2**31 - 1


class Limits:
    """The configured limits (`core.settings.Settings`: `max_filter_length`, `max_filter_depth`)."""

    def __init__(self, max_length: int, max_depth: int):
        self.max_length = max_length
        self.max_depth = max_depth

    def check_query(self, query: Mapping[str, str]) -> None:
        """The search parameters of a GET (RFC 7644 §3.4.2)."""
        self._check_search(query)

    def check_search_body(self, body: bytes) -> None:
        """The parameters of a POST `.search` (RFC 7644 §3.4.3); an unreadable body is left to the service."""
        try:  # the standard parser: orjson refuses integers beyond 64 bits, which is the point here
            payload = json.loads(body) if body else None
        except (ValueError, RecursionError):
            return
        if isinstance(payload, dict):
            self._check_search(payload)

    def check_patch_body(self, body: Any) -> None:
        """The paths of a PATCH's operations (RFC 7644 §3.5.2)."""
        operations = body.get("Operations") if isinstance(body, dict) else None
        for operation in operations if isinstance(operations, list) else []:
            path = operation.get("path") if isinstance(operation, dict) else None
            if isinstance(path, str):
                problem = self._problem(path, "path")
                if problem:
                    raise InvalidPathException(path=path[:100], detail=problem)

    def _check_search(self, params: Mapping[str, Any]) -> None:
        found = {str(k).casefold(): v for k, v in params.items()}
        expression = found.get("filter")
        if isinstance(expression, str):
            problem = self._problem(expression, "filter")
            if problem:
                raise InvalidFilterException(filter=expression[:100], detail=problem)
        start = found.get("startindex")
        if isinstance(start, str) and start.strip().lstrip("+-").isdigit():
            start = int(start)
        if isinstance(start, int) and not isinstance(start, bool) and start > MAX_START_INDEX:
            raise InvalidValueException(detail=f"startIndex must be at most {MAX_START_INDEX}")

    def _problem(self, expression: str, what: str) -> str | None:
        if len(expression) > self.max_length:
            return f"the {what} is {len(expression)} characters long; at most {self.max_length} are allowed"
        depth = bracket_depth(expression)
        if depth <= self.max_depth and what == "filter":
            try:
                depth = max(depth, logical_depth(ScimFilter(expression).ast))
            except (InvalidFilterException, ValueError):
                return None  # not a filter at all: the service says why
        if depth > self.max_depth:
            return f"the {what} nests {depth} levels deep; at most {self.max_depth} are allowed"
        return None


def bracket_depth(expression: str) -> int:
    """The deepest nesting of parentheses and square brackets outside string literals."""
    depth = deepest = 0
    in_string = escaped = False
    for char in expression:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "([":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]":
            depth = max(0, depth - 1)
    return deepest


def logical_depth(node: Any) -> int:
    """How many and/or/not/[...] expressions nest in a parsed filter (scim2-models' tree)."""
    deepest, stack = 0, [(node, 0)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, LogicalExpr):
            stack.extend((term, depth + 1) for term in current.terms)
        elif isinstance(current, Not):
            stack.append((current.expr, depth + 1))
        elif isinstance(current, ValuePath):
            stack.append((current.val_filter, depth + 1))
        else:
            deepest = max(deepest, depth)
    return deepest
