"""A repeated delivery of an update is handled once (memory and a real Redis)."""

from __future__ import annotations

from redis.asyncio import Redis

from bot.dedup import MemoryDeduplicator, RedisDeduplicator
from tests.bot.harness import Harness, Person

MEJA1 = Person(910001, "Rina")


async def test_a_redelivered_update_gets_one_answer(harness: Harness) -> None:
    update = harness.message_update(MEJA1, "/start")
    await harness.feed(update)
    answered = len(harness.session.calls)
    await harness.feed(update)
    await harness.feed(update)
    assert answered >= 1
    assert len(harness.session.calls) == answered  # the repeats caused no call at all


async def test_memory_claims_expire() -> None:
    dedup = MemoryDeduplicator(ttl_seconds=0)
    assert await dedup.claim(1, 5)
    assert await dedup.claim(1, 5)  # expired at once


async def test_memory_claims_are_per_bot() -> None:
    dedup = MemoryDeduplicator()
    assert await dedup.claim(1, 5) and await dedup.claim(2, 5)
    assert not await dedup.claim(1, 5)


async def test_redis_claims_are_shared_between_processes(redis_url: str) -> None:
    a, b = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        assert await RedisDeduplicator(a).claim(7, 100)
        assert not await RedisDeduplicator(b).claim(7, 100)  # the other worker sees the claim
        assert await RedisDeduplicator(b).claim(7, 101)
        assert 0 < await a.ttl("frontdesk:upd:7:100") <= 24 * 3600
    finally:
        await a.aclose()
        await b.aclose()
