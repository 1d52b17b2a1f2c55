"""Build the bot and the dispatcher. The composition root (api/main.py) calls these; nothing else does."""

from __future__ import annotations

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseStorage

from bot.handlers import common, lookup
from bot.middlewares import ActorMiddleware
from core.services.registry import Services

# A syntactically valid token for a bot that never talks to Telegram (the sandbox, the tests).
OFFLINE_TOKEN = "1000000000:offline-sandbox-token-not-for-telegram"


def build_bot(token: str | None, *, api_base: str | None = None, session: BaseSession | None = None) -> Bot:
    if session is None:
        session = AiohttpSession(api=TelegramAPIServer.from_base(api_base)) if api_base else AiohttpSession()
    return Bot(
        token=token or OFFLINE_TOKEN,
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def build_dispatcher(services: Services, storage: BaseStorage, *, events_isolation: object | None = None) -> Dispatcher:
    kwargs: dict[str, object] = {"storage": storage}
    if events_isolation is not None:
        kwargs["events_isolation"] = events_isolation
    dp = Dispatcher(**kwargs)  # type: ignore[arg-type]
    dp.update.outer_middleware(ActorMiddleware(services))
    dp.errors.register(common.on_error)
    dp.include_router(common.build_router())
    dp.include_router(lookup.build_router())
    dp.include_router(common.build_fallback_router())
    return dp
