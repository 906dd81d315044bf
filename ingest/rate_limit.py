"""One SCIM rate limit per org across every ingest process: a token bucket per org in PostgreSQL
(an UNLOGGED table; one upsert per request, outside the request's transaction), so N processes
grant the org its rate once, not N times. `org_rate_limiter(settings)` picks it, or the in-process
bucket when `scim_rate_limit_shared` is off; both raise `RateLimitedException` when out of tokens."""

import math
import threading
import time

from sqlalchemy import Engine, text

from core.db import make_engine
from core.settings import Settings
from ingest.scim.limits import MINIMUM_RATE, OrgRateLimiter, RateLimitedException

# The refill and the spend in one statement: the row lock is held for this statement only (the
# request's own transaction never touches the row), and a refused request changes nothing. The
# clock is PostgreSQL's, so processes on hosts with skewed clocks still share one bucket.
_TAKE = text(
    """
    INSERT INTO scim_rate_buckets AS b (org_id, tokens, refilled_at)
    VALUES (:org, :burst - 1, clock_timestamp())
    ON CONFLICT (org_id) DO UPDATE
    SET tokens = LEAST(:burst, b.tokens + EXTRACT(EPOCH FROM clock_timestamp() - b.refilled_at) * :rate) - 1,
        refilled_at = clock_timestamp()
    WHERE LEAST(:burst, b.tokens + EXTRACT(EPOCH FROM clock_timestamp() - b.refilled_at) * :rate) >= 1
    RETURNING tokens
    """
)

# a few connections of its own: a request already holds one of the main pool while it is limited,
# so borrowing a second one there could exhaust that pool under load
_POOL_SIZE = 4


class SharedOrgRateLimiter:
    """`take(org_id)` spends one of the org's tokens in PostgreSQL or raises RateLimitedException.
    A rate of 0 disables it.

    A flood is refused without a database round trip: this process's own bucket (the org's whole
    limit, so never stricter than the shared one) is spent first, and after the shared bucket
    refuses, the org stays refused here until its next token is due (1/rate seconds)."""

    def __init__(self, engine: Engine, rate_per_second: float, burst: int) -> None:
        if rate_per_second and rate_per_second < MINIMUM_RATE:
            raise ValueError(f"the SCIM rate limit must be at least {MINIMUM_RATE} requests/s per org (Entra's requirement)")
        self.engine, self.rate, self.burst = engine, rate_per_second, max(1, burst)
        self.local = OrgRateLimiter(rate_per_second, burst)
        self._refused_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def refusal(self, org_id: str) -> RateLimitedException | None:
        """The refusal due now from what this process already knows (changes nothing), or None."""
        if not self.rate:
            return None
        with self._lock:
            wait = self._refused_until.get(org_id, 0.0) - time.monotonic()
        if wait > 0:
            return RateLimitedException(retry_after=max(1, math.ceil(wait)))
        return self.local.refusal(org_id)

    def take(self, org_id: str) -> None:
        """Spend one token of `org_id`'s bucket, shared by every ingest process."""
        if not self.rate:
            return
        with self._lock:
            wait = self._refused_until.get(org_id, 0.0) - time.monotonic()
        if wait > 0:
            raise RateLimitedException(retry_after=max(1, math.ceil(wait)))
        self.local.take(org_id)  # raises when this process alone is over the org's limit
        with self.engine.begin() as conn:
            left = conn.execute(_TAKE, {"org": org_id, "burst": float(self.burst), "rate": self.rate}).first()
        if left is None:  # under one token: the next one is at most 1/rate seconds away
            with self._lock:
                self._refused_until[org_id] = time.monotonic() + 1.0 / self.rate
            raise RateLimitedException(retry_after=max(1, math.ceil(1.0 / self.rate)))


def org_rate_limiter(settings: Settings) -> SharedOrgRateLimiter | OrgRateLimiter:
    """The SCIM limiter the settings ask for: shared by all processes (the default) or per process."""
    if settings.scim_rate_limit_shared:
        engine = make_engine(settings, pool_size=_POOL_SIZE)
        return SharedOrgRateLimiter(engine, settings.scim_rate_limit_per_second, settings.scim_rate_limit_burst)
    return OrgRateLimiter(settings.scim_rate_limit_per_second, settings.scim_rate_limit_burst)
