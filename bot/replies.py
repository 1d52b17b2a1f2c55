"""Answering a button press: replace the pressed message, so that its buttons cannot act twice."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot.i18n import Translator

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


async def flow_data(state: FSMContext, visit_id: int, *states: State) -> dict[str, Any] | None:
    """The flow's data when a pressed button belongs to the visit in progress, in one of ``states``; else None."""
    current = await state.get_state()
    data = await state.get_data()
    if current not in {s.state for s in states} or data.get("visit") != visit_id:
        return None
    return data


async def stale(callback: CallbackQuery, t: Translator) -> None:
    """A button of a finished or other flow: say so and take its buttons away."""
    await callback.answer(t("error.stale_button"))
    await remove_buttons(callback)
