"""Once per update: who is acting (from PL), in which language."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, TelegramObject, User

from bot.i18n import Translator, pick_locale, translator
from core.services.registry import Services

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class ActorMiddleware(BaseMiddleware):
    """Resolves the actor once per update and puts ``actor`` and ``t`` (a translator) in the handler data.

    Handlers use the actor to pick menus; core re-checks it for every action.
    """

    def __init__(self, services: Services) -> None:
        self.services = services

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None:
            return await handler(event, data)
        # An unreachable PL raises Unavailable here; the error handler tells the person plainly.
        actor = await self.services.accounts.resolve_actor(user.id)
        data["actor"] = actor
        locale = actor.locale if actor.account_id is not None else pick_locale(user.language_code)
        data["t"] = translator(locale)
        data["services"] = self.services
        return await handler(event, data)


# PL keys are signed 64-bit integers (BIGINT on PostgreSQL, INTEGER on SQLite).
_MIN_ID, _MAX_ID = -(2**63), 2**63 - 1


class RejectImpossibleIds(BaseMiddleware):
    """Callback data is untrusted: a number no PL key can hold names nothing, so its button is stale.

    An inner middleware of the callback queries: it sees the parsed ``callback_data`` of the handler
    that matched (pydantic's parsing, so ``+9…``, ``9_9`` and ``9.0`` are judged as the handler would get
    them) and answers "no longer valid" before any query runs; SQLite and asyncpg refuse to bind such a
    number, which would otherwise end as an unhandled error.
    """

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        callback_data = data.get("callback_data")
        if isinstance(event, CallbackQuery) and isinstance(callback_data, CallbackData):
            numbers = [v for v in vars(callback_data).values() if isinstance(v, int) and not isinstance(v, bool)]
            if any(not _MIN_ID <= n <= _MAX_ID for n in numbers):
                given = data.get("t")
                t = given if isinstance(given, Translator) else translator(pick_locale(event.from_user.language_code))
                await event.answer(t("error.stale_button"))
                return None
        return await handler(event, data)
