"""Rate limits per account (lookups: scraping PL by NIK must be slow and visible).

A fixed one-minute window per key: memory for the embedded default, Redis (one pipelined round trip)
when several workers share the limit.
"""

from __future__ import annotations

import time
from typing import Any, Protocol


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window_seconds: int = 60) -> bool:
        """Count one event; True while the key stays within ``limit`` events per window."""
        ...


class MemoryRateLimiter:
    def __init__(self, max_keys: int = 100_000) -> None:
        self._windows: dict[str, tuple[int, int]] = {}
        self.max_keys = max_keys

    async def hit(self, key: str, limit: int, window_seconds: int = 60) -> bool:
        window = int(time.monotonic() // window_seconds)
        current, count = self._windows.get(key, (window, 0))
        if current != window:
            count = 0
        count += 1
        if len(self._windows) >= self.max_keys and key not in self._windows:
            self._windows.clear()  # a crude bound: windows are short-lived anyway
        self._windows[key] = (window, count)
        return count <= limit


class RedisRateLimiter:
    def __init__(self, redis: Any, prefix: str = "frontdesk:rate") -> None:
        self.redis = redis
        self.prefix = prefix

    async def hit(self, key: str, limit: int, window_seconds: int = 60) -> bool:
        window = int(time.time() // window_seconds)
        name = f"{self.prefix}:{key}:{window}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incr(name)
            pipe.expire(name, window_seconds * 2)
            count, _ = await pipe.execute()
        return int(count) <= limit
