"""The SCIM cost limits and the request deadline, without a database."""

import pytest
from scim2_models import InvalidValueException

from ingest.scim.cost import CostLimits
from ingest.scim.deadline import Deadline, DeadlineExceeded

pytestmark = pytest.mark.unit

LIMITS = CostLimits(max_attributes=3, max_values=2, max_members=4, max_operations=2)


def emails(n: int) -> list[dict[str, str]]:
    return [{"value": f"a{i}@example.com"} for i in range(n)]


def test_attribute_names_are_counted_in_queries_and_search_bodies():
    LIMITS.check_query({"attributes": "a,b,c", "excludedAttributes": "x"})
    with pytest.raises(InvalidValueException, match="names 4 attributes"):
        LIMITS.check_query({"ATTRIBUTES": "a,b,c,d"})
    with pytest.raises(InvalidValueException):
        LIMITS.check_search_body({"excludedAttributes": ["a", "b", "c", "d"]})
    LIMITS.check_search_body([1, 2, 3, 4, 5])  # not a search body: the service says why


@pytest.mark.parametrize(
    "body",
    [
        {"emails": emails(3)},
        {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"roles": emails(3)}},
        {"members": [{"value": str(i)} for i in range(5)]},
    ],
)
def test_a_resource_over_a_list_limit_is_refused(body):
    with pytest.raises(InvalidValueException):
        LIMITS.check_body("POST", body)


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "add", "path": "emails", "value": emails(3)},
        {"op": "add", "value": {"emails": emails(3)}},
        {"op": "add", "path": "members", "value": [{"value": str(i)} for i in range(5)]},
        {"op": "add", "path": "urn:ietf:params:scim:schemas:core:2.0:Group:members", "value": [{"value": "x"}] * 5},
    ],
)
def test_patch_values_are_bounded_by_the_attribute_they_target(operation):
    with pytest.raises(InvalidValueException):
        LIMITS.check_body("PATCH", {"Operations": [operation]})


def test_members_get_the_larger_limit_and_operations_their_own():
    LIMITS.check_body("PATCH", {"Operations": [{"op": "add", "path": "members", "value": [{"value": str(i)} for i in range(4)]}]})
    LIMITS.check_body("PUT", {"members": [{"value": str(i)} for i in range(4)], "emails": emails(2)})
    with pytest.raises(InvalidValueException, match="3 PATCH operations"):
        LIMITS.check_body("PATCH", {"operations": [{"op": "remove", "path": "title"}] * 3})


def test_the_deadline_passes_on_its_clock():
    now = [100.0]
    deadline = Deadline(2.0, clock=lambda: now[0])
    deadline.check()
    assert deadline.remaining() == 2.0
    now[0] = 102.5
    with pytest.raises(DeadlineExceeded) as raised:
        deadline.check()
    assert raised.value.status == 503 and "2 s deadline" in str(raised.value.detail)
