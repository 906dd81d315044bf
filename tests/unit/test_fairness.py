"""An org's fair share of one ingest process (ingest/scim/fairness.py), on a fake clock."""

import pytest

from ingest.scim.fairness import CONTENDED_SECONDS, OrgFairness
from ingest.scim.limits import RateLimitedException

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _fair(clock: Clock, *, in_flight: int = 4, rate: float = 0.25, burst: float = 1.0) -> OrgFairness:
    return OrgFairness(in_flight, rate, burst, clock=clock)


def _request(fair: OrgFairness, org: str, cpu: float) -> None:
    fair.enter(org)
    fair.leave(org, cpu)


def test_an_org_alone_is_never_refused_and_its_debt_stays_within_one_burst():
    clock = Clock()
    fair = _fair(clock)
    for _ in range(10):
        _request(fair, "sync", 2.0)  # far over its share: nobody else wants the process
    assert fair.refusal("sync") is None
    clock.now += 0.5
    _request(fair, "other", 0.001)  # now someone does
    refused = fair.refusal("sync")
    assert refused is not None and refused.status == 429
    assert refused.retry_after == 4  # its debt was capped at one burst: (1.0 - 0.5 s x 0.25/s) / 0.25/s = 3.5 s

def test_under_contention_an_org_in_debt_is_refused_until_its_budget_refills():
    clock = Clock()
    fair = _fair(clock)
    _request(fair, "victim", 0.01)
    _request(fair, "hostile", 3.0)  # 1.0 - 3.0 = -2.0 CPU-seconds: uncapped, someone else is here
    refused = fair.refusal("hostile")
    assert refused is not None and refused.retry_after == 8  # 2.0 / 0.25
    with pytest.raises(RateLimitedException):
        fair.enter("hostile")
    _request(fair, "victim", 0.01)  # the other org is served meanwhile
    clock.now += 7.9
    _request(fair, "victim", 0.01)
    assert fair.refusal("hostile") is not None  # -2.0 + 7.9 * 0.25 = -0.025
    clock.now += 0.2
    assert fair.refusal("hostile") is None
    _request(fair, "hostile", 0.01)


def test_under_contention_an_org_holds_at_most_its_requests_in_progress():
    clock = Clock()
    fair = _fair(clock, in_flight=2)
    _request(fair, "victim", 0.0)
    fair.enter("hostile")
    fair.enter("hostile")
    with pytest.raises(RateLimitedException) as refused:
        fair.enter("hostile")
    assert refused.value.retry_after == 1 and "in progress" in str(refused.value.detail)
    fair.enter("victim")  # the other org still gets in
    fair.leave("hostile", 0.0)
    fair.enter("hostile")  # a slot is free again


def test_contention_ends_when_the_other_org_has_been_quiet_for_a_while():
    clock = Clock()
    fair = _fair(clock, in_flight=1)
    _request(fair, "victim", 0.0)
    fair.enter("hostile")
    with pytest.raises(RateLimitedException):
        fair.enter("hostile")
    clock.now += CONTENDED_SECONDS + 0.1
    fair.enter("hostile")  # alone again: no cap


def test_another_org_with_a_request_in_progress_contends_however_long_it_takes():
    clock = Clock()
    fair = _fair(clock, in_flight=1)
    fair.enter("victim")  # a long request
    clock.now += 30.0
    fair.enter("hostile")
    with pytest.raises(RateLimitedException):
        fair.enter("hostile")


def test_a_rate_of_zero_turns_the_cpu_budget_off():
    clock = Clock()
    fair = _fair(clock, rate=0.0)
    _request(fair, "victim", 0.0)
    for _ in range(5):
        _request(fair, "hostile", 10.0)
    assert fair.refusal("hostile") is None


def test_many_orgs_are_remembered_within_a_bound():
    clock = Clock()
    fair = OrgFairness(4, 0.25, 1.0, clock=clock, max_orgs=100)
    for i in range(1000):
        _request(fair, f"org-{i}", 0.0)
        clock.now += 0.01
    assert len(fair._shares) <= 101


def test_it_says_when_the_process_goes_from_one_org_to_several_and_back():
    clock, told = Clock(), []
    fair = OrgFairness(4, 0.25, 1.0, clock=clock, on_contention=told.append)
    _request(fair, "sync", 0.01)
    _request(fair, "sync", 0.01)
    assert told == []  # one org: nothing to tell
    _request(fair, "other", 0.01)
    assert told == [True]
    _request(fair, "sync", 0.01)
    assert told == [True]  # still shared
    clock.now += CONTENDED_SECONDS + 0.1
    _request(fair, "sync", 0.01)
    assert told == [True, False]  # the other org has been quiet: alone again
