"""Lookup at meja 1: ``/cari`` or simply sending a ticket or NIK (optionally followed by a birth date).

The answer is the target card with the buttons the person may use (core decides which). ``t:card:<id>``
and ``v:card:<visit_id>`` buttons (from the Daftar Penerima Vaksin) open a card too.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot.callbacks import TargetAction, VisitAction
from bot.i18n import Translator
from bot.render import card_keyboard, error_text, render_card, render_not_found
from core.domain.accounts import Actor, Role
from core.domain.errors import InvalidInput, NotFound
from core.services.registry import Services


class Lookup(StatesGroup):
    key = State()


def build_router() -> Router:
    router = Router(name="lookup")
    router.message.register(ask_key, Command("cari"))
    router.message.register(lookup, Lookup.key, F.text, ~F.text.startswith("/"))
    router.message.register(expect_key, Lookup.key, ~F.text)
    # Sending a ticket or NIK with nothing in progress is a lookup too (the common case at meja 1).
    router.message.register(lookup, StateFilter(None), F.text, ~F.text.startswith("/"), _is_active)
    router.callback_query.register(target_card, TargetAction.filter(F.action == "card"))
    router.callback_query.register(visit_card, VisitAction.filter(F.action == "card"))
    return router


def _is_active(message: Message, actor: Actor) -> bool:
    return actor.is_active


async def ask_key(
    message: Message, t: Translator, state: FSMContext, services: Services, actor: Actor, command: CommandObject
) -> None:
    if command.args:  # "/cari 3273..." looks up at once
        await _lookup(message, command.args, t, state, services, actor)
        return
    await state.set_state(Lookup.key)
    await message.answer(t("lookup.ask"))


async def expect_key(message: Message, t: Translator) -> None:
    await message.answer(t("lookup.ask"))


async def lookup(message: Message, t: Translator, state: FSMContext, services: Services, actor: Actor) -> None:
    assert message.text is not None
    await _lookup(message, message.text, t, state, services, actor)


async def _lookup(
    message: Message, text: str, t: Translator, state: FSMContext, services: Services, actor: Actor
) -> None:
    try:
        card = await services.lookup.find(actor, text)
    except NotFound as exc:
        await state.clear()
        # The verifier's route (add a missing target) starts from a NIK: offer it for a NIK only.
        verifier = Role.VERIFIKASI in actor.roles and exc.reason == "nik"
        await message.answer(render_not_found(exc, t, verifier=verifier))
        return
    except InvalidInput as exc:
        # Stay in /cari (if there): the next message is another try. Nothing was read or written.
        await message.answer(error_text(t, exc))
        return
    await state.clear()
    await message.answer(render_card(card, t), reply_markup=card_keyboard(card, t))


async def target_card(
    callback: CallbackQuery, callback_data: TargetAction, t: Translator, services: Services, actor: Actor
) -> None:
    card = await services.lookup.card(actor, callback_data.target_id)
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.answer(render_card(card, t), reply_markup=card_keyboard(card, t))


async def visit_card(
    callback: CallbackQuery, callback_data: VisitAction, t: Translator, services: Services, actor: Actor
) -> None:
    card = await services.lookup.card_for_visit(actor, callback_data.visit_id)
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.answer(render_card(card, t), reply_markup=card_keyboard(card, t))
