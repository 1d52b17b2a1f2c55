"""Once per update: who is acting (from PL), in which language."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User

from bot.i18n import pick_locale, translator
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
