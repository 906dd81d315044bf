"""A deadline per SCIM request: no request outlives `scim_request_deadline_seconds`.

The clock starts when the request arrives (so time spent waiting for a worker thread counts).
Each transaction the request opens gets PostgreSQL's `statement_timeout` and
`idle_in_transaction_session_timeout` set, transaction-locally, to the time left: PostgreSQL
itself cancels a statement that would run past the deadline, and the connection goes back to
the pool. Python-side loops over many rows call `check()`. Either way the client gets a 503
SCIM error with `Retry-After`, and the transaction is rolled back.
"""

import time
from collections.abc import Callable
from typing import Any

from scim2_models import SCIMException
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

_QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement cancelled by statement_timeout
_BOUND = text(
    "SELECT set_config('statement_timeout', :ms, true), set_config('idle_in_transaction_session_timeout', :ms, true)"
)


class DeadlineExceeded(SCIMException):
    """503: the request's deadline passed; its database work was cancelled and nothing was written."""

    status = 503
    retry_after = 5
    _default_detail = "The request took longer than its deadline; nothing was changed. Retry after the delay in Retry-After."

    def __init__(self, seconds: float):
        super().__init__(detail=f"the request ran past its {seconds:g} s deadline and was cancelled; nothing was changed")


class Deadline:
    """`seconds` from now (on `clock`)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self.clock = clock
        self.ends = clock() + seconds

    def remaining(self) -> float:
        return self.ends - self.clock()

    def check(self) -> None:
        """Raise DeadlineExceeded once the deadline has passed."""
        if self.remaining() <= 0:
            raise DeadlineExceeded(self.seconds)

    def bound(self, conn: Any) -> None:
        """Limit the connection's current transaction to the time left (at least 1 ms: 0 would mean no limit)."""
        self.check()
        conn.execute(_BOUND, {"ms": str(max(1, int(self.remaining() * 1000)))})

    def cancelled(self, exc: DBAPIError) -> bool:
        """Whether a database error is this deadline at work: a cancelled statement, or any failure once it passed."""
        return getattr(exc.orig, "pgcode", None) == _QUERY_CANCELED or self.remaining() <= 0
