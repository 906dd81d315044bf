"""The SSO pages' bulkhead: their own threads, and at most `idp_calls_per_org` sign-in steps per org at once.

A sign-in step may wait on the org's IdP (discovery, JWKS, token endpoint), so it never runs on the
threads SCIM and the other APIs share: it runs on `idp_threads` threads of its own. Before taking one
it waits (without a thread: on the event loop) up to `idp_queue_seconds` for one of its org's
`idp_calls_per_org` slots; then it is `Busy` and the browser gets a 503 page. So one org's slow IdP
can hold at most its own slots, never another org's sign-ins or anyone's SCIM requests.
"""

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter

from core.settings import Settings
from ingest.sso.outbound import Busy

T = TypeVar("T")
BUSY_MESSAGE = "Too many sign-ins to this organisation are in progress; try again in a moment."


class Bulkhead:
    """Per-org async slots in front of a thread budget of the SSO pages' own."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._limiter: CapacityLimiter | None = None  # made in the event loop, on first use
        self._slots: dict[str, tuple[asyncio.Semaphore, int]] = {}

    def _limiter_now(self) -> CapacityLimiter:
        if self._limiter is None:
            self._limiter = CapacityLimiter(self.settings.idp_threads)
        return self._limiter

    async def run(self, org: str, step: Callable[..., T], *args: Any) -> T:
        """Run step(*args) on the SSO threads within one of the org's slots; Busy when none frees in time."""
        semaphore, users = self._slots.get(org) or (asyncio.Semaphore(self.settings.idp_calls_per_org), 0)
        self._slots[org] = (semaphore, users + 1)  # one event loop: no lock needed between these lines
        try:
            try:
                await asyncio.wait_for(semaphore.acquire(), timeout=self.settings.idp_queue_seconds)
            except TimeoutError:
                raise Busy(org) from None
            try:
                return await anyio.to_thread.run_sync(step, *args, limiter=self._limiter_now())
            finally:
                semaphore.release()
        finally:
            semaphore, users = self._slots[org]
            if users == 1:  # forget orgs with nothing in flight: made-up slugs leave nothing behind
                del self._slots[org]
            else:
                self._slots[org] = (semaphore, users - 1)
