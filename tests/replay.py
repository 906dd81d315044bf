"""Replay a recorded IdP request sequence against a SCIM service, and check each answer.

A sequence is a JSON object ``{"name": ..., "steps": [...]}`` (or a bare list
of steps). Each step is::

    {"name": "create-user",
     "request": {"method": "POST", "path": "/Users", "headers": {...}, "body": {...}},
     "expect": {"status": 201, "json": {...}},
     "capture": {"user_id": "id"}}

``path`` is relative to the SCIM root: pass an ``httpx.Client`` whose
``base_url`` is that root. ``{name}`` placeholders in the path, the headers,
the body and the expected JSON are filled from earlier captures. ``capture``
maps a name to a dotted path into the response JSON. ``request.raw`` sends a
string as the body as is (for malformed JSON). Bodies are sent unchanged: the
server does any normalization. Without a Content-Type header, a body is sent
as ``application/scim+json``.

``expect.json`` is a subset: every key it names must be in the response with a
matching value; dicts match recursively, lists must have the same length and
match item by item, and any other value must be equal.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def replay(client: httpx.Client, sequence: dict | list) -> None:
    """Run every step of ``sequence`` in order; raise AssertionError at the first mismatch."""
    steps = sequence["steps"] if isinstance(sequence, dict) else sequence
    label = sequence.get("name", "sequence") if isinstance(sequence, dict) else "sequence"
    captures: dict[str, str] = {}
    for index, step in enumerate(steps, start=1):
        where = f"{label} step {index} {step.get('name', '')!r}"
        response = _send(client, _fill(step["request"], captures, where))
        _check(response, _fill(step.get("expect", {}), captures, where), where)
        for name, dotted in step.get("capture", {}).items():
            captures[name] = _capture(response, dotted, where)


def _send(client: httpx.Client, request: dict) -> httpx.Response:
    headers = dict(request.get("headers") or {})
    content: str | None = None
    if "raw" in request:
        content = request["raw"]
    elif "body" in request:
        content = json.dumps(request["body"])
    if content is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/scim+json"
    path = request["path"].lstrip("/")
    return client.request(request["method"], path, headers=headers, content=content)


def _check(response: httpx.Response, expect: dict, where: str) -> None:
    detail = f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text[:500]}"
    if "status" in expect:
        assert response.status_code == expect["status"], (
            f"{where}: expected status {expect['status']}, got {detail}"
        )
    if "json" in expect:
        try:
            actual = response.json()
        except ValueError:
            raise AssertionError(f"{where}: expected a JSON body, got {detail}") from None
        problem = _mismatch(expect["json"], actual, "$")
        assert problem is None, f"{where}: {problem}; response was {detail}"


def _mismatch(expected: Any, actual: Any, at: str) -> str | None:
    """Return why ``actual`` does not contain ``expected``, or None if it does."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{at} should be an object, is {actual!r}"
        for key, value in expected.items():
            if key not in actual:
                return f"{at}.{key} is missing"
            problem = _mismatch(value, actual[key], f"{at}.{key}")
            if problem:
                return problem
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return f"{at} should be a list of {len(expected)} items, is {actual!r}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            problem = _mismatch(e, a, f"{at}[{i}]")
            if problem:
                return problem
        return None
    if expected != actual:
        return f"{at} should be {expected!r}, is {actual!r}"
    return None


def _capture(response: httpx.Response, dotted: str, where: str) -> str:
    value: Any = response.json()
    for part in dotted.split("."):
        if isinstance(value, list):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise AssertionError(f"{where}: cannot capture {dotted!r} from {response.text[:500]}")
    return str(value)


def _fill(value: Any, captures: dict[str, str], where: str) -> Any:
    """Replace ``{name}`` placeholders in every string of ``value``."""
    if isinstance(value, dict):
        return {_fill(k, captures, where): _fill(v, captures, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, captures, where) for v in value]
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in captures:
                raise AssertionError(f"{where}: placeholder {{{name}}} was never captured")
            return captures[name]

        return _PLACEHOLDER.sub(substitute, value)
    return value
