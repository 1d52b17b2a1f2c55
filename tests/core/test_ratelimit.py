"""Per-account rate limits, in memory and in a real Redis shared by two clients."""

from __future__ import annotations

from redis.asyncio import Redis

from core.ratelimit import MemoryRateLimiter, RedisRateLimiter


async def test_memory_limit_allows_up_to_the_limit_then_refuses() -> None:
    limiter = MemoryRateLimiter()
    results = [await limiter.hit("lookup:1", 3) for _ in range(5)]
    assert results == [True, True, True, False, False]
    assert await limiter.hit("lookup:2", 3)  # another account has its own budget


async def test_redis_limit_is_shared_by_workers(redis_url: str) -> None:
    a, b = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        la, lb = RedisRateLimiter(a), RedisRateLimiter(b)
        assert await la.hit("lookup:1", 2)
        assert await lb.hit("lookup:1", 2)
        assert not await la.hit("lookup:1", 2)
    finally:
        await a.aclose()
        await b.aclose()
