"""Outgoing calls keep Telegram's limits: about 30 messages a second per bot, about one a second per chat.

A request middleware of the bot's session (``session.middleware(OutgoingLimits(...))``), so every call
goes through it: replies of handlers, notifications, menus. Three rules:

* **Per chat**, messages leave one at a time and in the order they were asked for (a lock per chat), spaced
  by ``1 / chat_rate`` after a burst of ``chat_burst`` (a desk answer of two or three messages is not
  slowed; fifty notifications to one person are spread out).
* **Per bot**, messages are spaced by ``1 / global_rate`` after a burst of about one second's worth.
  Each worker process keeps its own share (``TELEGRAM_GLOBAL_RATE / WEB_CONCURRENCY``): no round trip to
  Redis per message; Telegram's 429 answers (below) catch what the shares do not.
* **429 Too Many Requests**: wait ``retry_after`` and try again, at most ``retry_attempts`` times; the
  chat (or, for a call without a chat, the whole bot) waits too, so the next messages do not hit the same
  wall. A 429 asking for more than ``max_retry_after`` seconds fails at once: a handler should not hold a
  conversation for minutes.

Pacing is the generic cell rate algorithm: each lane keeps the theoretical arrival time of its next
message; a message may leave ``burst - 1`` intervals before it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType

log = logging.getLogger(__name__)

# Bot API methods that put a message into a chat (or change one): these count against the limits.
_MESSAGE_PREFIXES = ("send", "edit", "copy", "forward")
_NOT_MESSAGES = frozenset({"sendChatAction"})
_SWEEP_EVERY = 1024  # new chat lanes between two sweeps of idle ones


class Pace:
    """Generic cell rate algorithm: ``rate`` per second on average, ``burst`` back to back."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.interval = 1.0 / rate
        self.tolerance = (max(1, burst) - 1) * self.interval
        self.clock = clock
        self.tat = 0.0  # theoretical arrival time of the next message

    def reserve(self) -> float:
        """Take the next slot; returns how long to wait for it (0: now). Synchronous: reservations are FIFO."""
        now = self.clock()
        tat = max(self.tat, now)
        self.tat = tat + self.interval
        return max(0.0, tat - self.tolerance - now)

    def hold(self, seconds: float) -> None:
        """Nothing leaves this lane for ``seconds`` (Telegram said so)."""
        self.tat = max(self.tat, self.clock() + seconds + self.tolerance)

    def idle(self) -> bool:
        """True when forgetting this lane changes nothing (its next slot is free now)."""
        return self.tat <= self.clock()


@dataclass
class _Lane:
    pace: Pace
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


def message_chat(method: TelegramMethod[Any]) -> int | str | None:
    """The chat a message method writes to; None for calls that are not messages (menus, answers, getMe)."""
    name = getattr(method, "__api_method__", "")
    if name in _NOT_MESSAGES or not name.startswith(_MESSAGE_PREFIXES):
        return None
    chat = getattr(method, "chat_id", None)
    return chat if isinstance(chat, int | str) else None


class OutgoingLimits(BaseRequestMiddleware):
    def __init__(
        self,
        *,
        global_rate: float = 30.0,
        chat_rate: float = 1.0,
        chat_burst: int = 3,
        retry_attempts: int = 3,
        max_retry_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.global_rate = global_rate
        self.global_burst = max(1, int(global_rate))  # about one second's worth
        self.chat_rate = chat_rate
        self.chat_burst = chat_burst
        self.retry_attempts = retry_attempts
        self.max_retry_after = max_retry_after
        self.clock = clock
        self.sleep = sleep
        self._bots: dict[int, Pace] = {}
        self._chats: dict[tuple[int, int | str], _Lane] = {}
        self._new_lanes = 0
        self.retries = 0  # 429 answers waited out (for metrics and tests)

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        chat = message_chat(method)
        if chat is None:
            return await self._send(make_request, bot, method, None)
        lane = self._lane(bot.id, chat)
        lane.users += 1
        try:
            async with lane.lock:  # one message at a time per chat: they arrive in the order asked
                await self._wait(lane.pace.reserve())
                return await self._send(make_request, bot, method, lane)
        finally:
            lane.users -= 1

    async def _send(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
        lane: _Lane | None,
    ) -> Response[TelegramType]:
        bot_pace = self._bot(bot.id)
        attempt = 0
        while True:
            if lane is not None:
                await self._wait(bot_pace.reserve())
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                wait = float(exc.retry_after)
                if attempt >= self.retry_attempts or wait > self.max_retry_after:
                    log.warning(
                        "Telegram refused %s with 429 (retry after %s s): giving up after %d retries",
                        method.__api_method__,
                        exc.retry_after,
                        attempt,
                    )
                    raise
                attempt += 1
                self.retries += 1
                log.warning(
                    "Telegram answered %s with 429: waiting %s s, then retry %d of %d",
                    method.__api_method__,
                    exc.retry_after,
                    attempt,
                    self.retry_attempts,
                )
                (lane.pace if lane is not None else bot_pace).hold(wait)
                await self.sleep(wait)

    async def _wait(self, seconds: float) -> None:
        if seconds > 0:
            await self.sleep(seconds)

    def _bot(self, bot_id: int) -> Pace:
        pace = self._bots.get(bot_id)
        if pace is None:
            pace = self._bots[bot_id] = Pace(self.global_rate, self.global_burst, self.clock)
        return pace

    def _lane(self, bot_id: int, chat: int | str) -> _Lane:
        key = (bot_id, chat)
        lane = self._chats.get(key)
        if lane is None:
            self._new_lanes += 1
            if self._new_lanes >= _SWEEP_EVERY:
                self._sweep()
            lane = self._chats[key] = _Lane(Pace(self.chat_rate, self.chat_burst, self.clock))
        return lane

    def _sweep(self) -> None:
        """Forget chats that nobody is sending to and whose next slot is free: memory stays bounded."""
        self._new_lanes = 0
        for key in [k for k, lane in self._chats.items() if lane.users == 0 and lane.pace.idle()]:
            del self._chats[key]
