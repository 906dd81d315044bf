"""Limits on SCIM filters, PATCH paths and startIndex (ingest/scim/guards.py)."""

import pytest
from scim2_models import InvalidFilterException, InvalidPathException, InvalidValueException, ScimFilter

from ingest.scim.guards import MAX_START_INDEX, Limits, bracket_depth, logical_depth

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("expression", "brackets", "logic"),
    [
        ('userName eq "a"', 0, 0),
        ('userName eq "a" and title pr', 0, 1),
        ('(userName eq "a" or title pr) and active eq true', 1, 2),
        ("not (title pr)", 1, 1),
        ('emails[type eq "work" and value co "(("]', 1, 2),  # brackets inside a string literal do not count
        ('userName eq "\\"(("', 0, 0),  # nor do escaped quotes end the literal
        ("((((title pr))))", 4, 0),
    ],
)
def test_depths(expression, brackets, logic):
    assert bracket_depth(expression) == brackets
    assert logical_depth(ScimFilter(expression).ast) == logic


def nested(depth: int) -> str:
    return "not (" * depth + "title pr" + ")" * depth


def test_a_filter_at_the_limits_passes_and_one_past_them_is_invalid_filter():
    limits = Limits(max_length=60, max_depth=3)
    limits.check_query({"filter": nested(3)})
    with pytest.raises(InvalidFilterException, match="nests 4 levels deep; at most 3"):
        limits.check_query({"filter": nested(4)})
    with pytest.raises(InvalidFilterException, match="nests 4 levels deep"):
        limits.check_query({"filter": "((((title pr))))"})
    with pytest.raises(InvalidFilterException, match="nests 5 levels deep"):  # not > and > not > or > not
        limits.check_query({"filter": "not (a pr and not (b pr or not (c pr)))"})
    limits.check_query({"filter": 'userName eq "' + "x" * 46 + '"'})  # 60 characters
    with pytest.raises(InvalidFilterException, match="61 characters long; at most 60"):
        limits.check_query({"filter": 'userName eq "' + "x" * 47 + '"'})


def test_limits_apply_to_search_bodies_and_patch_paths():
    limits = Limits(max_length=100, max_depth=2)
    with pytest.raises(InvalidFilterException):
        limits.check_search_body(b'{"filter": "not (not (not (title pr)))"}')
    limits.check_search_body(b"not json: the service says so")
    with pytest.raises(InvalidPathException, match="nests 3 levels deep"):
        limits.check_patch_body({"Operations": [{"op": "remove", "path": "members[((value eq \"x\"))]"}]})
    with pytest.raises(InvalidPathException, match="characters long"):
        limits.check_patch_body({"Operations": [{"op": "replace", "path": "x" * 101}]})
    limits.check_patch_body({"Operations": "not a list"})  # malformed shapes are the library's to refuse


def test_query_parameter_names_are_case_insensitive_and_start_index_is_bounded():
    limits = Limits(max_length=10, max_depth=5)
    with pytest.raises(InvalidFilterException):
        limits.check_query({"FILTER": "userName eq \"long\""})
    limits.check_query({"startIndex": str(MAX_START_INDEX), "count": "99999999999999999999"})
    with pytest.raises(InvalidValueException, match="startIndex must be at most"):
        limits.check_query({"startIndex": "99999999999999999999"})
    with pytest.raises(InvalidValueException):
        limits.check_search_body(b'{"startIndex": 99999999999999999999}')
    limits.check_query({"startIndex": "garbage"})  # not a number: the service answers invalidValue
