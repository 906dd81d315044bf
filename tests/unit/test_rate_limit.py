"""The per-org token bucket (pure logic, a fake clock)."""

import pytest

from ingest.scim.limits import OrgRateLimiter, RateLimitedException

pytestmark = pytest.mark.unit


def test_bucket_allows_the_burst_then_refuses_with_retry_after_then_refills():
    clock = {"now": 0.0}
    limiter = OrgRateLimiter(25, burst=5, clock=lambda: clock["now"])
    for _ in range(5):
        limiter.take("org-a")
    with pytest.raises(RateLimitedException) as refused:
        limiter.take("org-a")
    assert refused.value.status == 429 and refused.value.retry_after >= 1
    limiter.take("org-b")  # another org has its own bucket
    clock["now"] += 0.04  # one token at 25/s
    limiter.take("org-a")
    with pytest.raises(RateLimitedException):
        limiter.take("org-a")


def test_rate_below_entras_minimum_is_refused_and_zero_disables():
    with pytest.raises(ValueError, match="at least 25"):
        OrgRateLimiter(10, burst=5)
    limiter = OrgRateLimiter(0, burst=1)
    for _ in range(1000):
        limiter.take("org")
