"""Rate limits per account (lookups: scraping PL by NIK must be slow and visible).

A fixed window per key, on the core clock (so tests can move time): memory for the embedded default,
Redis (one pipelined round trip) when several worker processes share the budget.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, now: datetime, window_seconds: int = 60) -> int:
        """Count one event. 0 while the key stays within ``limit`` per window; otherwise the seconds
        until the window turns and the budget refills."""
        ...


def _window(now: datetime, window_seconds: int) -> tuple[int, int]:
    ts = int(now.timestamp())
    window = ts // window_seconds
    return window, (window + 1) * window_seconds - ts


class MemoryRateLimiter:
    def __init__(self, max_keys: int = 100_000) -> None:
        self._windows: dict[str, tuple[int, int]] = {}
        self.max_keys = max_keys

    async def hit(self, key: str, limit: int, now: datetime, window_seconds: int = 60) -> int:
        window, remaining = _window(now, window_seconds)
        current, count = self._windows.get(key, (window, 0))
        count = count + 1 if current == window else 1
        if len(self._windows) >= self.max_keys and key not in self._windows:
            self._windows.clear()  # a crude bound: windows are short-lived anyway
        self._windows[key] = (window, count)
        return 0 if count <= limit else max(1, remaining)


class RedisRateLimiter:
    def __init__(self, redis: Any, prefix: str = "frontdesk:rate") -> None:
        self.redis = redis
        self.prefix = prefix

    async def hit(self, key: str, limit: int, now: datetime, window_seconds: int = 60) -> int:
        window, remaining = _window(now, window_seconds)
        name = f"{self.prefix}:{key}:{window}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incr(name)
            pipe.expire(name, window_seconds * 2)
            count, _ = await pipe.execute()
        return 0 if int(count) <= limit else max(1, remaining)
