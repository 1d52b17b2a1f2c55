"""Daftar Penerima Vaksin: ``/antrian`` shows today's list at the actor's faskes.

One message, edited in place: tabs per desk status (and "belum datang"), pages of 8 with ◀ ▶, and
🔄 Refresh, which re-reads PL. Each entry is a button: the next step for a person holding that desk
(``v:screen|vaccinate|observe:<visit_id>``, handled by meja 2 and meja 4), else the card
(``v:card:<visit_id>``). In "belum datang", meja 1 registers with one tap and the list is re-read.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bot.i18n import Translator
from bot.notifier import Renderer
from bot.render import Queue, QueueRegister, default_view, edit_in_place, error_text, render_list
from core.domain.accounts import Actor
from core.domain.errors import Conflict, Refused
from core.services.registry import Services

NOTIFICATIONS: Mapping[str, Renderer] = {}


def build_router() -> Router:
    router = Router(name="antrian")
    router.message.register(show, Command("antrian"))
    router.callback_query.register(navigate, Queue.filter())
    router.callback_query.register(register_awaited, QueueRegister.filter())
    return router


async def show(message: Message, t: Translator, services: Services, actor: Actor) -> None:
    lst = await services.recipients.today(actor)
    page = render_list(lst, default_view(actor.roles), 0, actor.roles, t)
    await message.answer(page.text, reply_markup=page.markup)


async def navigate(
    callback: CallbackQuery, callback_data: Queue, t: Translator, services: Services, actor: Actor
) -> None:
    lst = await services.recipients.today(actor)
    page = render_list(lst, callback_data.view, callback_data.page, actor.roles, t)
    changed = await edit_in_place(callback, page.text, page.markup)
    await callback.answer(None if changed else t("antrian.unchanged"))


async def register_awaited(
    callback: CallbackQuery, callback_data: QueueRegister, t: Translator, services: Services, actor: Actor
) -> None:
    note: str
    alert = False
    try:
        reg = await services.registration.register(actor, callback_data.target_id, callback_data.version)
    except (Refused, Conflict) as exc:
        note, alert = error_text(t, exc), True
        reg = None
    lst = await services.recipients.today(actor)
    if reg is not None:
        name = next((e.name for e in lst.entries if e.visit_id == reg.visit_id), "")
        note = t("antrian.registered", name=name, dose=reg.dose_number)
    page = render_list(lst, "b", callback_data.page, actor.roles, t)
    await edit_in_place(callback, page.text, page.markup)
    await callback.answer(note[:190], show_alert=alert)
