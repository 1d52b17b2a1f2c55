"""Answering a button press: replace the pressed message, so that its buttons cannot act twice."""

from __future__ import annotations

import contextlib
import logging

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

log = logging.getLogger(__name__)


async def edit_or_send(callback: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """Edit the pressed message in place; send a new one when it cannot be edited (too old, not ours)."""
    message = callback.message
    if isinstance(message, Message):
        try:
            await message.edit_text(text, reply_markup=markup)
            return
        except TelegramBadRequest as exc:  # "message is not modified", "message can't be edited", ...
            if "not modified" in str(exc):
                return
            log.debug("edit refused, sending instead: %s", exc)
    if callback.bot is not None:
        await callback.bot.send_message(callback.from_user.id, text, reply_markup=markup)


async def remove_buttons(callback: CallbackQuery) -> None:
    message = callback.message
    if isinstance(message, Message):
        with contextlib.suppress(TelegramBadRequest):
            await message.edit_reply_markup(reply_markup=None)
