"""Core's Notifier port, in Telegram: messages outside the conversation a person is in.

Core says *what* to tell (a notification key and its parameters); each flow module registers how that
key looks in chat (text and buttons) in ``NOTIFICATIONS``. Menus are refreshed from the account as PL
holds it now (``setMyCommands`` with ``BotCommandScopeChat``).

With several bots (``bot/routing.py``), both go out through the bot that reaches the person: the one they
last wrote to, else their province's, else the first. With one bot nothing is looked up.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand, BotCommandScopeChat, InlineKeyboardMarkup

from bot.i18n import Translator, translator
from bot.menus import commands_for
from bot.routing import BotDirectory
from core.domain.accounts import Actor
from core.services.channels import Channel

log = logging.getLogger(__name__)

# A renderer turns (translator, params) into text and optional inline buttons.
Rendered = tuple[str, InlineKeyboardMarkup | None]
Renderer = Callable[[Translator, Mapping[str, Any]], Rendered]
ActorResolver = Callable[[int], Awaitable[Actor]]
ChannelLookup = Callable[[int], Awaitable[Channel | None]]


class TelegramNotifier:
    def __init__(
        self,
        bot: Bot,
        resolve_actor: ActorResolver,
        renderers: Mapping[str, Renderer],
        *,
        directory: BotDirectory | None = None,
        channel: ChannelLookup | None = None,
    ) -> None:
        self.bot = bot  # the default (first) bot
        self.resolve_actor = resolve_actor
        self.renderers = dict(renderers)
        self.directory = directory
        self.channel = channel

    async def bot_for(self, telegram_id: int) -> Bot:
        """The bot that reaches this person (see bot/routing.py)."""
        if self.directory is None or not self.directory.several or self.channel is None:
            return self.bot
        found = await self.channel(telegram_id)
        if found is None:
            return self.directory.primary
        return self.directory.choose(found.bot_key, found.province_code)

    async def notify(self, telegram_id: int, message: str, **params: object) -> None:
        actor = await self.resolve_actor(telegram_id)
        t = translator(actor.locale)
        renderer = self.renderers.get(message)
        text, markup = renderer(t, params) if renderer else (t(message, **params), None)
        bot = await self.bot_for(telegram_id)
        try:
            await bot.send_message(telegram_id, text, reply_markup=markup)
        except TelegramAPIError as exc:
            # The person may have blocked the bot; PL has the record either way.
            log.warning("notification %s to account %s not delivered: %s", message, actor.account_id, exc)

    async def refresh_menu(self, telegram_id: int) -> None:
        actor = await self.resolve_actor(telegram_id)
        t = translator(actor.locale)
        commands = [BotCommand(command=c, description=t(f"commands.{c}")) for c in commands_for(actor)]
        bot = await self.bot_for(telegram_id)
        try:
            await bot.set_my_commands(commands, scope=BotCommandScopeChat(chat_id=telegram_id))
        except TelegramAPIError as exc:
            log.warning("menu of account %s not refreshed: %s", actor.account_id, exc)
