"""Per-org request rate limit on SCIM: a token bucket per org, in each ingest process.

Entra ID requires a SCIM endpoint to accept at least 25 requests per second per tenant, so the
rate can be set no lower than that. A refused request gets 429 with `Retry-After` and a SCIM
Error body, and changes nothing. This bucket is per process; ingest/rate_limit.py keeps the one
that all ingest processes share (the default; see docs/decisions.md).
"""

import math
import threading
import time
from collections.abc import Callable

from scim2_models import SCIMException

MINIMUM_RATE = 25.0


class RateLimitedException(SCIMException):
    """429 Too Many Requests (RFC 6585; RFC 7644 §3.12 lets a provider answer it)."""

    status = 429
    _default_detail = "Too many requests for this organisation; retry after the delay in Retry-After."

    def __init__(self, retry_after: int, detail: str = "too many requests for this organisation"):
        super().__init__(detail=f"{detail}; retry in {retry_after} s")
        self.retry_after = retry_after


class UnavailableException(SCIMException):
    """503 Service Unavailable: PostgreSQL cannot be reached (restarting, failing over) or the
    transaction lost a deadlock; nothing was written, and the IdP should retry after a pause."""

    status = 503
    _default_detail = "The service cannot store changes right now; retry after the delay in Retry-After."
    retry_after = 5


class OrgRateLimiter:
    """`take(org_id)` spends one token or raises RateLimitedException. A rate of 0 disables it."""

    def __init__(self, rate_per_second: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_second and rate_per_second < MINIMUM_RATE:
            raise ValueError(f"the SCIM rate limit must be at least {MINIMUM_RATE} requests/s per org (Entra's requirement)")
        self.rate = rate_per_second
        self.burst = max(1, burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # org id -> (tokens, last refill)
        self._lock = threading.Lock()

    def _refilled(self, org_id: str, now: float) -> tuple[float, RateLimitedException | None]:
        """The org's tokens now, and the refusal they call for (None: a token is there)."""
        tokens, last = self._buckets.get(org_id, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1.0:
            return tokens, RateLimitedException(retry_after=max(1, math.ceil((1.0 - tokens) / self.rate)))
        return tokens, None

    def refusal(self, org_id: str) -> RateLimitedException | None:
        """The refusal the org's next request would get now (changes nothing), or None."""
        if not self.rate:
            return None
        with self._lock:
            return self._refilled(org_id, self.clock())[1]

    def take(self, org_id: str) -> None:
        if not self.rate:
            return
        with self._lock:
            now = self.clock()
            tokens, refused = self._refilled(org_id, now)
            self._buckets[org_id] = (tokens if refused else tokens - 1.0, now)
            if refused:
                raise refused
