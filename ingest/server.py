"""The HTTP server's header read timeout: a uvicorn h11 protocol that closes a connection whose
request head is not complete within `http_header_timeout_seconds` (h11 and uvicorn have none;
uvicorn's keep-alive timer stops at the first byte, so a slow-loris head would stay open forever).
Bodies are timed by `ingest.http.EdgeLimits`."""

from functools import cache
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from core.settings import Settings

# what `uvicorn.run(http=...)` is given: a path each worker process imports
PROTOCOL = "ingest.server:TimedH11Protocol"


@cache
def _header_timeout() -> float:
    # read once per process from the environment, the same way `ingest.app:app_from_env` is
    return Settings().http_header_timeout_seconds


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus one timer per request head: armed when the connection opens and
    whenever it waits for a new head, not re-armed by each byte (a byte a second would keep it
    open), cancelled once the head is complete; when it fires the connection is closed."""

    header_timeout: float | None = None  # None: the setting

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: Any = None
        self._timeout = self.header_timeout or _header_timeout()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._arm_head_timer()  # bytes of a head that is not complete yet (or a new one after a response)
        else:
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._cancel_head_timer()  # the keep-alive timer covers an idle connection; the first byte re-arms ours

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self._timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()
