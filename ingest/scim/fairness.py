"""An org's fair share of one ingest process: the SCIM requests it has in progress, and the CPU
time they use.

The rate limit counts requests, not what they cost: 25 requests a second that each take 100 ms of
Python are a whole core, and every other org's request then waits for the interpreter. So each
request's CPU time (the thread's own, measured around its work) is charged to its org's CPU budget,
a bucket refilled at `scim_org_cpu_per_second` CPU-seconds per second up to
`scim_org_cpu_burst_seconds`; an org whose budget is spent is answered 429 with the Retry-After of
its refill until it is positive again. An org's requests in progress at once are capped too
(`scim_max_in_flight_per_org`), so one org never holds more than that many of the threads.

Both apply only while the process is shared: when another org has sent a request within the last
`CONTENDED_SECONDS`. An org alone may use the whole process (an initial sync of 100,000 users is
one org), its debt capped at one burst while it is alone, so that it is held back for at most
burst/rate seconds once another org arrives. Both are per process, like the CPU they share out. A refusal changes
nothing: the request never reached its transaction.
"""

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ingest.scim.limits import RateLimitedException

CONTENDED_SECONDS = 1.0


@dataclass
class _Share:
    in_flight: int = 0
    cpu: float = 0.0  # CPU-seconds left; below zero: in debt
    refilled_at: float = 0.0
    active_at: float = 0.0  # its last request's start or end


class OrgFairness:
    """`enter(org)` before an org's request runs (raises RateLimitedException), `leave(org, cpu)` after."""

    def __init__(self, max_in_flight: int, cpu_per_second: float, cpu_burst: float,
                 clock: Callable[[], float] = time.monotonic, max_orgs: int = 100_000,
                 on_contention: Callable[[bool], None] | None = None) -> None:
        self.max_in_flight = max_in_flight
        self.cpu_per_second = cpu_per_second
        self.cpu_burst = cpu_burst
        self.clock = clock
        self.max_orgs = max_orgs
        self._shares: dict[str, _Share] = {}
        self._active: dict[str, float] = {}  # orgs seen within CONTENDED_SECONDS (pruned as it grows)
        self._lock = threading.Lock()
        self.on_contention = on_contention  # told when the process goes from one org to several, and back
        self._was_contended = False

    def _contended(self, org_id: str, now: float) -> bool:
        """Another org sent a request within CONTENDED_SECONDS (or has one in progress)."""
        if len(self._active) > 64:
            self._active = {k: t for k, t in self._active.items() if self._busy(k, t, now)}
        return any(k != org_id and self._busy(k, t, now) for k, t in self._active.items())

    def _busy(self, org_id: str, active_at: float, now: float) -> bool:
        share = self._shares.get(org_id)
        return now - active_at < CONTENDED_SECONDS or (share is not None and share.in_flight > 0)

    def _seen(self, org_id: str, share: _Share, now: float) -> None:
        share.active_at = now
        self._active[org_id] = now

    def _share(self, org_id: str, now: float) -> _Share:
        share = self._shares.get(org_id)
        if share is None:
            if len(self._shares) >= self.max_orgs:  # only idle orgs' shares are forgotten
                self._shares = {k: s for k, s in self._shares.items() if s.in_flight or s.cpu < self.cpu_burst}
            share = self._shares[org_id] = _Share(cpu=self.cpu_burst, refilled_at=now)
        elif self.cpu_per_second:
            share.cpu = min(self.cpu_burst, share.cpu + (now - share.refilled_at) * self.cpu_per_second)
            share.refilled_at = now
        return share

    def refusal(self, org_id: str) -> RateLimitedException | None:
        """Why the org's next request would be refused now, or None (changes nothing)."""
        with self._lock:
            now = self.clock()
            return self._refusal(org_id, self._share(org_id, now), now)

    def _refusal(self, org_id: str, share: _Share, now: float) -> RateLimitedException | None:
        contended = self._contended(org_id, now)
        if contended != self._was_contended:
            self._was_contended = contended
            if self.on_contention is not None:
                self.on_contention(contended)
        if not contended:
            return None
        if self.cpu_per_second and share.cpu < 0:
            return RateLimitedException(retry_after=max(1, math.ceil(-share.cpu / self.cpu_per_second)),
                                        detail="this organisation's requests used their share of the server's time")
        if share.in_flight >= self.max_in_flight:
            return RateLimitedException(retry_after=1, detail=f"this organisation already has {share.in_flight} "
                                        "requests in progress, the most allowed at once")
        return None

    def enter(self, org_id: str) -> None:
        with self._lock:
            now = self.clock()
            share = self._share(org_id, now)
            refused = self._refusal(org_id, share, now)
            self._seen(org_id, share, now)  # a refused org is still contending for the process
            if refused is not None:
                raise refused
            share.in_flight += 1

    def leave(self, org_id: str, cpu_seconds: float) -> None:
        with self._lock:
            now = self.clock()
            share = self._share(org_id, now)
            share.in_flight = max(0, share.in_flight - 1)
            self._seen(org_id, share, now)
            if self.cpu_per_second:
                share.cpu -= cpu_seconds
                if not self._contended(org_id, now):  # alone: its debt is capped at one burst
                    share.cpu = max(-self.cpu_burst, share.cpu)


class CpuClock:
    """The calling thread's CPU time spent inside the `with` block."""

    def __enter__(self) -> "CpuClock":
        self.started = time.thread_time()
        self.seconds = 0.0
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.thread_time() - self.started
