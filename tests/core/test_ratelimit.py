"""Per-account rate limits, in memory and in a real Redis shared by two clients."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from core.ratelimit import MemoryRateLimiter, RedisRateLimiter

T0 = datetime(2026, 11, 26, 3, 0, 10, tzinfo=UTC)


async def test_memory_limit_allows_up_to_the_limit_then_says_how_long_to_wait() -> None:
    limiter = MemoryRateLimiter()
    results = [await limiter.hit("lookup:1", 3, T0) for _ in range(5)]
    assert results == [0, 0, 0, 50, 50]
    assert await limiter.hit("lookup:2", 3, T0) == 0  # another account has its own budget
    assert await limiter.hit("lookup:1", 3, T0 + timedelta(minutes=1)) == 0  # the next window


async def test_redis_limit_is_shared_by_workers(redis_url: str) -> None:
    a, b = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        la, lb = RedisRateLimiter(a), RedisRateLimiter(b)
        assert await la.hit("lookup:1", 2, T0) == 0
        assert await lb.hit("lookup:1", 2, T0) == 0
        assert await la.hit("lookup:1", 2, T0) == 50
    finally:
        await a.aclose()
        await b.aclose()
