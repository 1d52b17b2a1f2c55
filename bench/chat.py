"""Feeding updates into a real dispatcher and reading the replies, many people at once, without leaking.

The bot talks through :class:`BenchSession`, the in-process ``bot.local_session.LocalSession``
(every Bot API call answered in process with a plausible result) minus what a long run cannot keep:
it does not append every call to a list, and it forgets old sent messages. Each synthetic person
is an asyncio task; what the bot sends during one of its updates is recorded for that task only
(a context variable), so concurrent people never see each other's replies.
"""

from __future__ import annotations

import contextvars
import itertools
import os
import time
from dataclasses import dataclass
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage, TelegramMethod
from aiogram.types import InlineKeyboardMarkup, Message, Update

from bot.local_session import LocalSession

Call = tuple[TelegramMethod[Any], Any]
_RECORDER: contextvars.ContextVar[list[Call] | None] = contextvars.ContextVar("bench_recorder", default=None)

# Update ids as Telegram gives them: unique per bot, also across the worker processes of one run (they
# share Redis, where a repeated update id is dropped as a redelivery: bot/dedup.py).
_update_ids = itertools.count(1 + (os.getpid() % 100_000) * 10_000_000)
_message_ids = itertools.count(1_000_000)
_SENT_LIMIT = 600  # LocalSession keeps every sent message (for edits); the last few per person are enough


class BenchSession(LocalSession):
    """``LocalSession`` for long runs: results go to the asking task's recorder, nothing accumulates."""

    async def make_request(
        self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None  # noqa: ASYNC109 - the base's
    ) -> Any:
        result_of = getattr(self, "_result", None)
        if result_of is None:  # LocalSession changed: use it as is and drop what it kept
            result = await super().make_request(bot, method, timeout)
            self.calls.clear()
        else:
            result = result_of(method)
        recorder = _RECORDER.get()
        if recorder is not None:
            recorder.append((method, result))
        sent = getattr(self, "_sent", None)
        if sent is not None and len(sent) > _SENT_LIMIT:
            for key in list(itertools.islice(sent, _SENT_LIMIT // 2)):
                del sent[key]
        return result


@dataclass(frozen=True, slots=True)
class Button:
    text: str
    data: str
    message: Message | None  # the message that carries it (for the callback query)


class Person:
    """One synthetic Telegram user: builds its updates, feeds them, and keeps its last replies."""

    __slots__ = ("_chat", "_from", "bot", "dispatcher", "last", "telegram_id")

    def __init__(self, dispatcher: Dispatcher, bot: Bot, telegram_id: int, first_name: str = "Bench") -> None:
        self.dispatcher = dispatcher
        self.bot = bot
        self.telegram_id = telegram_id
        self._from = {"id": telegram_id, "is_bot": False, "first_name": first_name, "language_code": "id"}
        self._chat = {"id": telegram_id, "type": "private"}
        self.last: list[Call] = []

    # Updates are parsed from JSON-like dicts with the bot in the validation context, as aiogram's
    # polling and webhook do: ``feed_update`` then does not rebuild the update (dump and validate
    # again) to mount the bot, which it does for updates built without one.

    def message_update(self, text: str) -> Update:
        data = {
            "update_id": next(_update_ids),
            "message": {"message_id": next(_message_ids), "date": int(time.time()), "chat": self._chat,
                        "from": self._from, "text": text},
        }
        return Update.model_validate(data, context={"bot": self.bot})

    def callback_update(self, data: str, message: Message | None = None) -> Update:
        if message is not None:
            msg = message.model_dump(mode="json", by_alias=True, exclude_none=True)
        else:
            msg = {"message_id": next(_message_ids), "date": int(time.time()), "chat": self._chat, "text": "…"}
        query = {"id": str(next(_update_ids)), "from": self._from, "chat_instance": "bench", "data": data,
                 "message": msg}
        return Update.model_validate({"update_id": next(_update_ids), "callback_query": query},
                                     context={"bot": self.bot})

    async def feed(self, update: Update) -> float:
        """Feed one update; returns the seconds ``feed_update`` took. Replies land in ``last``."""
        calls: list[Call] = []
        token = _RECORDER.set(calls)
        try:
            started = time.perf_counter()
            await self.dispatcher.feed_update(self.bot, update)
            elapsed = time.perf_counter() - started
        finally:
            _RECORDER.reset(token)
        self.last = calls
        return elapsed

    async def send(self, text: str) -> float:
        return await self.feed(self.message_update(text))

    async def press(self, button: Button | str) -> float:
        if isinstance(button, Button):
            return await self.feed(self.callback_update(button.data, button.message))
        return await self.feed(self.callback_update(button))

    # -- reading --------------------------------------------------------------------------------

    def buttons(self) -> list[Button]:
        out: list[Button] = []
        for method, result in self.last:
            markup = getattr(method, "reply_markup", None)
            if isinstance(markup, InlineKeyboardMarkup):
                message = result if isinstance(result, Message) else None
                for row in markup.inline_keyboard:
                    out.extend(Button(b.text, b.callback_data or "", message) for b in row)
        return out

    def find(self, prefix: str, label: str | None = None) -> Button | None:
        """The first button of the last replies whose callback data starts with ``prefix`` (and whose
        label contains ``label``)."""
        for b in self.buttons():
            if b.data.startswith(prefix) and (label is None or label in b.text):
                return b
        return None

    def text(self) -> str:
        parts = []
        for method, _ in self.last:
            if isinstance(method, SendMessage | EditMessageText) or (
                isinstance(method, AnswerCallbackQuery) and method.text
            ):
                parts.append(method.text or "")
        return "\n".join(parts)
