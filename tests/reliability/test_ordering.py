"""Item 2: two quick messages from one person are handled in order, also across worker processes.

Budi (meja 2) sends the temperature and, a moment later, the blood pressure. Two workers share Redis
(conversation state and event isolation, as api.runtime builds them); the temperature reaches worker A,
the blood pressure worker B. Worker A is made slow exactly where it matters: it writes the new state
only after B has had every chance to read the old one (a hook on A's storage waits for B's read, at most
a second). With the Redis event isolation B must wait for A's lock, so B reads the state A wrote and the
checklist follows. The negative control is the same race without the Redis isolation: B reads the stale
state, takes "120/80" for a temperature, and the blood pressure is lost (deterministic, thanks to the hook).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.dedup import RedisDeduplicator
from bot.factory import build_dispatcher
from bot.redis_state import OneTripRedisStorage
from core.ports import FixedClock
from tests.bot.harness import Harness
from tests.conftest import NOW
from tests.core.services.test_screening_service import actor, pick_target
from tests.reliability.support import BUDI, Worker, record_figures, start_worker

pytestmark = pytest.mark.redis

ROUNDS = 3
B_READ_WAIT = 1.0  # how long slow A waits for B to read the state before it writes


class Race:
    """Hooks on the two workers' storages: A waits before writing until B has read (or a second passed)."""

    def __init__(self, a: Worker, b: Worker) -> None:
        self.a_read = asyncio.Event()
        self.b_read = asyncio.Event()
        self.a_waited_for_b = False
        sa, sb = a.runtime.storage, b.runtime.storage
        assert isinstance(sa, OneTripRedisStorage) and isinstance(sb, OneTripRedisStorage)
        self._restore = [(sa, "get_state"), (sa, "set_data"), (sb, "get_state")]
        a_get, a_set, b_get = sa.get_state, sa.set_data, sb.get_state

        async def a_get_state(*args: Any, **kwargs: Any) -> Any:
            value = await a_get(*args, **kwargs)
            self.a_read.set()
            return value

        async def a_set_data(*args: Any, **kwargs: Any) -> Any:
            try:
                await asyncio.wait_for(self.b_read.wait(), B_READ_WAIT)
                self.a_waited_for_b = True
            except TimeoutError:
                pass
            return await a_set(*args, **kwargs)

        async def b_get_state(*args: Any, **kwargs: Any) -> Any:
            value = await b_get(*args, **kwargs)
            self.b_read.set()
            return value

        sa.get_state, sa.set_data, sb.get_state = a_get_state, a_set_data, b_get_state  # type: ignore[method-assign]

    def undo(self) -> None:
        for storage, name in self._restore:
            delattr(storage, name)


async def _open_screening(a: Worker, services: Any, skip: int) -> int:
    """A registered person, and Budi's screening opened on worker A (the state waits for a temperature)."""
    target = await pick_target(services, category="nakes", max_age=59, skip=skip)
    reg = await services.registration.register(await actor(services, 910001), target.id, target.version)
    builder = Harness(dispatcher=None, bot=None, session=None)  # type: ignore[arg-type]
    await a.feed(builder.callback_update(BUDI, f"v:screen:{reg.visit_id}"))
    assert await _state(a) == "Meja2:temperature"
    return reg.visit_id


async def _state(w: Worker) -> str | None:
    return await w.runtime.dispatcher.fsm.get_context(w.runtime.bot, BUDI.telegram_id, BUDI.telegram_id).get_state()


async def _data(w: Worker) -> dict[str, Any]:
    return await w.runtime.dispatcher.fsm.get_context(w.runtime.bot, BUDI.telegram_id, BUDI.telegram_id).get_data()


async def _race(a: Worker, b: Worker) -> tuple[str, str, Race]:
    """Temperature to A; once A has read the state, the blood pressure to B. Returns what A and B answered."""
    builder = Harness(dispatcher=None, bot=None, session=None)  # type: ignore[arg-type]
    race = Race(a, b)
    ma, mb = len(a.session.calls), len(b.session.calls)
    try:

        async def second() -> None:
            await race.a_read.wait()
            await asyncio.sleep(0.02)  # B's message is a moment later
            await b.feed(builder.message_update(BUDI, "120/80"))

        await asyncio.gather(a.feed(builder.message_update(BUDI, "36,5")), second())
    finally:
        race.undo()
    return Harness.text(a.session.calls[ma:]), Harness.text(b.session.calls[mb:]), race


def _workers(demo_sqlite: str, redis_url: str) -> tuple[Worker, Worker]:
    clock = FixedClock(NOW)
    return (
        start_worker(demo_sqlite, clock, redis_url, name="A"),
        start_worker(demo_sqlite, clock, redis_url, name="B"),
    )


async def test_two_messages_to_two_workers_are_handled_in_order(demo_sqlite: str, redis_url: str) -> None:
    a, b = _workers(demo_sqlite, redis_url)
    try:
        for i in range(ROUNDS):
            visit_id = await _open_screening(a, a.runtime.services, skip=i)
            said_a, said_b, race = await _race(a, b)
            assert not race.a_waited_for_b, "B read the state while A was still handling the temperature"
            assert "36,5 °C · TD 120/80" in said_b, said_b  # the checklist, with both vitals
            assert "tidak dikenali" not in said_a + said_b
            assert await _state(b) == "Meja2:checklist"
            data = await _data(b)
            assert (data["visit"], data["temp"], data["bp"]) == (visit_id, "36.5", [120, 80])
            await b.feed(Harness(None, None, None).message_update(BUDI, "/batal"))  # type: ignore[arg-type]
    finally:
        await a.close()
        await b.close()
    record_figures("ordering", rounds=ROUNDS, workers=2, interleavings_with_isolation=0)


async def test_without_the_redis_isolation_the_same_race_interleaves(demo_sqlite: str, redis_url: str) -> None:
    """Negative control: the protection above is what keeps the order."""
    a, b = _workers(demo_sqlite, redis_url)
    for w in (a, b):  # the same workers, minus the Redis event isolation
        r = w.runtime
        r.dispatcher = build_dispatcher(r.services, r.storage, deduplicator=RedisDeduplicator(r.redis))
    try:
        visit_id = await _open_screening(a, a.runtime.services, skip=0)
        _, said_b, race = await _race(a, b)
        assert race.a_waited_for_b  # B read the stale state while A was handling the temperature
        assert "Suhu tidak dikenali: 120/80" in said_b, said_b  # "120/80" taken for a temperature
        # The blood pressure is lost: the conversation still waits for it.
        assert await _state(a) == "Meja2:blood_pressure"
        data = await _data(a)
        assert (data["visit"], data["temp"], data["bp"]) == (visit_id, "36.5", None)
    finally:
        await a.close()
        await b.close()
    record_figures("ordering-control", rounds=1, workers=2, interleavings_without_isolation=1)
