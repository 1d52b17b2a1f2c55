"""At most N updates at work in a process (bot/admission.py); an update waiting on the network gives its place back
and, back from it, goes before updates that have not started."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiogram import Router
from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation
from aiogram.types import Chat, Message, Update, User

from api.runtime import Runtime, build_runtime
from bot.admission import Admission, AdmittingDispatcher, AwayDuringLookups, AwayDuringRequests, AwayWhileLocking
from bot.factory import build_bot, build_dispatcher
from core.config import Settings
from tests.fake_bot_api import FakeBotApi

TOKEN = "424243:admission-test-token"
CHAT_A, CHAT_B = 910101, 910102


async def _settle() -> None:
    """Let every task that can run, run (a few turns of the loop; no clock involved)."""
    for _ in range(20):
        await asyncio.sleep(0)


class Desk:
    """Tasks that enter an update, optionally go away, and record the order of what happened."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self.log: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}

    def gate(self, name: str) -> asyncio.Event:
        return self.gates.setdefault(name, asyncio.Event())

    async def work(self, name: str, *, away: bool = False) -> None:
        async with self.admission.update():
            self.log.append(f"{name} in")
            if away:
                async with self.admission.away():
                    self.log.append(f"{name} away")
                    await self.gate(f"{name} network").wait()
                self.log.append(f"{name} back")
            await self.gate(name).wait()
            self.log.append(f"{name} out")


async def test_at_most_the_limit_are_at_work_and_the_rest_enter_in_arrival_order() -> None:
    desk = Desk(Admission(2))
    tasks = [asyncio.create_task(desk.work(n)) for n in "abcde"]
    await _settle()
    assert desk.log == ["a in", "b in"] and desk.admission.busy == 2 and desk.admission.waiting == 3
    for name in "abcde":
        desk.gate(name).set()
        await _settle()
    await asyncio.gather(*tasks)
    assert [e for e in desk.log if e.endswith(" in")] == ["a in", "b in", "c in", "d in", "e in"]
    assert desk.admission.busy == 0 and desk.admission.waiting == 0


async def test_a_place_is_given_back_while_away_and_the_returning_update_goes_first() -> None:
    desk = Desk(Admission(1))
    a = asyncio.create_task(desk.work("a", away=True))
    await _settle()
    b = asyncio.create_task(desk.work("b"))
    await _settle()
    assert desk.log == ["a in", "a away", "b in"]  # b works while a waits on the network
    desk.gate("a network").set()
    await _settle()
    c = asyncio.create_task(desk.work("c"))  # arrives after a came back
    await _settle()
    assert desk.log[-1] == "b in" and desk.admission.waiting == 2  # a (back) and c wait for b's place
    desk.gate("b").set()
    await _settle()
    assert desk.log[-2:] == ["b out", "a back"]  # a, back from the network, before c, who has not started
    desk.gate("a").set()
    desk.gate("c").set()
    await asyncio.gather(a, b, c)
    assert desk.log[-3:] == ["a out", "c in", "c out"] and desk.admission.busy == 0


async def test_only_the_task_holding_a_place_gives_it_away() -> None:
    admission = Admission(1)
    started = asyncio.Event()
    network = asyncio.Event()

    async def background() -> None:  # started by an update: copies its context, not its place
        async with admission.away():
            started.set()
            await network.wait()

    async with admission.away():  # outside any update: nothing to give
        assert admission.busy == 0
    async with admission.update():
        task = asyncio.create_task(background())
        await started.wait()
        assert admission.busy == 1  # still the update's
        other = asyncio.create_task(_enter(admission))
        await _settle()
        assert not other.done() and admission.waiting == 1
    await asyncio.wait_for(other, 5)
    network.set()
    await task
    assert admission.busy == 0


async def _enter(admission: Admission) -> None:
    async with admission.update():
        pass


async def test_an_update_fed_from_inside_an_update_keeps_its_one_place() -> None:
    admission = Admission(1)
    async with admission.update(), admission.update():
        assert admission.busy == 1
    assert admission.busy == 0


async def test_a_cancelled_waiter_takes_no_place() -> None:
    desk = Desk(Admission(1))
    a = asyncio.create_task(desk.work("a"))
    await _settle()
    b = asyncio.create_task(desk.work("b"))
    await _settle()
    b.cancel()
    await _settle()
    desk.gate("a").set()
    await a
    with pytest.raises(asyncio.CancelledError):
        await b
    assert desk.admission.busy == 0 and desk.admission.waiting == 0
    desk.gate("c").set()
    await asyncio.wait_for(desk.work("c"), 5)
    assert "b in" not in desk.log and desk.log[-2:] == ["c in", "c out"]


async def test_an_update_cancelled_while_away_takes_its_place_back_before_it_leaves() -> None:
    desk = Desk(Admission(1))
    a = asyncio.create_task(desk.work("a", away=True))
    await _settle()
    b = asyncio.create_task(desk.work("b"))
    await _settle()
    a.cancel()  # while a waits on the network and b holds the place
    await _settle()
    assert not a.done() and desk.admission.busy == 1  # a waits for the place before it unwinds
    desk.gate("b").set()
    await b
    with pytest.raises(asyncio.CancelledError):
        await a
    assert desk.admission.busy == 0 and desk.admission.waiting == 0


def test_an_admission_needs_a_place() -> None:
    with pytest.raises(ValueError, match="at least one place"):
        Admission(0)


# --- through aiogram: the dispatcher and a bot's real HTTP session ------------------------------


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as server:
        yield server


def _update(update_id: int, chat_id: int, text: str) -> Update:
    user = User(id=chat_id, is_bot=False, first_name="Nakes")
    message = Message(
        message_id=update_id, date=datetime.now(UTC), chat=Chat(id=chat_id, type="private"), from_user=user, text=text
    )
    return Update(update_id=update_id, message=message)


def _echo_dispatcher(admission: Admission, entered: list[int]) -> AdmittingDispatcher:
    router = Router()

    @router.message()
    async def echo(message: Message) -> None:
        entered.append(message.chat.id)
        await message.answer(f"ok {message.text}")

    dp = AdmittingDispatcher()
    dp.admission = admission
    dp.include_router(router)
    return dp


async def test_an_update_waiting_on_telegram_lets_another_update_work(api: FakeBotApi) -> None:
    admission = Admission(1)
    bot = build_bot(TOKEN, api_base=api.base_url, admission=admission)
    entered: list[int] = []
    dp = _echo_dispatcher(admission, entered)
    try:
        held = api.hold(CHAT_A)
        a = asyncio.create_task(dp.feed_update(bot, _update(1, CHAT_A, "a")))
        await api.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == CHAT_A)  # at Telegram, unanswered
        assert admission.busy == 0
        await asyncio.wait_for(dp.feed_update(bot, _update(2, CHAT_B, "b")), 10)  # handled to the end meanwhile
        assert entered == [CHAT_A, CHAT_B] and not a.done()
        assert [c.text for c in api.of("sendMessage", chat_id=CHAT_B)] == ["ok b"]
        held.set()
        await asyncio.wait_for(a, 10)
        assert admission.busy == 0
    finally:
        await bot.session.close()


async def test_an_update_at_work_keeps_the_next_one_waiting(api: FakeBotApi) -> None:
    admission = Admission(1)
    bot = build_bot(TOKEN, api_base=api.base_url, admission=admission)
    entered: list[int] = []
    dp = _echo_dispatcher(admission, entered)
    try:
        async with admission.update():  # the place taken, as by an update at work
            b = asyncio.create_task(dp.feed_update(bot, _update(3, CHAT_B, "b")))
            await _settle()
            assert entered == [] and admission.waiting == 1
        await asyncio.wait_for(b, 10)
        assert entered == [CHAT_B]
    finally:
        await bot.session.close()


async def test_a_persons_queued_updates_hold_no_places() -> None:
    """Updates of one person wait for their chat's lock without a place: another person is not kept waiting."""
    admission = Admission(2)
    release = asyncio.Event()
    handled: list[str] = []
    router = Router()

    @router.message()
    async def handle(message: Message) -> None:
        handled.append(str(message.text))
        if message.text == "x1":
            await release.wait()  # the first update of person X takes long

    isolation = AwayWhileLocking(SimpleEventIsolation(), admission)
    dp = AdmittingDispatcher(storage=MemoryStorage(), events_isolation=isolation)
    dp.admission = admission
    dp.include_router(router)
    bot = build_bot(None)
    try:
        x = [asyncio.create_task(dp.feed_update(bot, _update(10 + i, CHAT_A, f"x{i + 1}"))) for i in range(3)]
        await _settle()
        assert handled == ["x1"] and admission.busy == 1  # x2 and x3 wait for X's lock, not for a place
        await asyncio.wait_for(dp.feed_update(bot, _update(20, CHAT_B, "y")), 10)
        assert handled == ["x1", "y"]
        release.set()
        await asyncio.gather(*x)
        assert handled == ["x1", "y", "x2", "x3"] and admission.busy == 0
    finally:
        await bot.session.close()


async def test_the_runtime_wires_one_admission_through(tmp_path: Path) -> None:
    def runtime(places: int) -> Runtime:
        url = f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
        return build_runtime(Settings(database_url=url, updates_in_flight=places, _env_file=None))  # type: ignore[call-arg]

    limited, unlimited = runtime(3), runtime(0)
    try:
        admission = limited.admission
        assert admission is not None and admission.limit == 3
        assert getattr(limited.dispatcher, "admission", None) is admission
        middleware = limited.bot.session.middleware
        assert any(isinstance(m, AwayDuringRequests) and m.admission is admission for m in middleware)
        sources = limited.services.ctx.references
        assert sources and all(isinstance(s, AwayDuringLookups) and s.admission is admission for s in sources)
        with_lock = build_dispatcher(
            limited.services, MemoryStorage(), events_isolation=SimpleEventIsolation(), admission=admission
        )
        assert isinstance(with_lock.fsm.events_isolation, AwayWhileLocking)

        assert unlimited.admission is None and getattr(unlimited.dispatcher, "admission", None) is None
        assert not any(isinstance(m, AwayDuringRequests) for m in unlimited.bot.session.middleware)
    finally:
        await limited.close()
        await unlimited.close()


def test_eight_updates_at_work_by_default() -> None:
    """Measured (docs/performance.md): 8 at a time per process at saturation, p99 3-4x lower than no limit."""
    assert Settings(_env_file=None).updates_in_flight == 8  # type: ignore[call-arg]
