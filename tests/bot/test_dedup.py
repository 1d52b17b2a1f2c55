"""A repeated delivery of an update is handled once (memory and a real Redis)."""

from __future__ import annotations

import logging

import pytest
from aiogram.fsm.storage.redis import DefaultKeyBuilder
from redis.asyncio import Redis

from api.metrics import Metrics, install_metrics
from bot.dedup import MemoryDeduplicator, RedisDeduplicator
from bot.factory import build_bot, build_dispatcher
from bot.local_session import LocalSession
from bot.redis_state import OneTripRedisStorage
from core.services.registry import Services
from tests.bot.harness import Harness, Person
from tests.bot.test_redis_onetrip import Counting

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


@pytest.mark.redis
async def test_with_the_one_trip_store_a_delivery_costs_its_two_round_trips_and_a_repeat_one(
    services: Services, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The store's lock claims the update (bot/dedup.py): no round trip of its own for the claim; a repeat is
    refused by the lock, answered nothing, logged as no error and counted as no error."""
    redis = Redis.from_url(redis_url)
    storage = OneTripRedisStorage(
        redis, key_builder=DefaultKeyBuilder(prefix="frontdesk", with_bot_id=True), claims=RedisDeduplicator(redis)
    )
    session = LocalSession()
    dp = build_dispatcher(services, storage, events_isolation=storage.create_isolation(), deduplicator=storage.claims)
    metrics = Metrics(process=False)
    install_metrics(dp, metrics)
    harness = Harness(dispatcher=dp, bot=build_bot(None, session=session), session=session)
    try:
        await harness.feed(harness.message_update(MEJA1, "/bantuan"))  # loads the scripts: not counted
        counter = Counting(redis)
        update = harness.message_update(MEJA1, "/start")
        await harness.feed(update)
        assert counter.trips == 2
        answered = len(session.calls)
        with caplog.at_level(logging.INFO):
            await harness.feed(update)
            await harness.feed(update)
        assert counter.trips == 4  # each repeat: the refused lock only
        assert len(session.calls) == answered
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert (
            sum(s.value for m in metrics.update_errors.collect() for s in m.samples if s.name.endswith("_total")) == 0
        )
    finally:
        await redis.aclose()
