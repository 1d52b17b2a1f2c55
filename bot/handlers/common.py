"""One-step commands everyone has: /start, /bantuan, /batal, /bahasa; errors and the fallback."""

from __future__ import annotations

import logging
import sys

from aiogram import F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, ErrorEvent, Message, ReplyKeyboardRemove

from bot.handlers.admin import standing_text
from bot.i18n import Translator, pick_locale, translator
from bot.menus import commands_for
from core.domain.accounts import AccountState, Actor
from core.domain.errors import FrontdeskError
from core.services.registry import Services

log = logging.getLogger(__name__)


def build_router() -> Router:
    router = Router(name="common")
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("bantuan", "help", "menu"))
    router.message.register(cancel, Command("batal", "cancel"))
    return router


def build_fallback_router() -> Router:
    """Registered last: anything no flow or command took."""
    router = Router(name="fallback")
    router.message.register(fallback, F.text | F.contact | F.document | F.photo | F.sticker | F.voice)
    router.callback_query.register(stale_button)
    return router


def menu_text(actor: Actor, t: Translator) -> str:
    lines = [f"/{c} – {t(f'commands.{c}')}" for c in commands_for(actor)]
    return "\n".join(lines)


async def start(message: Message, actor: Actor, t: Translator, state: FSMContext, services: Services) -> None:
    await state.clear()
    # The chat's command menu follows the account as PL holds it now (also for admins created on the
    # command line, whom no bot could reach before their first /start).
    await services.ctx.notifier.refresh_menu(actor.telegram_id)
    if actor.account_id is None:
        text = t("start.stranger")
    elif actor.state is AccountState.ACTIVE:
        text = f"{t('start.active', name=actor.name or '')}\n{menu_text(actor, t)}"
    elif actor.state is AccountState.PENDING:
        text = t("start.pending")
    elif actor.state in (AccountState.REJECTED, AccountState.REVOKED):
        # The reason, and the office that decided (access feature).
        text = await standing_text(services, actor, t)
    else:
        text = t("start.stranger")
    # A reply keyboard left over from an abandoned flow (the share-contact button) goes away.
    await message.answer(text, reply_markup=ReplyKeyboardRemove())


async def help_(message: Message, actor: Actor, t: Translator) -> None:
    await message.answer(f"{t('help.title')}\n{menu_text(actor, t)}")


async def cancel(message: Message, t: Translator, state: FSMContext) -> None:
    had = await state.get_state()
    await state.clear()
    await message.answer(
        t("common.cancelled") if had else t("common.nothing_to_cancel"), reply_markup=ReplyKeyboardRemove()
    )


async def fallback(message: Message, actor: Actor, t: Translator) -> None:
    await message.answer(t("fallback.unknown") if actor.is_active else t("fallback.stranger"))


async def stale_button(callback: CallbackQuery, t: Translator) -> None:
    """A button from an old message or a finished flow: say so, do nothing."""
    await callback.answer(t("error.stale_button"), show_alert=False)


def _is_redis_error(exc: BaseException) -> bool:
    """A Redis failure, without importing redis (4 MB) into a process that has no Redis: then none can occur."""
    errors = sys.modules.get("redis.exceptions")
    return errors is not None and isinstance(exc, errors.RedisError)


async def drop_duplicate(event: ErrorEvent) -> bool:
    """A repeated delivery, refused by the conversation store's lock (bot/dedup.py): dropped, no answer."""
    log.debug("update %s delivered again: dropped", event.update.update_id)
    return True


async def on_error(event: ErrorEvent, **data: object) -> bool:
    """Typed core errors become a plain message; anything else is logged and apologised for."""
    exc = event.exception
    update = event.update
    user = None
    target_message: Message | None = None
    if update.message:
        user, target_message = update.message.from_user, update.message
    elif update.callback_query:
        user = update.callback_query.from_user
        m = update.callback_query.message
        target_message = m if isinstance(m, Message) else None
    given = data.get("t")
    t = given if isinstance(given, Translator) else translator(pick_locale(user.language_code if user else None))
    if _is_redis_error(exc):
        # The conversation store is down: say so plainly; PL itself was not touched by this update.
        text = t("error.unavailable.state")
        log.error("conversation state unavailable for update %s: %s", update.update_id, type(exc).__name__)
    elif isinstance(exc, FrontdeskError):
        text = t.error(exc)
        log.info("refused update %s: %s", update.update_id, exc.key)
    else:
        text = t("error.generic")
        log.exception("unhandled error in update %s", update.update_id, exc_info=exc)
    if update.callback_query:
        try:
            await update.callback_query.answer(text[:190], show_alert=True)
            return True
        except TelegramAPIError as api_error:  # an expired query: fall through to a message
            log.debug("callback answer failed: %s", api_error)
    if target_message is not None:
        await target_message.answer(text)
    return True
