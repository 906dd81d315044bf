"""The HTTP server's protocol: uvicorn's httptools protocol (the C parser; h11, pure Python, cost
a write ~0.4 ms of interpreter, see docs/benchmarks.md) plus a header read timeout: a connection
whose request head is not complete within `http_header_timeout_seconds` is closed (uvicorn has no
such timer; its keep-alive timer stops at the first byte, so a slow-loris head would stay open
forever). Bodies are timed by `ingest.http.EdgeLimits`."""

from functools import cache
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from core.settings import Settings

# what `uvicorn.run(http=...)` is given: a path each worker process imports
PROTOCOL = "ingest.server:TimedHttpToolsProtocol"


@cache
def _header_timeout() -> float:
    # read once per process from the environment, the same way `ingest.app:app_from_env` is
    return Settings().http_header_timeout_seconds


class TimedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus one timer per request head: armed when the connection
    opens and when the first byte of a new head arrives, not re-armed by later bytes (a byte a
    second would keep it open), cancelled once the head is complete; when it fires the connection
    is closed. An idle kept-alive connection is uvicorn's keep-alive timer's."""

    header_timeout: float | None = None  # None: the setting

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: Any = None
        self._timeout = self.header_timeout or _header_timeout()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        super().on_headers_complete()

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
        if not self.transport.is_closing():
            self.transport.close()
