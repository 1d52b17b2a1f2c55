"""Meja 1: register an arrival from the target card, and correct the target's phone number.

Registrasi is one tap on the card (``t:register:<target_id>:<version>``): the card message is edited into
the confirmation plus the fresh card, so a second tap finds the button gone (and core refuses a second
registration anyway). Ubah No HP (``t:phone:...``) asks for the number in one message; ``/batal`` leaves.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot.callbacks import TargetAction
from bot.i18n import Translator
from bot.notifier import Renderer
from bot.render import card_keyboard, edit_in_place, error_text, render_card, render_registered
from core.domain.accounts import Actor
from core.domain.errors import Conflict, FrontdeskError, InvalidInput, Refused
from core.domain.identifiers import format_phone
from core.services.registry import Services

NOTIFICATIONS: Mapping[str, Renderer] = {}


class Meja1(StatesGroup):
    phone = State()


def build_router() -> Router:
    router = Router(name="meja1")
    router.callback_query.register(register, TargetAction.filter(F.action == "register"))
    router.callback_query.register(ask_phone, TargetAction.filter(F.action == "phone"))
    router.message.register(take_phone, Meja1.phone, F.text, ~F.text.startswith("/"))
    router.message.register(take_contact, Meja1.phone, F.contact)
    router.message.register(expect_phone, Meja1.phone, ~F.text)
    return router


async def register(
    callback: CallbackQuery, callback_data: TargetAction, t: Translator, services: Services, actor: Actor
) -> None:
    target_id = callback_data.target_id
    try:
        reg = await services.registration.register(actor, target_id, callback_data.version, with_card=True)
    except (Refused, Conflict) as exc:
        # The card was stale (someone registered or corrected the target since): show the truth.
        await callback.answer(error_text(t, exc)[:190], show_alert=True)
        card = await services.lookup.card(actor, target_id)
        head = t("meja1.card_refreshed") if isinstance(exc, Conflict) else error_text(t, exc)
        await edit_in_place(callback, f"{head}\n\n{render_card(card, t)}", card_keyboard(card, t))
        return
    card = reg.card or await services.lookup.card(actor, target_id)
    await callback.answer(t("meja1.registered_short"))
    await edit_in_place(
        callback, f"{render_registered(reg, card, t)}\n\n{render_card(card, t)}", card_keyboard(card, t)
    )


async def ask_phone(
    callback: CallbackQuery,
    callback_data: TargetAction,
    t: Translator,
    services: Services,
    actor: Actor,
    state: FSMContext,
) -> None:
    card = await services.lookup.card(actor, callback_data.target_id)
    if not card.can("phone"):
        await callback.answer(error_text(t, Refused("phone_locked"))[:190], show_alert=True)
        return
    await state.set_state(Meja1.phone)
    await state.set_data({"target_id": card.target_id, "version": card.version})
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.answer(t("meja1.phone_ask", name=card.name))


async def take_phone(message: Message, t: Translator, services: Services, actor: Actor, state: FSMContext) -> None:
    assert message.text is not None
    await _change_phone(message, message.text, t, services, actor, state)


async def take_contact(message: Message, t: Translator, services: Services, actor: Actor, state: FSMContext) -> None:
    assert message.contact is not None
    await _change_phone(message, message.contact.phone_number, t, services, actor, state)


async def expect_phone(message: Message, t: Translator) -> None:
    await message.answer(t("meja1.phone_expected"))


async def _change_phone(
    message: Message, raw: str, t: Translator, services: Services, actor: Actor, state: FSMContext
) -> None:
    data = await state.get_data()
    target_id, version = data.get("target_id"), data.get("version")
    if not isinstance(target_id, int) or not isinstance(version, int):
        await state.clear()
        await message.answer(t("error.stale_button"))
        return
    try:
        change = await services.registration.change_phone(actor, target_id, raw, seen_version=version)
    except InvalidInput as exc:
        await message.answer(f"{error_text(t, exc)}\n{t('meja1.phone_retry')}")
        return
    except FrontdeskError as exc:
        await state.clear()
        await message.answer(error_text(t, exc))
        return
    await state.clear()
    card = await services.lookup.card(actor, target_id)
    key = "meja1.phone_done" if change.changed else "meja1.phone_same"
    head = t(key, phone=format_phone(change.phone))
    await message.answer(f"{head}\n\n{render_card(card, t)}", reply_markup=card_keyboard(card, t))
