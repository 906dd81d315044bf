"""Hypothesis strategies for hostile SCIM requests: odd methods, paths, ids, filters, attribute
lists, PATCH operations, bodies and content types, aimed at one org's endpoint.

The values mix what real IdPs send (so some requests succeed and change state) with what
nobody should (so the refusals are exercised), plus SQL injection payloads everywhere a
string goes.
"""

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"

SQL_INJECTIONS = [
    "' OR '1'='1",
    "' OR 1=1 --",
    '" OR ""="',
    "'; DROP TABLE scim_resources; --",
    "x'); DELETE FROM outbox; --",
    "' UNION SELECT token_hash, NULL FROM scim_tokens --",
    "1' AND (SELECT pg_sleep(0)) IS NULL --",
    "%' OR org_id IS NOT NULL --",
    "%s",
    "%(org_id_1)s",
    ":org_id",
    "$1",
    "\\'",
    "*/ OR 1=1 /*",
    "admin'--",
    "' OR org_id <> org_id OR '",
    "\x00",
    "a\x00' OR 1=1 --",
    "\u2019 OR 1=1 --",
    "{\"$ne\": null}",
]

ATTRIBUTES = [
    "userName", "username", "USERNAME", "id", "externalId", "displayName", "title", "active", "nickName",
    "name", "name.givenName", "name.familyName", "emails", "emails.value", "emails.type", "emails.primary",
    "phoneNumbers.value", "addresses.locality", "members", "members.value", "members.display", "groups",
    "groups.value", "meta", "meta.lastModified", "meta.created", "meta.resourceType", "meta.version", "schemas",
    f"{ENTERPRISE}:employeeNumber", f"{ENTERPRISE}:manager.value", f"{ENTERPRISE}:department",
    f"{USER}:userName", "urn:unknown:thing:attr", "password", "x", "a.b.c", "emails[type eq \"work\"].value",
]

OPERATORS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "EQ", "Eq", "pr", "xx", "="]


@dataclass
class Ids:
    """Ids worth aiming at: the fuzzed org's own, and another org's (which must stay out of reach)."""

    own: list[str]
    foreign: list[str]
    extra: list[str] = field(default_factory=list)


def _texts(max_size: int) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(SQL_INJECTIONS),
        st.text(max_size=max_size),
        st.text(alphabet=st.characters(codec="ascii"), max_size=max_size),
        st.sampled_from(["", " ", "ann@example.com", "Work", "work", "True", "False", "null", "2024-01-01T00:00:00Z"]),
    )


TEXTS = _texts(40)
SHORT_TEXTS = _texts(12)

# a comparison value as a filter carries it (a JSON literal), or something that is not one
JSON_LITERALS = st.one_of(
    TEXTS.map(json.dumps),
    TEXTS.map(lambda s: json.dumps(s, ensure_ascii=False)),
    st.sampled_from(["true", "false", "null", "42", "-1.5e300", "1e999", '"unterminated', "'single'", "bare"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)

JSON_VALUES = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False), TEXTS,
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.sampled_from(ATTRIBUTES), SHORT_TEXTS), inner, max_size=4)
    ),
    max_leaves=8,
)

CONTENT_TYPES = [
    "application/scim+json", "application/json", "application/scim+json; charset=utf-8", "application/JSON",
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml",
    "", "application/json; charset=latin-1", "*/*",
]


@dataclass
class ScimCall:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes | None

    def describe(self) -> str:
        body = self.body[:300] if self.body else None
        return f"{self.method} {self.path} params={self.params!r} headers={self.headers!r} body={body!r}"


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8", "surrogatepass")


class ScimStrategies:
    """Strategies built once for a set of ids (building Hypothesis strategies is not free)."""

    def __init__(self, ids: Ids):
        known = ids.own + ids.foreign + ids.extra
        self.own_user = ids.own[0]
        self.ids = st.one_of(
            st.sampled_from(ids.own),  # the org's own resources, so writes reach real rows
            st.sampled_from(known),
            st.sampled_from(SQL_INJECTIONS),
            st.uuids().map(lambda u: u.hex),
            st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="/?#"), min_size=1, max_size=40),
        )
        attribute = st.one_of(st.sampled_from(ATTRIBUTES), SHORT_TEXTS)
        comparison = st.one_of(
            st.builds(lambda a, o, v: f"{a} {o} {v}", attribute, st.sampled_from(OPERATORS), JSON_LITERALS),
            st.builds(lambda a: f"{a} pr", attribute),
            st.sampled_from(known).map(lambda i: f'id eq "{i}"'),
            st.builds(
                lambda a, o, v: f"{a}[value {o} {v}]",
                st.sampled_from(["emails", "members", "phoneNumbers", "addresses"]), st.sampled_from(OPERATORS), JSON_LITERALS,
            ),
        )
        combined = st.recursive(
            comparison,
            lambda inner: st.one_of(
                st.builds(lambda a, b: f"{a} and {b}", inner, inner),
                st.builds(lambda a, b: f"{a} or {b}", inner, inner),
                st.builds(lambda a: f"not ({a})", inner),
                st.builds(lambda a: f"({a})", inner),
            ),
            max_leaves=6,
        )
        self.filters = st.one_of(combined, TEXTS, st.sampled_from(SQL_INJECTIONS).map(lambda s: f'userName eq "{s}"'))
        some_id = st.sampled_from(known)
        self.users = st.builds(
            lambda body, extra: {**body, **extra},
            st.fixed_dictionaries(
                {"schemas": st.one_of(st.just([USER]), st.just([USER, ENTERPRISE]), JSON_VALUES)},
                optional={
                    "userName": st.one_of(TEXTS, TEXTS, JSON_VALUES),
                    "externalId": TEXTS,
                    "displayName": TEXTS,
                    "active": st.one_of(st.booleans(), st.sampled_from(["True", "False", "yes", ""]), JSON_VALUES),
                    "emails": st.one_of(
                        st.lists(
                            st.fixed_dictionaries({"value": TEXTS}, optional={"type": TEXTS, "primary": st.booleans()}),
                            max_size=3,
                        ),
                        JSON_VALUES,
                    ),
                    "name": st.one_of(st.fixed_dictionaries({}, optional={"givenName": TEXTS, "familyName": TEXTS}), JSON_VALUES),
                    "groups": JSON_VALUES,
                    "id": st.one_of(some_id, TEXTS),
                    "meta": JSON_VALUES,
                    "password": TEXTS,
                    ENTERPRISE: st.one_of(
                        st.fixed_dictionaries({}, optional={"manager": st.one_of(TEXTS, some_id)}), JSON_VALUES
                    ),
                },
            ),
            st.dictionaries(SHORT_TEXTS, JSON_VALUES, max_size=2),
        )
        # well-formed users with odd but typed values: these get created, so the writes are fuzzed too
        serial = itertools.count()
        self.valid_users = st.builds(
                lambda name, extra: {"schemas": [USER], "userName": f"{name}-{next(serial)}@example.com", **extra},
                st.uuids().map(lambda u: u.hex[:12]),
                st.fixed_dictionaries(
                    {},
                    optional={
                        "displayName": TEXTS, "externalId": TEXTS, "title": TEXTS, "active": st.booleans(),
                        "emails": st.lists(
                            st.fixed_dictionaries({"value": st.emails(), "type": st.sampled_from(["work", "home"])}), max_size=2
                        ),
                        "name": st.fixed_dictionaries({}, optional={"givenName": TEXTS, "familyName": TEXTS}),
                    },
                ),
        )
        self.users = st.one_of(self.users, self.valid_users)
        member = st.fixed_dictionaries(
            {"value": st.one_of(some_id, TEXTS)},
            optional={"display": TEXTS, "type": st.sampled_from(["User", "Group", "Robot", ""]), "$ref": TEXTS},
        )
        members = st.one_of(st.lists(member, max_size=3), JSON_VALUES)
        self.groups = st.fixed_dictionaries(
            {"schemas": st.one_of(st.just([GROUP]), JSON_VALUES)},
            optional={
                "displayName": st.one_of(TEXTS, JSON_VALUES), "externalId": TEXTS, "members": members,
                "id": st.one_of(some_id, TEXTS),
            },
        )
        path = st.one_of(
            st.sampled_from(ATTRIBUTES),
            some_id.map(lambda i: f'members[value eq "{i}"]'),
            st.sampled_from(SQL_INJECTIONS).map(lambda s: f'members[value eq "{s}"]'),
            self.filters.map(lambda f: f"emails[{f}].value"),
            TEXTS,
        )
        operation = st.fixed_dictionaries(
            {"op": st.one_of(
                st.sampled_from(["add", "replace", "remove", "Add", "Replace", "REMOVE", "copy", "test"]), SHORT_TEXTS
            )},
            optional={"path": path, "value": st.one_of(members, self.users, JSON_VALUES, TEXTS)},
        )
        self.patches = st.fixed_dictionaries(
            {
                "schemas": st.one_of(st.just([PATCH_OP]), JSON_VALUES),
                "Operations": st.one_of(st.lists(operation, max_size=3), JSON_VALUES),
            }
        )
        number = st.integers(min_value=-5, max_value=2**70)
        attributes = st.lists(st.sampled_from(ATTRIBUTES), max_size=3)
        self.searches = st.fixed_dictionaries(
            {"schemas": st.one_of(st.just([SEARCH]), JSON_VALUES)},
            optional={
                "filter": self.filters, "attributes": attributes, "excludedAttributes": st.one_of(attributes, JSON_VALUES),
                "startIndex": st.one_of(number, JSON_VALUES), "count": st.one_of(number, JSON_VALUES),
                "sortBy": st.one_of(st.sampled_from(ATTRIBUTES), TEXTS),
                "sortOrder": st.one_of(st.sampled_from(["ascending", "descending"]), TEXTS),
            },
        )
        listed = attributes.map(",".join) | TEXTS
        self.queries = st.fixed_dictionaries(
            {},
            optional={
                "filter": self.filters, "attributes": listed, "excludedAttributes": listed,
                "count": st.one_of(number.map(str), SHORT_TEXTS), "startIndex": st.one_of(number.map(str), SHORT_TEXTS),
                "sortBy": st.one_of(st.sampled_from(ATTRIBUTES), TEXTS),
                "sortOrder": st.one_of(st.sampled_from(["ascending", "descending"]), TEXTS), "cursor": TEXTS,
            },
        )
        self.calls = self._calls()

    def _calls(self) -> st.SearchStrategy[ScimCall]:
        none = st.none()
        # (method, path with {id}, body): what IdPs do, then anything at all
        shapes = [
            ("POST", "/Users", self.users), ("POST", "/Groups", self.groups),
            ("PUT", "/Users/{id}", self.users), ("PUT", "/Groups/{id}", self.groups),
            ("PATCH", "/Users/{id}", self.patches), ("PATCH", "/Groups/{id}", self.patches),
            ("PATCH", "/Groups/{id}", self.patches), ("DELETE", "/Users/{id}", none), ("DELETE", "/Groups/{id}", none),
            ("GET", "/Users", none), ("GET", "/Groups", none), ("GET", "", none), ("GET", "/Users/{id}", none),
            ("GET", "/Groups/{id}", none), ("POST", "/Users/.search", self.searches), ("POST", "/.search", self.searches),
            ("POST", "/Groups/.search", self.searches), ("GET", "/Schemas", none), ("GET", "/ResourceTypes/User", none),
            ("GET", "/ServiceProviderConfig", none), ("POST", "/Bulk", JSON_VALUES), ("GET", "/Me", none),
        ]
        anything = st.tuples(
            st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
            st.sampled_from(
                ["/Users", "/Groups", "/Users/{id}", "/Groups/{id}", "/{id}", "/Users/{id}/x", "/Me", "/Schemas/{id}"]
            ),
            st.sampled_from([self.users, self.groups, self.patches, self.searches, JSON_VALUES]),
        )
        valid_patch = st.fixed_dictionaries(
            {"schemas": st.just([PATCH_OP]), "Operations": st.lists(
                st.fixed_dictionaries({"op": st.sampled_from(["replace", "Replace", "add"]),
                                       "path": st.sampled_from(["displayName", "title", "active"]),
                                       "value": st.one_of(TEXTS, st.booleans())}), min_size=1, max_size=2)}
        )
        writes = [("POST", "/Users", self.valid_users), ("PATCH", f"/Users/{self.own_user}", valid_patch)]
        shape = st.one_of(st.sampled_from(shapes), st.sampled_from(writes), anything)

        @st.composite
        def call(draw: st.DrawFn) -> ScimCall:
            method, template, bodies = draw(shape)
            path = template.replace("{id}", draw(self.ids)) if "{id}" in template else template
            kind = draw(st.sampled_from(["json", "json", "json", "json", "none", "raw", "garbled"]))
            body: bytes | None = None
            if kind == "json" and bodies is not none:
                body = _encode(draw(bodies))
            elif kind == "raw":
                body = draw(st.binary(max_size=200))
            elif kind == "garbled":
                encoded = _encode(draw(bodies))
                cut = draw(st.integers(min_value=0, max_value=len(encoded)))
                body = encoded[:cut] + draw(st.sampled_from([b"", b"\x00", b"\xff\xfe", b"}", b",", b'"', b'\\ud800"']))
            headers = {}
            content_type = draw(st.sampled_from(CONTENT_TYPES[:2] * 4 + CONTENT_TYPES))
            if content_type:
                headers["Content-Type"] = content_type
            if draw(st.integers(min_value=0, max_value=3)) == 0:
                headers["If-Match"] = draw(st.sampled_from(['W/"1"', 'W/"2"', "*", '"x"', 'W/"99999999999999999999"', "garbage"]))
            params = draw(self.queries) if method == "GET" or draw(st.integers(min_value=0, max_value=5)) == 0 else {}
            return ScimCall(method, path, params, headers, body)

        return call()
