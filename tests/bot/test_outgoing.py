"""Outgoing calls keep Telegram's limits (bot/outgoing.py): spacing per chat and per bot, 429 waited out.

The bots use aiogram's real aiohttp session against a Bot API-compatible server on loopback
(tests/fake_bot_api.py). Timings are asserted only as lower bounds that the limiter guarantees (never
"fast enough"), with margins for timer jitter.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import AnswerCallbackQuery, SendChatAction, SendMessage, SetMyCommands

from bot.factory import build_bot
from bot.notifier import TelegramNotifier
from bot.outgoing import OutgoingLimits, Pace, message_chat
from core.domain.accounts import Actor
from tests.fake_bot_api import FakeBotApi

TOKEN = "424242:outgoing-limits-test-token"
CHAT = 910002
JITTER = 0.03  # timers may fire a little early on a loaded machine; the bounds below allow it


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as server:
        yield server


def paced_bot(api: FakeBotApi, **limits: Any) -> tuple[Bot, OutgoingLimits]:
    outgoing = OutgoingLimits(**limits)
    return build_bot(TOKEN, api_base=api.base_url, limits=outgoing), outgoing


# --- the algorithm, on a clock of our own -------------------------------------------------------


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pace_allows_a_burst_then_spaces_and_holds() -> None:
    clock = ManualClock()
    pace = Pace(rate=2.0, burst=3, clock=clock)
    assert [pace.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]  # the burst
    assert [pace.reserve() for _ in range(3)] == pytest.approx([0.5, 1.0, 1.5])  # then one every 1/rate
    clock.now += 10  # idle: the burst is back
    assert pace.idle()
    assert [pace.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    clock.now += 10
    pace.hold(5)  # Telegram said: wait 5 s
    assert pace.reserve() == pytest.approx(5.0)


def test_only_messages_count() -> None:
    assert message_chat(SendMessage(chat_id=5, text="x")) == 5
    assert message_chat(AnswerCallbackQuery(callback_query_id="1")) is None
    assert message_chat(SetMyCommands(commands=[])) is None
    assert message_chat(SendChatAction(chat_id=5, action="typing")) is None


# --- 429 Too Many Requests ----------------------------------------------------------------------


async def test_a_429_is_waited_out_and_the_message_delivered(api: FakeBotApi, caplog: pytest.LogCaptureFixture) -> None:
    bot, limits = paced_bot(api)
    api.fail_next("sendMessage", retry_after=1)
    try:
        with caplog.at_level(logging.WARNING, logger="bot.outgoing"):
            sent = await bot.send_message(CHAT, "Halo")
    finally:
        await bot.session.close()
    refused, delivered = [c for c in api.calls if c.method == "sendMessage"]
    assert (refused.status, delivered.status) == (429, 200)
    assert sent.text == "Halo" and delivered.text == "Halo"
    waited = delivered.at - refused.at
    assert waited >= 1.0 - JITTER, waited  # retry_after = 1 s was honoured
    assert limits.retries == 1
    assert any("429" in r.getMessage() and "waiting 1 s" in r.getMessage() for r in caplog.records)


async def test_retries_are_bounded(api: FakeBotApi) -> None:
    bot, _ = paced_bot(api, retry_attempts=2, max_retry_after=5)
    api.fail_next("sendMessage", times=10, retry_after=1)
    try:
        with pytest.raises(TelegramRetryAfter):
            await bot.send_message(CHAT, "Halo")
    finally:
        await bot.session.close()
    assert [c.status for c in api.calls if c.method == "sendMessage"] == [429, 429, 429]  # one try + 2 retries


async def test_a_long_retry_after_fails_at_once(api: FakeBotApi) -> None:
    bot, _ = paced_bot(api, max_retry_after=2)
    api.fail_next("sendMessage", retry_after=300)
    try:
        with pytest.raises(TelegramRetryAfter):
            await bot.send_message(CHAT, "Halo")
    finally:
        await bot.session.close()
    assert [c.status for c in api.calls if c.method == "sendMessage"] == [429]


async def test_a_429_holds_the_chat_for_the_messages_queued_behind(api: FakeBotApi) -> None:
    bot, _ = paced_bot(api, chat_rate=100, chat_burst=5)
    api.fail_next("sendMessage", retry_after=1)
    try:
        await asyncio.gather(*(bot.send_message(CHAT, f"m{i}") for i in range(3)))
    finally:
        await bot.session.close()
    answered = api.of("sendMessage")
    assert [c.text for c in answered] == ["m0", "m1", "m2"]  # in order, the refused one first
    refused = next(c for c in api.calls if c.status == 429)
    assert all(c.at - refused.at >= 1.0 - JITTER for c in answered)


# --- spacing ------------------------------------------------------------------------------------


async def test_a_burst_of_50_notifications_to_one_chat_is_spaced_and_in_order(api: FakeBotApi) -> None:
    rate, burst = 25.0, 3  # faster than Telegram's ~1/s so the test stays short; the rule is the same
    bot, _ = paced_bot(api, chat_rate=rate, chat_burst=burst, global_rate=1000)

    async def resolve(telegram_id: int) -> Actor:
        return Actor(telegram_id=telegram_id)

    notifier = TelegramNotifier(bot, resolve, {"test.n": lambda t, p: (f"n{p['n']}", None)})
    try:
        await asyncio.gather(*(notifier.notify(CHAT, "test.n", n=i) for i in range(50)))
    finally:
        await bot.session.close()
    sent = api.of("sendMessage", chat_id=CHAT)
    assert len(sent) == 50 and len(api.calls) == 50  # nothing lost, nothing retried, nothing else sent
    assert [c.text for c in sent] == [f"n{i}" for i in range(50)]  # in the order they were asked for
    start = sent[0].at
    for i, call in enumerate(sent):
        # The i-th message may leave (burst - 1) intervals early, never earlier.
        assert call.at - start >= (i - (burst - 1)) / rate - JITTER, (i, call.at - start)
    assert sent[-1].at - start >= (49 - (burst - 1)) / rate - JITTER


async def test_the_bot_wide_rate_spaces_messages_to_many_chats(api: FakeBotApi) -> None:
    rate = 40.0  # burst = one second's worth = 40
    bot, _ = paced_bot(api, global_rate=rate, chat_rate=1, chat_burst=1)
    began = time.monotonic()
    try:
        await asyncio.gather(*(bot.send_message(1000 + i, f"c{i}") for i in range(60)))
    finally:
        await bot.session.close()
    sent = sorted(api.of("sendMessage"), key=lambda c: c.at)
    assert len(sent) == 60 and {c.chat_id for c in sent} == {1000 + i for i in range(60)}
    assert sent[-1].at - began >= (60 - 40) / rate - JITTER  # beyond the burst: one every 1/rate


async def test_calls_that_are_not_messages_are_not_paced(api: FakeBotApi) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(seconds)

    bot, _ = paced_bot(api, chat_rate=1, chat_burst=1, global_rate=1, sleep=sleep)
    try:
        await asyncio.gather(*(bot.answer_callback_query(str(i)) for i in range(10)))
        await bot.send_message(CHAT, "the first message of the chat leaves at once")
        assert waits == []
        await bot.send_message(CHAT, "the second waits for its slot")
    finally:
        await bot.session.close()
    assert len(api.of("answerCallbackQuery")) == 10 and len(api.of("sendMessage")) == 2
    assert len(waits) == 1 and waits[0] > 0.5
