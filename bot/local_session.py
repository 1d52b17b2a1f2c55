"""An in-process Bot API session: outgoing calls never leave the process.

It answers each Bot API method with a plausible result (a ``Message`` with a fresh id for a send, ``True``
for most others) and hands every call to a sink. The tests record with it; the sandbox routes the calls
into its chat store with it. Handlers and core cannot tell it from Telegram.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.methods import (
    EditMessageReplyMarkup,
    EditMessageText,
    GetMe,
    SendDocument,
    SendMessage,
    TelegramMethod,
)
from aiogram.methods.base import TelegramType
from aiogram.types import Chat, Document, Message, User

BOT_USER = User(id=1000000000, is_bot=True, first_name="PCare Frontdesk", username="pcare_frontdesk_bot")

Sink = Callable[[TelegramMethod[Any], Any], Awaitable[None] | None]


class LocalSession(BaseSession):
    """``record``: keep every call in ``calls`` (tests read them); a long-running sandbox does not.

    The messages sent are remembered (the last ``KEEP_SENT``) so that an edit can return the whole message;
    an edit of an older one is answered like an edit Telegram refuses to show (``True``).
    """

    KEEP_SENT = 20_000

    def __init__(self, sink: Sink | None = None, *, record: bool = True) -> None:
        super().__init__()
        self.sink = sink
        self.record = record
        self.calls: list[TelegramMethod[Any]] = []
        self._ids = itertools.count(1)
        # Text of messages we sent, per (chat, message id), so an edit can return the whole message.
        self._sent: OrderedDict[tuple[int, int], Message] = OrderedDict()

    async def close(self) -> None:
        return None

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,  # noqa: ASYNC109 - BaseSession's signature
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        yield b""

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 - BaseSession's signature
    ) -> TelegramType:
        if self.record:
            self.calls.append(method)
        result = self._result(method)
        if self.sink is not None:
            maybe = self.sink(method, result)
            if maybe is not None:
                await maybe
        return cast(TelegramType, result)

    def _message(self, chat_id: int, **fields: Any) -> Message:
        msg = Message(
            message_id=next(self._ids),
            date=datetime.now(UTC),
            chat=Chat(id=chat_id, type="private"),
            from_user=BOT_USER,
            **fields,
        )
        self._sent[(chat_id, msg.message_id)] = msg
        if len(self._sent) > self.KEEP_SENT:
            self._sent.popitem(last=False)
        return msg

    def _result(self, method: TelegramMethod[Any]) -> Any:
        if isinstance(method, GetMe):
            return BOT_USER
        if isinstance(method, SendMessage):
            return self._message(int(method.chat_id), text=method.text, reply_markup=_inline(method.reply_markup))
        if isinstance(method, SendDocument):
            name = getattr(method.document, "filename", None) or "file"
            return self._message(
                int(method.chat_id),
                caption=method.caption,
                document=Document(file_id=f"local-{name}", file_unique_id=name, file_name=name),
            )
        if isinstance(method, EditMessageText | EditMessageReplyMarkup):
            if method.chat_id is None or method.message_id is None:
                return True
            key = (int(method.chat_id), method.message_id)
            old = self._sent.get(key)
            if old is None:
                return True
            updates: dict[str, Any] = {"reply_markup": _inline(method.reply_markup)}
            if isinstance(method, EditMessageText):
                updates["text"] = method.text
            new = old.model_copy(update=updates)
            self._sent[key] = new
            return new
        return True


def _inline(markup: Any) -> Any:
    """Only inline keyboards belong to a message; reply keyboards belong to the chat input."""
    from aiogram.types import InlineKeyboardMarkup

    return markup if isinstance(markup, InlineKeyboardMarkup) else None
