"""Conversation state in a real Redis: a new process (a new dispatcher and storage) continues the flow."""

from __future__ import annotations

from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisStorage
from redis.asyncio import Redis
from sqlalchemy import select

from bot.factory import build_bot, build_dispatcher
from bot.local_session import LocalSession
from core.db import models
from core.services.registry import Services
from tests.bot.harness import Harness, Person

MEJA1 = Person(910001, "Rina")


def _harness(services: Services, redis: Redis) -> Harness:
    storage = RedisStorage(redis, key_builder=DefaultKeyBuilder(prefix="frontdesk", with_bot_id=True))
    session = LocalSession()
    dp = build_dispatcher(services, storage, events_isolation=storage.create_isolation())
    return Harness(dispatcher=dp, bot=build_bot(None, session=session), session=session)


async def test_a_flow_started_before_a_restart_continues_after_it(services: Services, redis_url: str) -> None:
    async with services.ctx.sessions() as s:
        nik, name = (await s.execute(select(models.Target.nik, models.Target.name).limit(1))).one()

    first = Redis.from_url(redis_url)
    before = _harness(services, first)
    assert "NIK" in before.text(await before.send(MEJA1, "/cari"))
    await first.aclose()

    # Another process: new Redis connection, new storage, new dispatcher.
    second = Redis.from_url(redis_url)
    after = _harness(services, second)
    text = after.text(await after.send(MEJA1, nik))
    await second.aclose()
    assert name.split()[0] in text or name in text
    assert nik in text  # typed by the person: shown whole
