"""The production conversation store (bot/redis_state.py) on a real redis-server.

Two round trips per update (the lock that loads, the release that saves), the same keys and values
as aiogram's RedisStorage (the two can be swapped on a live Redis), what a failing handler wrote is
kept, a second update of the same chat waits for the first, and keys outside the update go to Redis.
The lock also claims the update being fed (bot/dedup.py), and refuses a repeat without taking the lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisStorage
from redis.asyncio import Redis

from api.runtime import build_storage
from bot.dedup import DuplicateUpdate, RedisDeduplicator, delivering
from bot.redis_state import OneTripRedisStorage
from core.config import Settings

pytestmark = pytest.mark.redis

KEY = StorageKey(bot_id=1, chat_id=42, user_id=42)
OTHER = StorageKey(bot_id=1, chat_id=43, user_id=43)


class Counting:
    """Counts the client's round trips (every command or script call is one)."""

    def __init__(self, redis: Redis) -> None:
        self.trips = 0
        original = redis.execute_command

        async def execute_command(*args: Any, **kwargs: Any) -> Any:
            self.trips += 1
            return await original(*args, **kwargs)

        redis.execute_command = execute_command  # type: ignore[method-assign]


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def _storage(redis: Redis) -> OneTripRedisStorage:
    return OneTripRedisStorage(
        redis, key_builder=DefaultKeyBuilder(prefix="frontdesk", with_bot_id=True), state_ttl=600, data_ttl=600
    )


async def test_the_runtime_builds_the_one_trip_store(redis_url: str) -> None:
    storage, _client, isolation = build_storage(Settings(redis_url=redis_url))
    try:
        assert isinstance(storage, OneTripRedisStorage)
        assert isinstance(isolation, type(storage.create_isolation()))
    finally:
        await storage.close()


async def test_an_update_costs_two_round_trips(redis: Redis) -> None:
    storage = _storage(redis)
    isolation = storage.create_isolation()
    async with isolation.lock(OTHER):  # the first use loads the two scripts into Redis: not counted
        pass
    counter = Counting(redis)
    async with isolation.lock(KEY):
        assert await storage.get_state(KEY) is None
        await storage.set_state(KEY, "Meja2:temperature")
        data = await storage.get_data(KEY)
        await storage.set_data(KEY, {**data, "visit": 7})
        assert await storage.get_state(KEY) == "Meja2:temperature"
    assert counter.trips == 2
    async with isolation.lock(KEY):
        assert await storage.get_state(KEY) == "Meja2:temperature"
        assert await storage.get_data(KEY) == {"visit": 7}
    assert counter.trips == 4


async def test_keys_and_values_are_those_of_aiogram_redis_storage(redis: Redis) -> None:
    builder = DefaultKeyBuilder(prefix="frontdesk", with_bot_id=True)
    stock = RedisStorage(redis, key_builder=builder)
    ours = _storage(redis)
    await stock.set_state(KEY, "Lookup:key")
    await stock.set_data(KEY, {"a": 1, "nama": "Ani"})
    async with ours.create_isolation().lock(KEY):
        assert await ours.get_state(KEY) == "Lookup:key"
        assert await ours.get_data(KEY) == {"a": 1, "nama": "Ani"}
        await ours.set_state(KEY, "Meja4:code")
        await ours.set_data(KEY, {"visit": 9})
    assert await stock.get_state(KEY) == "Meja4:code"
    assert await stock.get_data(KEY) == {"visit": 9}
    assert 0 < await redis.ttl(builder.build(KEY, "data")) <= 600
    async with ours.create_isolation().lock(KEY):  # clearing deletes the keys, as the stock storage does
        await ours.set_state(KEY, None)
        await ours.set_data(KEY, {})
    assert await redis.exists(builder.build(KEY, "state"), builder.build(KEY, "data")) == 0


async def test_what_a_failing_handler_wrote_is_kept_and_the_lock_released(redis: Redis) -> None:
    storage = _storage(redis)
    isolation = storage.create_isolation()
    with pytest.raises(RuntimeError):
        async with isolation.lock(KEY):
            await storage.set_data(KEY, {"draft": "36.5"})
            raise RuntimeError("handler failed")
    async with asyncio.timeout(1):  # not held: the next update gets it at once
        async with isolation.lock(KEY):
            assert await storage.get_data(KEY) == {"draft": "36.5"}


async def test_a_second_update_of_the_same_chat_waits_for_the_first(redis: Redis) -> None:
    storage = _storage(redis)
    isolation = storage.create_isolation()
    order: list[str] = []
    first_in = asyncio.Event()

    async def first() -> None:
        async with isolation.lock(KEY):
            first_in.set()
            order.append("first in")
            await asyncio.sleep(0.2)
            await storage.set_state(KEY, "Meja2:blood_pressure")
            order.append("first out")

    async def second() -> None:
        await first_in.wait()
        async with isolation.lock(KEY):
            order.append(f"second sees {await storage.get_state(KEY)}")

    async def elsewhere() -> None:  # another chat is not held up
        await first_in.wait()
        async with isolation.lock(OTHER):
            order.append("other chat")

    await asyncio.gather(first(), second(), elsewhere())
    assert order == ["first in", "other chat", "first out", "second sees Meja2:blood_pressure"]


async def test_keys_outside_the_update_go_straight_to_redis(redis: Redis) -> None:
    storage = _storage(redis)
    async with storage.create_isolation().lock(KEY):
        await storage.set_state(OTHER, "Review:reason")  # e.g. someone else's conversation
        assert await redis.get("frontdesk:1:43:43:state") == b"Review:reason"
    assert await storage.get_state(OTHER) == "Review:reason"


# --- the update's claim rides on the lock (bot/dedup.py) -----------------------------------------------


def _claiming(redis: Redis) -> OneTripRedisStorage:
    return OneTripRedisStorage(
        redis,
        key_builder=DefaultKeyBuilder(prefix="frontdesk", with_bot_id=True),
        state_ttl=600,
        data_ttl=600,
        claims=RedisDeduplicator(redis),
    )


async def test_the_lock_claims_the_update_being_fed_in_the_same_round_trip(redis: Redis) -> None:
    storage = _claiming(redis)
    isolation = storage.create_isolation()
    with delivering(1, 9001):  # the first use loads the scripts into Redis: not counted
        async with isolation.lock(OTHER):
            pass
    counter = Counting(redis)
    with delivering(1, 9002) as delivery:
        async with isolation.lock(KEY):
            await storage.set_state(KEY, "Meja2:temperature")
        assert delivery.claimed
    assert counter.trips == 2  # the lock (which claimed) and the release
    assert 0 < await redis.ttl("frontdesk:upd:1:9002") <= 24 * 3600
    assert not await RedisDeduplicator(redis).claim(1, 9002)  # another worker's middleware sees the claim


async def test_a_repeat_is_refused_by_the_lock_without_taking_it(redis: Redis) -> None:
    storage = _claiming(redis)
    isolation = storage.create_isolation()
    with delivering(1, 9101):
        async with isolation.lock(KEY):
            await storage.set_state(KEY, "Meja2:temperature")
    with delivering(1, 9101) as repeat, pytest.raises(DuplicateUpdate):
        async with isolation.lock(KEY):
            await storage.set_state(KEY, "Meja2:blood_pressure")  # never runs
    assert not repeat.claimed
    assert await redis.get("frontdesk:fsm:1:42:42:lock") is None  # the repeat took no lock
    with delivering(1, 9102):  # the chat's next update goes straight on
        async with isolation.lock(KEY):
            assert await storage.get_state(KEY) == "Meja2:temperature"


async def test_an_update_claimed_by_the_middleware_is_refused_by_the_lock(redis: Redis) -> None:
    """Workers of a rolling upgrade: one claims in its middleware, the other's lock must see it."""
    assert await RedisDeduplicator(redis).claim(1, 9201)
    with delivering(1, 9201), pytest.raises(DuplicateUpdate):
        async with _claiming(redis).create_isolation().lock(KEY):
            pass


async def test_a_waiting_repeat_is_refused_once_the_first_delivery_holds_the_lock(redis: Redis) -> None:
    """Two deliveries of one update at once: the second waits for the chat's lock, then finds the claim."""
    storage = _claiming(redis)
    isolation = storage.create_isolation()
    inside = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        with delivering(1, 9301):
            async with isolation.lock(KEY):
                inside.set()
                await release.wait()

    async def second() -> str:
        await inside.wait()
        with delivering(1, 9301):
            try:
                async with isolation.lock(KEY):
                    return "handled"
            except DuplicateUpdate:
                return "dropped"

    task = asyncio.create_task(first())
    outcome = asyncio.create_task(second())
    await inside.wait()
    await asyncio.sleep(0.05)
    release.set()
    await task
    assert await outcome == "dropped"


async def test_without_a_delivery_or_claims_the_lock_claims_nothing(redis: Redis) -> None:
    async with _claiming(redis).create_isolation().lock(KEY):  # not fed by the dispatcher: nothing named
        pass
    with delivering(1, 9401):
        async with _storage(redis).create_isolation().lock(KEY):  # a store without claims
            pass
    assert await redis.exists("frontdesk:upd:1:9401") == 0
