"""Lookup at meja 1: ``/cari`` or simply sending a ticket or NIK."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import Message

from bot.i18n import Translator
from bot.render import render_card
from core.domain.accounts import Actor
from core.services.registry import Services


class Lookup(StatesGroup):
    key = State()


def build_router() -> Router:
    router = Router(name="lookup")
    router.message.register(ask_key, Command("cari"))
    router.message.register(lookup, Lookup.key, F.text)
    # Sending a ticket or NIK with nothing in progress is a lookup too (the common case at meja 1).
    router.message.register(lookup, StateFilter(None), F.text, ~F.text.startswith("/"), _is_active)
    return router


def _is_active(message: Message, actor: Actor) -> bool:
    return actor.is_active


async def ask_key(message: Message, t: Translator, state: FSMContext, services: Services, actor: Actor) -> None:
    await state.set_state(Lookup.key)
    await message.answer(t("lookup.ask"))


async def lookup(message: Message, t: Translator, state: FSMContext, services: Services, actor: Actor) -> None:
    assert message.text is not None
    card = await services.lookup.find(actor, message.text)
    await state.clear()
    await message.answer(render_card(card, t))
