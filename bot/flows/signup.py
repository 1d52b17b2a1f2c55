"""``/daftar``: ask for access. Name → phone (Telegram's contact button, or typed) → faskes code (confirmed by
name and district) → desks / verifier role (toggle buttons) → summary → submit to the district's Dinkes admins.

The draft lives in FSM data (JSON primitives); core validates everything again when the request is submitted.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

from bot.i18n import Translator
from bot.notifier import Rendered, Renderer
from bot.replies import edit_or_send
from core.domain.accounts import Actor, Role
from core.domain.identifiers import format_phone, normalize_phone
from core.services.access import N_APPROVED, N_REJECTED, clean_name
from core.services.registry import Services


class Signup(StatesGroup):
    name = State()
    phone = State()
    faskes = State()
    faskes_confirm = State()
    roles = State()
    confirm = State()


class SignupCb(CallbackData, prefix="su"):
    action: str  # fy: faskes is right | fc: change code | rt: toggle role | rd: roles done | ok: submit | re: restart
    value: str = ""


ROLE_ORDER: tuple[Role, ...] = (Role.MEJA1, Role.MEJA2, Role.MEJA4, Role.VERIFIKASI)


def roles_label(t: Translator, roles: Iterable[str]) -> str:
    chosen = set(roles)
    return ", ".join(t(f"access.role_short.{r.value}") for r in ROLE_ORDER if r.value in chosen) or "–"


def office_label(t: Translator, office_kind: object, office: object) -> str:
    """ "Dinkes Kota Bandung" for a Dinkes admin's decision, "Admin Pusat" for the central admin's."""
    if office_kind == "dinkes" and office:
        return t("access.office.dinkes", name=office)
    return t("access.office.central")


# --- notifications to the requester ------------------------------------------------------------


def _render_approved(t: Translator, p: Mapping[str, Any]) -> Rendered:
    return t("signup.approved", roles=roles_label(t, p.get("roles", [])), faskes=p.get("faskes_name", "")), None


def _render_rejected(t: Translator, p: Mapping[str, Any]) -> Rendered:
    office = office_label(t, p.get("office_kind"), p.get("office"))
    return t("signup.rejected", office=office, reason=p.get("reason", "")), None


NOTIFICATIONS: Mapping[str, Renderer] = {N_APPROVED: _render_approved, N_REJECTED: _render_rejected}


# --- the flow ----------------------------------------------------------------------------------


def build_router() -> Router:
    router = Router(name="signup")
    router.message.register(start_signup, Command("daftar"))
    router.message.register(got_name, Signup.name, F.text, _not_command)
    router.message.register(expect_name, Signup.name, _not_command)
    router.message.register(got_contact, Signup.phone, F.contact)
    router.message.register(got_phone_text, Signup.phone, F.text, _not_command)
    router.message.register(expect_phone, Signup.phone, _not_command)
    router.message.register(got_faskes, Signup.faskes, F.text, _not_command)
    router.message.register(expect_faskes, Signup.faskes, _not_command)
    router.callback_query.register(faskes_yes, Signup.faskes_confirm, SignupCb.filter(F.action == "fy"))
    router.callback_query.register(faskes_change, Signup.faskes_confirm, SignupCb.filter(F.action == "fc"))
    router.message.register(expect_confirm, Signup.faskes_confirm, _not_command)
    router.callback_query.register(toggle_role, Signup.roles, SignupCb.filter(F.action == "rt"))
    router.callback_query.register(roles_done, Signup.roles, SignupCb.filter(F.action == "rd"))
    router.message.register(expect_roles, Signup.roles, _not_command)
    router.callback_query.register(submit, Signup.confirm, SignupCb.filter(F.action == "ok"))
    router.callback_query.register(restart, Signup.confirm, SignupCb.filter(F.action == "re"))
    router.message.register(expect_submit, Signup.confirm, _not_command)
    return router


def _not_command(message: Message) -> bool:
    """Commands typed during the flow go to their own handlers (/batal, /bantuan, ...)."""
    return not (message.text or "").startswith("/")


async def start_signup(message: Message, actor: Actor, t: Translator, state: FSMContext, services: Services) -> None:
    # A pending request or an active account is refused here, politely, before anything is asked.
    await services.access.check_can_request(actor)
    await state.clear()
    await state.set_state(Signup.name)
    await message.answer(t("signup.ask_name"), reply_markup=ReplyKeyboardRemove())


async def got_name(message: Message, t: Translator, state: FSMContext) -> None:
    assert message.text is not None
    name = clean_name(message.text)  # InvalidInput is answered by the error handler; the step stays
    await state.update_data(name=name)
    await state.set_state(Signup.phone)
    await message.answer(t("signup.ask_phone"), reply_markup=_share_keyboard(t))


async def expect_name(message: Message, t: Translator) -> None:
    await message.answer(t("signup.expect_name"))


def _share_keyboard(t: Translator) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=t("signup.share_button"), request_contact=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
        input_field_placeholder="0812-3456-7890",
    )


async def got_contact(message: Message, t: Translator, state: FSMContext) -> None:
    contact = message.contact
    assert contact is not None
    # Only the sender's own number: a forwarded contact card carries someone else's user id (or none).
    if message.from_user is None or contact.user_id != message.from_user.id:
        await message.answer(t("signup.not_own_contact"), reply_markup=_share_keyboard(t))
        return
    await _accept_phone(message, t, state, contact.phone_number)


async def got_phone_text(message: Message, t: Translator, state: FSMContext) -> None:
    assert message.text is not None
    await _accept_phone(message, t, state, message.text)


async def _accept_phone(message: Message, t: Translator, state: FSMContext, raw: str) -> None:
    e164 = normalize_phone(raw)  # InvalidPhone: the error handler says what a number looks like
    await state.update_data(phone=e164)
    await state.set_state(Signup.faskes)
    # The person typed or shared this number: it is shown whole, to them only.
    await message.answer(t("signup.ask_faskes", phone=format_phone(e164)), reply_markup=ReplyKeyboardRemove())


async def expect_phone(message: Message, t: Translator) -> None:
    await message.answer(t("signup.expect_phone"), reply_markup=_share_keyboard(t))


async def got_faskes(message: Message, t: Translator, state: FSMContext, services: Services) -> None:
    assert message.text is not None
    info = await services.access.describe_faskes(message.text)
    if not info.is_vaccinator:
        await message.answer(t("signup.not_vaccinator", faskes=info.name))
        return
    await state.update_data(faskes_code=info.code, faskes_name=info.name, kabkota_name=info.kabkota_name)
    await state.set_state(Signup.faskes_confirm)
    text = t(
        "signup.confirm_faskes",
        faskes=info.name,
        code=info.code,
        kabkota=info.kabkota_name,
        province=info.province_name,
    )
    await message.answer(text, reply_markup=_faskes_keyboard(t))


def _faskes_keyboard(t: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text=t("signup.yes"), callback_data=SignupCb(action="fy").pack()),
                InlineKeyboardButton(text=t("signup.change_code"), callback_data=SignupCb(action="fc").pack()),
            ]
        ]
    )


async def expect_faskes(message: Message, t: Translator) -> None:
    await message.answer(t("signup.expect_faskes"))


async def faskes_yes(callback: CallbackQuery, t: Translator, state: FSMContext) -> None:
    data = await state.get_data()
    await state.set_state(Signup.roles)
    roles: list[str] = list(data.get("roles", []))
    await edit_or_send(callback, f"{_faskes_line(t, data)}\n\n{t('signup.ask_roles')}", _roles_keyboard(t, roles))
    await callback.answer()


def _faskes_line(t: Translator, data: Mapping[str, Any]) -> str:
    return html.escape(f"{data.get('faskes_name', '')} ({data.get('faskes_code', '')})", quote=False)


async def faskes_change(callback: CallbackQuery, t: Translator, state: FSMContext) -> None:
    await state.set_state(Signup.faskes)
    await edit_or_send(callback, t("signup.expect_faskes"), None)
    await callback.answer()


async def expect_confirm(message: Message, t: Translator) -> None:
    await message.answer(t("signup.expect_confirm"), reply_markup=_faskes_keyboard(t))


def _roles_keyboard(t: Translator, chosen: list[str]) -> InlineKeyboardMarkup:
    def button(role: Role) -> InlineKeyboardButton:
        mark = "☑" if role.value in chosen else "☐"
        return InlineKeyboardButton(
            text=f"{mark} {t(f'access.role.{role.value}')}",
            callback_data=SignupCb(action="rt", value=role.value).pack(),
        )

    rows = [[button(r)] for r in ROLE_ORDER]
    rows.append([InlineKeyboardButton(text=t("signup.done"), callback_data=SignupCb(action="rd").pack())])
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def toggle_role(callback: CallbackQuery, callback_data: SignupCb, t: Translator, state: FSMContext) -> None:
    known = {r.value for r in ROLE_ORDER}
    if callback_data.value not in known:
        await callback.answer(t("error.stale_button"))
        return
    roles: list[str] = list((await state.get_data()).get("roles", []))
    if callback_data.value in roles:
        roles.remove(callback_data.value)
    else:
        roles.append(callback_data.value)
    await state.update_data(roles=roles)
    if isinstance(callback.message, Message):
        await callback.message.edit_reply_markup(reply_markup=_roles_keyboard(t, roles))
    await callback.answer()


async def roles_done(callback: CallbackQuery, t: Translator, state: FSMContext) -> None:
    data = await state.get_data()
    roles: list[str] = list(data.get("roles", []))
    if not roles:
        await callback.answer(t("signup.pick_one"), show_alert=True)
        return
    await state.set_state(Signup.confirm)
    await edit_or_send(callback, _summary(t, data), _confirm_keyboard(t))
    await callback.answer()


def _summary(t: Translator, data: Mapping[str, Any]) -> str:
    return t(
        "signup.summary",
        name=data.get("name", ""),
        phone=format_phone(str(data.get("phone", ""))),
        faskes=data.get("faskes_name", ""),
        code=data.get("faskes_code", ""),
        roles=roles_label(t, data.get("roles", [])),
        kabkota=data.get("kabkota_name", ""),
    )


def _confirm_keyboard(t: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text=t("signup.submit"), callback_data=SignupCb(action="ok").pack()),
                InlineKeyboardButton(text=t("signup.restart"), callback_data=SignupCb(action="re").pack()),
            ]
        ]
    )


async def expect_roles(message: Message, t: Translator, state: FSMContext) -> None:
    roles: list[str] = list((await state.get_data()).get("roles", []))
    await message.answer(t("signup.expect_roles"), reply_markup=_roles_keyboard(t, roles))


async def submit(callback: CallbackQuery, actor: Actor, t: Translator, state: FSMContext, services: Services) -> None:
    data = await state.get_data()
    submitted = await services.access.request_access(
        actor,
        name=str(data.get("name", "")),
        phone=str(data.get("phone", "")),
        faskes_code=str(data.get("faskes_code", "")),
        roles=list(data.get("roles", [])),
        locale=t.locale,
    )
    await state.clear()
    kabkota = submitted.request.kabkota_name
    done = (
        t("signup.sent", kabkota=kabkota) if submitted.admins_notified else t("signup.sent_no_admin", kabkota=kabkota)
    )
    await edit_or_send(callback, f"{_summary(t, data)}\n\n{done}", None)
    await callback.answer()


async def restart(callback: CallbackQuery, t: Translator, state: FSMContext) -> None:
    await state.clear()
    await state.set_state(Signup.name)
    await edit_or_send(callback, t("signup.ask_name"), None)
    await callback.answer()


async def expect_submit(message: Message, t: Translator) -> None:
    await message.answer(t("signup.expect_submit"), reply_markup=_confirm_keyboard(t))
