"""Build the bot and the dispatcher. The composition root (api/runtime.py) calls these; nothing else does."""

from __future__ import annotations

from collections.abc import Mapping

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage

from bot.dedup import DeduplicateUpdates, Deduplicator, MemoryDeduplicator
from bot.flows import antrian, meja1, meja2, meja4, review, signup, verification
from bot.handlers import admin, common, lookup
from bot.middlewares import ActorMiddleware, RejectImpossibleIds
from bot.notifier import Renderer, TelegramNotifier
from bot.routing import BotDirectory
from core.services.channels import ChannelService
from core.services.registry import Services

# A syntactically valid token for a bot that never talks to Telegram (the sandbox, the tests).
OFFLINE_TOKEN = "1000000000:offline-sandbox-token-not-for-telegram"  # noqa: S105 - not a secret

# Order matters: commands and flows first, the fallback last.
FEATURES = (common, signup, admin, review, antrian, meja1, meja2, meja4, verification, lookup)


def build_bot(
    token: str | None,
    *,
    api_base: str | None = None,
    session: BaseSession | None = None,
    limits: BaseRequestMiddleware | None = None,
) -> Bot:
    """A bot with its own HTTP session (or the given one); ``limits`` (bot/outgoing.py) paces its calls."""
    if session is None:
        session = AiohttpSession(api=TelegramAPIServer.from_base(api_base)) if api_base else AiohttpSession()
    if limits is not None and limits not in session.middleware:
        session.middleware(limits)
    return Bot(
        token=token or OFFLINE_TOKEN,
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def notification_renderers() -> Mapping[str, Renderer]:
    out: dict[str, Renderer] = {}
    for feature in FEATURES:
        out.update(getattr(feature, "NOTIFICATIONS", {}))
    return out


def build_notifier(
    bot: Bot,
    services: Services,
    *,
    directory: BotDirectory | None = None,
    channels: ChannelService | None = None,
) -> TelegramNotifier:
    """Core's notifier; with several bots (``directory``) it routes each person to their bot (``channels``)."""
    return TelegramNotifier(
        bot,
        services.accounts.resolve_actor,
        notification_renderers(),
        directory=directory,
        channel=channels.channel if channels is not None else None,
    )


def build_dispatcher(
    services: Services,
    storage: BaseStorage,
    *,
    events_isolation: BaseEventIsolation | None = None,
    deduplicator: Deduplicator | None = None,
    directory: BotDirectory | None = None,
    channels: ChannelService | None = None,
) -> Dispatcher:
    """One dispatcher for every bot of the deployment; with several, ``channels`` records who uses which."""
    dp = (
        Dispatcher(storage=storage, events_isolation=events_isolation)
        if events_isolation
        else Dispatcher(storage=storage)
    )
    # A repeated delivery is dropped before anything else runs.
    dp.update.outer_middleware(DeduplicateUpdates(deduplicator or MemoryDeduplicator()))
    dp.update.outer_middleware(ActorMiddleware(services, directory=directory, channels=channels))
    dp.callback_query.middleware(RejectImpossibleIds())  # ids in buttons are untrusted: none beyond 64 bits
    dp.errors.register(common.on_error)
    for feature in FEATURES:
        dp.include_router(feature.build_router())
    dp.include_router(common.build_fallback_router())
    return dp
