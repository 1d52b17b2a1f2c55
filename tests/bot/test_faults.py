"""Faults that really break a component: the PL database stops mid-flow; Redis stops mid-flow."""

from __future__ import annotations

import asyncio

from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisStorage
from redis.asyncio import Redis
from sqlalchemy import select

from bot.factory import build_bot, build_dispatcher
from bot.local_session import LocalSession
from core.db import models
from core.db.engine import create_engine
from core.db.migrate import upgrade
from core.db.seed import seed_demo
from core.ports import FixedClock
from core.services.registry import Services, build_services
from tests.bot.harness import Harness, Person
from tests.conftest import NOW, TODAY
from tests.servers import PostgresServer, RedisServer

MEJA1 = Person(910001, "Rina")


def _harness(services: Services, storage: object) -> Harness:
    session = LocalSession()
    dp = build_dispatcher(services, storage)  # type: ignore[arg-type]
    return Harness(dispatcher=dp, bot=build_bot(None, session=session), session=session)


async def test_pl_unreachable_mid_flow_keeps_the_draft_and_a_retry_succeeds(
    private_postgres_server: PostgresServer,
) -> None:
    server = private_postgres_server
    server.create_database("pl")
    url = server.url("pl")
    await upgrade(url)
    engine = create_engine(url)
    try:
        await seed_demo(engine, targets=50, today=TODAY)
        async with engine.connect() as conn:
            nik = (await conn.execute(select(models.Target.nik).limit(1))).scalar_one()
        services = build_services(engine, clock=FixedClock(NOW))
        storage = MemoryStorage()
        h = _harness(services, storage)
        await h.send(MEJA1, "/cari")

        await asyncio.to_thread(server.pause)
        text = h.text(await h.send(MEJA1, nik))
        assert "PL tidak dapat dihubungi" in text
        # The conversation is still waiting for the key: nothing was lost.
        key = h.dispatcher.fsm.get_context(h.bot, MEJA1.telegram_id, MEJA1.telegram_id).key
        assert await storage.get_state(key) == "Lookup:key"

        await asyncio.to_thread(server.resume)
        text = h.text(await h.send(MEJA1, nik))
        assert nik in text and "NIK" in text
    finally:
        await engine.dispose()


async def test_redis_unreachable_gives_a_clear_answer_and_recovers(
    services: Services, private_redis_server: RedisServer
) -> None:
    redis = Redis.from_url(private_redis_server.url, socket_connect_timeout=1, socket_timeout=2)
    storage = RedisStorage(redis, key_builder=DefaultKeyBuilder(prefix="frontdesk", with_bot_id=True))
    h = _harness(services, storage)
    try:
        await asyncio.to_thread(private_redis_server.pause)
        text = h.text(await h.send(MEJA1, "/start"))
        assert "Penyimpanan percakapan tidak dapat dihubungi" in text
        await asyncio.to_thread(private_redis_server.resume)
        text = h.text(await h.send(MEJA1, "/start"))
        assert "Rina" in text
    finally:
        await redis.aclose()
