"""Drive the real dispatcher with updates, as Telegram would, and read what the bot sent back."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage, SetMyCommands, TelegramMethod
from aiogram.types import CallbackQuery, Chat, Contact, InlineKeyboardMarkup, Message, Update, User

from bot.actors import ActorCache
from bot.local_session import LocalSession

_update_ids = itertools.count(1)
_message_ids = itertools.count(10_000)


@dataclass
class Person:
    telegram_id: int
    first_name: str = "Test"
    language_code: str = "id"

    @property
    def user(self) -> User:
        return User(id=self.telegram_id, is_bot=False, first_name=self.first_name, language_code=self.language_code)

    @property
    def chat(self) -> Chat:
        return Chat(id=self.telegram_id, type="private")


@dataclass
class Harness:
    dispatcher: Dispatcher
    bot: Bot
    session: LocalSession
    actors: ActorCache | None = None  # the dispatcher's actor cache: a notifier built by a test shares it
    seen: int = 0
    updates: list[Update] = field(default_factory=list)

    # --- sending ---------------------------------------------------------------------------
    async def feed(self, update: Update) -> None:
        self.updates.append(update)
        await self.dispatcher.feed_update(self.bot, update)

    def message_update(self, person: Person, text: str | None = None, contact: Contact | None = None) -> Update:
        msg = Message(
            message_id=next(_message_ids),
            date=datetime.now(UTC),
            chat=person.chat,
            from_user=person.user,
            text=text,
            contact=contact,
        )
        return Update(update_id=next(_update_ids), message=msg)

    async def send(self, person: Person, text: str) -> list[TelegramMethod[Any]]:
        return await self._run(self.message_update(person, text))

    async def share_contact(self, person: Person, phone: str) -> list[TelegramMethod[Any]]:
        contact = Contact(phone_number=phone, first_name=person.first_name, user_id=person.telegram_id)
        return await self._run(self.message_update(person, contact=contact))

    def callback_update(self, person: Person, data: str, message: Message | None = None) -> Update:
        msg = message or Message(message_id=next(_message_ids), date=datetime.now(UTC), chat=person.chat, text="…")
        query = CallbackQuery(
            id=str(next(_update_ids)), from_user=person.user, chat_instance="ci", data=data, message=msg
        )
        return Update(update_id=next(_update_ids), callback_query=query)

    async def press(self, person: Person, data: str, message: Message | None = None) -> list[TelegramMethod[Any]]:
        return await self._run(self.callback_update(person, data, message))

    async def _run(self, update: Update) -> list[TelegramMethod[Any]]:
        start = len(self.session.calls)
        await self.feed(update)
        return self.session.calls[start:]

    # --- reading ---------------------------------------------------------------------------
    @staticmethod
    def texts(calls: list[TelegramMethod[Any]]) -> list[str]:
        out: list[str] = []
        for c in calls:
            if isinstance(c, SendMessage | EditMessageText) or (isinstance(c, AnswerCallbackQuery) and c.text):
                out.append(c.text)
        return out

    @staticmethod
    def text(calls: list[TelegramMethod[Any]]) -> str:
        return "\n".join(Harness.texts(calls))

    @staticmethod
    def buttons(calls: list[TelegramMethod[Any]]) -> list[tuple[str, str]]:
        """(label, callback data) of every inline button sent or edited in these calls."""
        out: list[tuple[str, str]] = []
        for c in calls:
            markup = getattr(c, "reply_markup", None)
            if isinstance(markup, InlineKeyboardMarkup):
                for row in markup.inline_keyboard:
                    out.extend((b.text, b.callback_data or "") for b in row)
        return out

    @staticmethod
    def commands_set(calls: list[TelegramMethod[Any]]) -> list[SetMyCommands]:
        return [c for c in calls if isinstance(c, SetMyCommands)]
