"""The floor: what aiogram itself costs per update on this machine, with nothing of ours in it.

* ``echo``: one handler that answers the text it got;
* ``fsm``: one step of a conversation: the handler (filtered by state) reads the draft, updates
  it, moves to the next state and answers: what every desk step does at the least.

Each on memory storage and on Redis: aiogram's ``RedisStorage`` with ``RedisEventIsolation``
(what ``api/runtime.build_storage`` builds) and, for comparison, ``bench.onetrip``. Same session,
same update objects and the same number of concurrent people as the desk run, so that the ratios
compare like with like.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiogram import Dispatcher, F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import Message

from bench.chat import BenchSession, Person
from bench.common import Latencies, cpu_seconds
from bot.factory import build_bot

FLOOR_TELEGRAM_BASE = 8_000_000


class Step(StatesGroup):
    a = State()
    b = State()


def _echo_router() -> Router:
    router = Router(name="echo")

    @router.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "")

    return router


def _fsm_router() -> Router:
    router = Router(name="fsm")

    @router.message(StateFilter(None, Step.a, Step.b))
    async def step(message: Message, state: FSMContext) -> None:
        data = await state.get_data()
        n = int(data.get("n", 0)) + 1
        await state.update_data(n=n, last=message.text)
        await state.set_state(Step.b if n % 2 else Step.a)
        await message.answer(f"step {n}")

    return router


def _fsm_filtered_router() -> Router:
    """The FSM step behind two magic filters, as the desk routers write them (``F.text``,
    ``~F.text.startswith("/")``): aiogram runs each synchronous filter through ``asyncio.to_thread``."""
    router = Router(name="fsmf")

    @router.message(StateFilter(None, Step.a, Step.b), F.text, ~F.text.startswith("/"))
    async def step(message: Message, state: FSMContext) -> None:
        data = await state.get_data()
        n = int(data.get("n", 0)) + 1
        await state.update_data(n=n, last=message.text)
        await state.set_state(Step.b if n % 2 else Step.a)
        await message.answer(f"step {n}")

    return router


def build(kind: str, storage_kind: str, redis_url: str | None) -> tuple[Dispatcher, Any, Any]:
    """(dispatcher, storage, redis client) for ``kind`` in echo|fsm|fsmf and storage in
    memory|inline|redis|onetrip (``inline``: memory, with aiogram calling sync filters inline)."""
    redis = None
    if storage_kind == "inline":
        from bench.desk import inline_sync_callbacks

        inline_sync_callbacks()  # for the rest of this process: the inline variants run last
        storage_kind = "memory"
    if storage_kind == "memory":
        dp = Dispatcher(storage=MemoryStorage())
        storage: Any = dp.fsm.storage
    else:
        from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisStorage
        from redis.asyncio import Redis

        assert redis_url, "a Redis URL is needed"
        redis = Redis.from_url(redis_url, max_connections=512)
        builder = DefaultKeyBuilder(prefix="floor", with_bot_id=True)
        if storage_kind == "redis":
            storage = RedisStorage(redis, key_builder=builder, state_ttl=3600, data_ttl=3600)
        elif storage_kind == "onetrip":
            from bot.redis_state import OneTripRedisStorage

            storage = OneTripRedisStorage(redis, key_builder=builder, state_ttl=3600, data_ttl=3600)
        else:
            raise ValueError(storage_kind)
        dp = Dispatcher(storage=storage, events_isolation=storage.create_isolation())
    dp.include_router({"echo": _echo_router, "fsm": _fsm_router, "fsmf": _fsm_filtered_router}[kind]())
    return dp, storage, redis


async def drive(people: list[Person], seconds: float, warmup: float, text: str = "36.5") -> dict[str, Any]:
    """Everybody sends as fast as the bot answers (closed loop) for ``seconds`` after ``warmup``."""
    lat = Latencies()
    counted = 0
    start = time.perf_counter()
    measure_from = start + warmup
    stop = measure_from + seconds
    cpu0: float | None = None

    async def person_loop(p: Person) -> None:
        nonlocal counted, cpu0
        while True:
            now = time.perf_counter()
            if now >= stop:
                return
            elapsed = await p.send(text)
            if now >= measure_from:
                if cpu0 is None:
                    cpu0 = cpu_seconds()
                lat.add(elapsed)
                counted += 1

    await asyncio.gather(*(person_loop(p) for p in people))
    wall = time.perf_counter() - max(measure_from, start)
    cpu = cpu_seconds() - (cpu0 or 0.0)
    s = lat.summary()
    return {
        "updates": counted,
        "per_s": counted / wall if wall > 0 else 0.0,
        "cpu_ms_per_update": 1000 * cpu / counted if counted else 0.0,
        **s,
    }


async def run_floor(
    variants: list[tuple[str, str]], *, people: int, seconds: float, warmup: float, redis_url: str | None
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for kind, storage_kind in variants:
        if storage_kind in ("redis", "onetrip") and not redis_url:
            continue
        dp, _storage, redis = build(kind, storage_kind, redis_url)
        if redis is not None:
            await redis.flushdb()
        bot = build_bot(None, session=BenchSession())
        crowd = [Person(dp, bot, FLOOR_TELEGRAM_BASE + i) for i in range(people)]
        try:
            out[f"{kind}_{storage_kind}"] = await drive(crowd, seconds, warmup)
            if redis is not None:
                out[f"{kind}_{storage_kind}"]["redis_cmds_per_update"] = await _redis_calls_per_update(
                    dp, bot, redis
                )
        finally:
            await bot.session.close()
            if redis is not None:
                await redis.aclose()
    return out


async def _redis_calls_per_update(dp: Dispatcher, bot: Any, redis: Any, updates: int = 50) -> float:
    """Redis round trips per update, one person at a time (counted at the client)."""
    p = Person(dp, bot, FLOOR_TELEGRAM_BASE + 999_999)
    await p.send("36.5")
    with RoundTrips() as trips:
        for _ in range(updates):
            await p.send("36.5")
    return trips.count / updates


class RoundTrips:
    """Counts requests redis-py sends (a pipeline or a script is one) while the block runs."""

    def __init__(self) -> None:
        self.count = 0

    def __enter__(self) -> RoundTrips:
        from redis.asyncio.connection import AbstractConnection

        self._cls = AbstractConnection
        self._original = AbstractConnection.send_packed_command
        original = self._original
        counter = self

        async def counting(conn: Any, command: Any, check_health: bool = True) -> None:
            counter.count += 1
            await original(conn, command, check_health)

        AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self._cls.send_packed_command = self._original  # type: ignore[method-assign]
