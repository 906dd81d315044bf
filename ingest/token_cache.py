"""Recently verified bearer tokens, by hash: a burst from one client costs one lookup per few seconds.

A revoked or expired token (or, for SCIM, a change to the org's SCIM toggle) takes effect within
`ttl` seconds (`auth_cache_seconds`); 0 turns the cache off. Only successful lookups are cached:
wrong tokens always reach the database.
"""

import threading
import time
from typing import Generic, TypeVar

from core import credentials

T = TypeVar("T")


class TokenCache(Generic[T]):
    def __init__(self, ttl: float, size: int = 10_000):
        self.ttl = ttl
        self.size = size
        self._entries: dict[bytes, tuple[float, T]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> T | None:
        if self.ttl <= 0:
            return None
        key = credentials.token_hash(token)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] < time.monotonic():
                self._entries.pop(key, None)
                return None
            return entry[1]

    def put(self, token: str, value: T) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.size:
                self._entries.clear()
            self._entries[credentials.token_hash(token)] = (time.monotonic() + self.ttl, value)
