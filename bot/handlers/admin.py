"""Dinkes and central admins in chat: decide access requests, list and manage faskes accounts, appoint Dinkes
admins; and ``/bahasa`` for everyone.

Handlers parse, call one core method, render. Every id in a button or a command is passed to core, which checks
the actor's role, state and district again; nothing here decides a permission.

Commands: /permintaan, /setujui N, /tolak N [alasan], /akun KODE, /cabut N [alasan], /dinkes TID KABKOTA NAMA,
/bahasa [id|en]. Buttons: ``ar`` (approve / reject a request), ``arp`` (page of requests), ``rs`` (a one-tap
reason), ``ac`` (revoke / change desks of an account), ``acp`` (page of accounts), ``rl`` (desk toggles),
``lg`` (language).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.flows.signup import ROLE_ORDER, office_label, roles_label
from bot.i18n import Safe, Translator, translator
from bot.notifier import Rendered, Renderer
from bot.replies import edit_or_send
from core.domain.accounts import AccountKind, AccountState, Actor, Role
from core.domain.errors import Conflict
from core.services.access import (
    N_DINKES,
    N_NEW_REQUEST,
    N_REVOKED,
    N_ROLES,
    AccountsPage,
    PendingPage,
    RequestView,
)
from core.services.registry import Services

log = logging.getLogger(__name__)

ACCOUNTS_PAGE = 8
REJECT_REASONS = ("not_staff", "wrong_faskes", "wrong_role", "unverified")
REVOKE_REASONS = ("moved", "left", "misuse", "faskes_request")
FROM_NOTIFICATION = -1


# --- callback data (untrusted: core re-checks every id) -----------------------------------------


class ReqCb(CallbackData, prefix="ar"):
    action: str  # ok | no
    request_id: int
    page: int = FROM_NOTIFICATION  # offset of the /permintaan page pressed on; -1: a notification


class ReqPageCb(CallbackData, prefix="arp"):
    offset: int


class ReasonCb(CallbackData, prefix="rs"):
    kind: str  # rq: reject a request | ac: revoke an account
    target: int
    code: str


class AcctCb(CallbackData, prefix="ac"):
    action: str  # rv: revoke | rl: change desks
    account_id: int
    offset: int = 0  # page of /akun pressed on


class AcctPageCb(CallbackData, prefix="acp"):
    faskes: str
    offset: int


class RolesCb(CallbackData, prefix="rl"):
    action: str  # t: toggle | ok: save | x: back
    account_id: int
    version: int
    mask: int
    bit: int = 0
    offset: int = 0


class LangCb(CallbackData, prefix="lg"):
    code: str


class AdminFlow(StatesGroup):
    reason = State()  # data: kind, target, name, origin (chat, message, page, faskes)


# --- rendering ----------------------------------------------------------------------------------


def _short(name: str, limit: int = 22) -> str:
    """A name for a button label (plain text, not HTML: the caller marks it Safe from escaping)."""
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _btn(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def request_card(
    t: Translator,
    *,
    request_id: object,
    name: object,
    faskes_name: object,
    faskes_code: object,
    roles: Iterable[str],
    phone_masked: object,
) -> str:
    return t(
        "admin.request_card",
        id=request_id,
        name=name,
        faskes=faskes_name,
        code=faskes_code,
        roles=roles_label(t, roles),
        phone=phone_masked,
    )


def _view_card(t: Translator, v: RequestView) -> str:
    return request_card(
        t,
        request_id=v.request_id,
        name=v.name,
        faskes_name=v.faskes_name,
        faskes_code=v.faskes_code,
        roles=[r.value for r in v.roles],
        phone_masked=v.phone_masked,
    )


def _decided_card(t: Translator, v: RequestView) -> str:
    if v.status == "approved":
        line = t("admin.decided_approved", by=v.decided_by_name or "–")
    else:
        line = t("admin.decided_rejected", by=v.decided_by_name or "–", reason=v.reason or "–")
    return f"{_view_card(t, v)}\n\n{line}"


def _decision_buttons(t: Translator, request_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _btn(t("admin.approve"), ReqCb(action="ok", request_id=request_id)),
                _btn(t("admin.reject"), ReqCb(action="no", request_id=request_id)),
            ]
        ]
    )


def render_pending(t: Translator, page: PendingPage, header: str | None = None) -> Rendered:
    scope = page.kabkota_name or t("admin.scope_all")
    lines = [header] if header else []
    if not page.items:
        lines.append(t("admin.pending_none", scope=scope))
        return "\n".join(lines), None
    lines.append(t("admin.pending_title", scope=scope, total=page.total))
    rows: list[list[InlineKeyboardButton]] = []
    for i, v in enumerate(page.items):
        n = page.offset + i + 1
        lines.append("")
        lines.append(
            t(
                "admin.pending_item",
                n=n,
                name=v.name,
                id=v.request_id,
                faskes=v.faskes_name,
                code=v.faskes_code,
                roles=roles_label(t, [r.value for r in v.roles]),
                phone=v.phone_masked,
            )
        )
        rows.append(
            [
                _btn(
                    t("admin.approve_n", n=n, name=Safe(_short(v.name))),
                    ReqCb(action="ok", request_id=v.request_id, page=page.offset),
                ),
                _btn(t("admin.reject_n", n=n), ReqCb(action="no", request_id=v.request_id, page=page.offset)),
            ]
        )
    nav: list[InlineKeyboardButton] = []
    if page.has_prev:
        nav.append(_btn(t("admin.prev"), ReqPageCb(offset=max(0, page.offset - page.limit))))
    if page.has_next:
        nav.append(_btn(t("admin.next"), ReqPageCb(offset=page.offset + page.limit)))
    if nav:
        rows.append(nav)
        pages = (page.total + page.limit - 1) // page.limit
        lines.append("")
        lines.append(t("admin.page", page=page.offset // page.limit + 1, pages=pages))
    lines.append("")
    lines.append(t("admin.hint"))
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows)


def render_accounts(t: Translator, page: AccountsPage, header: str | None = None) -> Rendered:
    f = page.faskes
    lines = [header] if header else []
    if not page.items:
        lines.append(t("admin.accounts_none", faskes=f.name, code=f.code))
        return "\n".join(lines), None
    lines.append(t("admin.accounts_title", faskes=f.name, code=f.code, total=page.total))
    rows: list[list[InlineKeyboardButton]] = []
    for i, a in enumerate(page.items):
        n = page.offset + i + 1
        roles = roles_label(t, [r.value for r in a.roles]) if a.roles else t("admin.no_roles")
        lines.append("")
        lines.append(
            t(
                "admin.account_item",
                n=n,
                name=a.name,
                id=a.account_id,
                roles=roles,
                state=t(f"access.state.{a.state.value}"),
            )
        )
        if a.state is AccountState.ACTIVE and a.kind is AccountKind.FASKES:
            rows.append(
                [
                    _btn(t("admin.roles_n", n=n), AcctCb(action="rl", account_id=a.account_id, offset=page.offset)),
                    _btn(t("admin.revoke_n", n=n), AcctCb(action="rv", account_id=a.account_id, offset=page.offset)),
                ]
            )
    nav: list[InlineKeyboardButton] = []
    if page.has_prev:
        nav.append(_btn(t("admin.prev"), AcctPageCb(faskes=f.code, offset=max(0, page.offset - page.limit))))
    if page.has_next:
        nav.append(_btn(t("admin.next"), AcctPageCb(faskes=f.code, offset=page.offset + page.limit)))
    if nav:
        rows.append(nav)
        pages = (page.total + page.limit - 1) // page.limit
        lines.append("")
        lines.append(t("admin.page", page=page.offset // page.limit + 1, pages=pages))
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def _mask(roles: Iterable[Role]) -> int:
    chosen = set(roles)
    return sum(1 << i for i, r in enumerate(ROLE_ORDER) if r in chosen)


def _roles_of(mask: int) -> list[str]:
    return [r.value for i, r in enumerate(ROLE_ORDER) if mask & (1 << i)]


def _roles_keyboard(t: Translator, account_id: int, version: int, mask: int, offset: int) -> InlineKeyboardMarkup:
    rows: list[list[InlineKeyboardButton]] = []
    for i, r in enumerate(ROLE_ORDER):
        mark = "☑" if mask & (1 << i) else "☐"
        data = RolesCb(action="t", account_id=account_id, version=version, mask=mask, bit=i, offset=offset)
        rows.append([_btn(f"{mark} {t(f'access.role.{r.value}')}", data)])
    rows.append(
        [
            _btn(
                t("admin.save"), RolesCb(action="ok", account_id=account_id, version=version, mask=mask, offset=offset)
            ),
            _btn(
                t("admin.back"), RolesCb(action="x", account_id=account_id, version=version, mask=mask, offset=offset)
            ),
        ]
    )
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _reason_keyboard(t: Translator, kind: str, target: int) -> InlineKeyboardMarkup:
    codes, table = (REJECT_REASONS, "admin.reject_reason") if kind == "rq" else (REVOKE_REASONS, "admin.revoke_reason")
    return InlineKeyboardMarkup(
        inline_keyboard=[[_btn(t(f"{table}.{c}"), ReasonCb(kind=kind, target=target, code=c))] for c in codes]
    )


# --- notifications ------------------------------------------------------------------------------


def _render_new_request(t: Translator, p: Mapping[str, Any]) -> Rendered:
    rid = int(p.get("request_id", 0))
    text = request_card(
        t,
        request_id=rid,
        name=p.get("name", ""),
        faskes_name=p.get("faskes_name", ""),
        faskes_code=p.get("faskes_code", ""),
        roles=p.get("roles", []),
        phone_masked=p.get("phone_masked", ""),
    )
    return text, _decision_buttons(t, rid)


def _render_revoked(t: Translator, p: Mapping[str, Any]) -> Rendered:
    office = office_label(t, p.get("office_kind"), p.get("office"))
    return t("access.notify.revoked", office=office, reason=p.get("reason", "")), None


def _render_roles(t: Translator, p: Mapping[str, Any]) -> Rendered:
    return t(
        "access.notify.roles_changed", faskes=p.get("faskes_name", ""), roles=roles_label(t, p.get("roles", []))
    ), None


def _render_dinkes(t: Translator, p: Mapping[str, Any]) -> Rendered:
    return t("access.notify.dinkes_granted", office=p.get("office", "")), None


NOTIFICATIONS: Mapping[str, Renderer] = {
    N_NEW_REQUEST: _render_new_request,
    N_REVOKED: _render_revoked,
    N_ROLES: _render_roles,
    N_DINKES: _render_dinkes,
}


# --- the router ---------------------------------------------------------------------------------


def build_router() -> Router:
    router = Router(name="admin")
    router.message.register(pending, Command("permintaan"))
    router.message.register(approve_cmd, Command("setujui"))
    router.message.register(reject_cmd, Command("tolak"))
    router.message.register(accounts_cmd, Command("akun"))
    router.message.register(revoke_cmd, Command("cabut"))
    router.message.register(dinkes_cmd, Command("dinkes"))
    router.message.register(language_cmd, Command("bahasa", "language"))
    router.message.register(reason_text, AdminFlow.reason, F.text, _not_command)
    router.message.register(expect_reason, AdminFlow.reason, _not_command)
    # A revoked account writing anything is told plainly by whom and why (not "you have no access").
    router.message.register(revoked_notice, StateFilter(None), F.text, _not_command, _is_revoked)
    router.callback_query.register(approve_button, ReqCb.filter(F.action == "ok"))
    router.callback_query.register(reject_button, ReqCb.filter(F.action == "no"))
    router.callback_query.register(pending_page, ReqPageCb.filter())
    router.callback_query.register(reason_button, ReasonCb.filter())
    router.callback_query.register(revoke_button, AcctCb.filter(F.action == "rv"))
    router.callback_query.register(roles_button, AcctCb.filter(F.action == "rl"))
    router.callback_query.register(accounts_page, AcctPageCb.filter())
    router.callback_query.register(roles_toggle, RolesCb.filter())
    router.callback_query.register(language_button, LangCb.filter())
    return router


def _not_command(message: Message) -> bool:
    return not (message.text or "").startswith("/")


def _is_revoked(message: Message, actor: Actor) -> bool:
    return actor.account_id is not None and actor.state is AccountState.REVOKED


async def standing_text(services: Services, actor: Actor, t: Translator) -> str:
    """/start for a rejected or revoked account: the reason and the office that decided."""
    s = await services.access.standing(actor)
    office = office_label(t, s.office_kind.value if s.office_kind else None, s.office_name)
    key = "start.revoked" if s.state is AccountState.REVOKED else "start.rejected"
    return t(key, office=office, reason=s.reason or "–")


async def revoked_notice(message: Message, actor: Actor, t: Translator, services: Services) -> None:
    await message.answer(await standing_text(services, actor, t))


def _args(command: CommandObject) -> list[str]:
    return (command.args or "").split()


def _int(raw: str) -> int | None:
    raw = raw.lstrip("#")
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


async def _edit_message(
    bot: Bot, chat_id: int, message_id: int, text: str, markup: InlineKeyboardMarkup | None
) -> None:
    try:
        await bot.edit_message_text(text=text, chat_id=chat_id, message_id=message_id, reply_markup=markup)
    except TelegramBadRequest as exc:
        log.debug("edit skipped: %s", exc)


# --- requests -----------------------------------------------------------------------------------


async def pending(message: Message, actor: Actor, t: Translator, services: Services) -> None:
    page = await services.access.pending_requests(actor)
    text, markup = render_pending(t, page)
    await message.answer(text, reply_markup=markup)


async def pending_page(
    callback: CallbackQuery, callback_data: ReqPageCb, actor: Actor, t: Translator, services: Services
) -> None:
    page = await services.access.pending_requests(actor, offset=callback_data.offset)
    await edit_or_send(callback, *render_pending(t, page))
    await callback.answer()


async def approve_button(
    callback: CallbackQuery, callback_data: ReqCb, actor: Actor, t: Translator, services: Services
) -> None:
    try:
        decision = await services.access.approve(actor, callback_data.request_id)
    except Conflict:
        # Decided already (another admin, or a second tap): refresh what this admin sees, then say by whom.
        await _after_decision(callback, callback_data.page, actor, t, services, None)
        raise
    await _after_decision(callback, callback_data.page, actor, t, services, decision.request)
    await callback.answer(t("admin.approved_toast", name=decision.request.name))


async def _after_decision(
    callback: CallbackQuery, page: int, actor: Actor, t: Translator, services: Services, view: RequestView | None
) -> None:
    if page >= 0:
        await edit_or_send(callback, *render_pending(t, await services.access.pending_requests(actor, offset=page)))
    elif view is not None:
        await edit_or_send(callback, _decided_card(t, view), None)
    elif isinstance(callback.message, Message):
        try:
            await callback.message.edit_reply_markup(reply_markup=None)
        except TelegramBadRequest as exc:
            log.debug("buttons already gone: %s", exc)


async def approve_cmd(
    message: Message, command: CommandObject, actor: Actor, t: Translator, services: Services
) -> None:
    args = _args(command)
    rid = _int(args[0]) if args else None
    if rid is None:
        await services.access.admin_scope(actor)  # refuses anyone who is not an admin, before any hint
        await message.answer(t("admin.usage_setujui"))
        return
    decision = await services.access.approve(actor, rid)
    await message.answer(t("admin.approved_done", name=decision.request.name, faskes=decision.request.faskes_name))


async def reject_button(
    callback: CallbackQuery, callback_data: ReqCb, actor: Actor, t: Translator, state: FSMContext, services: Services
) -> None:
    view = await services.access.request(actor, callback_data.request_id)  # scope and "still pending"
    origin: dict[str, Any] = {"page": callback_data.page}
    if isinstance(callback.message, Message):
        origin.update(chat=callback.message.chat.id, message=callback.message.message_id)
    await _ask_reason(callback.from_user.id, callback.bot, t, state, "rq", view.request_id, view.name, origin)
    await callback.answer()


async def reject_cmd(
    message: Message, command: CommandObject, actor: Actor, t: Translator, state: FSMContext, services: Services
) -> None:
    args = _args(command)
    rid = _int(args[0]) if args else None
    if rid is None:
        await services.access.admin_scope(actor)
        await message.answer(t("admin.usage_tolak"))
        return
    if len(args) > 1:
        decision = await services.access.reject(actor, rid, " ".join(args[1:]))
        await state.clear()
        await message.answer(t("admin.rejected_done", name=decision.request.name, reason=decision.request.reason or ""))
        return
    view = await services.access.request(actor, rid)
    await _ask_reason(message.chat.id, message.bot, t, state, "rq", view.request_id, view.name, {})


async def _ask_reason(
    chat_id: int,
    bot: Bot | None,
    t: Translator,
    state: FSMContext,
    kind: str,
    target: int,
    name: str,
    origin: dict[str, Any],
) -> None:
    await state.set_state(AdminFlow.reason)
    await state.set_data({"kind": kind, "target": target, "name": name, "origin": origin})
    key = "admin.ask_reject_reason" if kind == "rq" else "admin.ask_revoke_reason"
    assert bot is not None
    await bot.send_message(chat_id, t(key, name=name), reply_markup=_reason_keyboard(t, kind, target))


async def reason_button(
    callback: CallbackQuery, callback_data: ReasonCb, actor: Actor, t: Translator, state: FSMContext, services: Services
) -> None:
    codes = REJECT_REASONS if callback_data.kind == "rq" else REVOKE_REASONS
    if callback_data.kind not in ("rq", "ac") or callback_data.code not in codes:
        await callback.answer(t("error.stale_button"))
        return
    table = "admin.reject_reason" if callback_data.kind == "rq" else "admin.revoke_reason"
    reason = t(f"{table}.{callback_data.code}")
    data = await state.get_data()
    same = data.get("kind") == callback_data.kind and data.get("target") == callback_data.target
    text = await _act(actor, t, services, callback_data.kind, callback_data.target, reason)
    await edit_or_send(callback, text, None)
    if same:
        await state.clear()
        await _refresh_origin(callback.bot, actor, t, services, data)
    await callback.answer()


async def reason_text(message: Message, actor: Actor, t: Translator, state: FSMContext, services: Services) -> None:
    assert message.text is not None
    data = await state.get_data()
    kind, target = str(data.get("kind", "")), int(data.get("target", 0))
    if kind not in ("rq", "ac"):
        await state.clear()
        await message.answer(t("common.cancelled"))
        return
    text = await _act(actor, t, services, kind, target, message.text)
    await state.clear()
    await message.answer(text)
    await _refresh_origin(message.bot, actor, t, services, data)


async def expect_reason(message: Message, t: Translator) -> None:
    await message.answer(t("admin.expect_reason"))


async def _act(actor: Actor, t: Translator, services: Services, kind: str, target: int, reason: str) -> str:
    if kind == "rq":
        decision = await services.access.reject(actor, target, reason)
        return t("admin.rejected_done", name=decision.request.name, reason=decision.request.reason or "")
    account = await services.access.revoke(actor, target, reason)
    return t("admin.revoked_done", name=account.name, reason=account.state_reason or "")


async def _refresh_origin(
    bot: Bot | None, actor: Actor, t: Translator, services: Services, data: Mapping[str, Any]
) -> None:
    """Bring the list (or notification) the reason was asked from up to date."""
    origin = data.get("origin") or {}
    chat, msg = origin.get("chat"), origin.get("message")
    if bot is None or not isinstance(chat, int) or not isinstance(msg, int):
        return
    try:
        if data.get("kind") == "rq":
            page = int(origin.get("page", FROM_NOTIFICATION))
            if page >= 0:
                text, markup = render_pending(t, await services.access.pending_requests(actor, offset=page))
            else:
                text, markup = t("admin.rejected_toast", name=data.get("name", "")), None
        else:
            faskes = str(origin.get("faskes", ""))
            page_ = await services.access.accounts_of_faskes(
                actor, faskes, offset=int(origin.get("page", 0)), limit=ACCOUNTS_PAGE
            )
            text, markup = render_accounts(t, page_)
    except Exception:  # the decision is saved; an out-of-date list is only cosmetic
        log.exception("origin message not refreshed")
        return
    await _edit_message(bot, chat, msg, text, markup)


# --- accounts -----------------------------------------------------------------------------------


async def accounts_cmd(
    message: Message, command: CommandObject, actor: Actor, t: Translator, services: Services
) -> None:
    args = _args(command)
    if not args:
        await services.access.admin_scope(actor)
        await message.answer(t("admin.usage_akun"))
        return
    page = await services.access.accounts_of_faskes(actor, args[0], limit=ACCOUNTS_PAGE)
    text, markup = render_accounts(t, page)
    await message.answer(text, reply_markup=markup)


async def accounts_page(
    callback: CallbackQuery, callback_data: AcctPageCb, actor: Actor, t: Translator, services: Services
) -> None:
    page = await services.access.accounts_of_faskes(
        actor, callback_data.faskes, offset=callback_data.offset, limit=ACCOUNTS_PAGE
    )
    await edit_or_send(callback, *render_accounts(t, page))
    await callback.answer()


async def revoke_button(
    callback: CallbackQuery, callback_data: AcctCb, actor: Actor, t: Translator, state: FSMContext, services: Services
) -> None:
    view = await services.access.account(actor, callback_data.account_id)
    origin: dict[str, Any] = {"page": callback_data.offset, "faskes": view.faskes_code or ""}
    if isinstance(callback.message, Message):
        origin.update(chat=callback.message.chat.id, message=callback.message.message_id)
    await _ask_reason(callback.from_user.id, callback.bot, t, state, "ac", view.account_id, view.name, origin)
    await callback.answer()


async def revoke_cmd(
    message: Message, command: CommandObject, actor: Actor, t: Translator, state: FSMContext, services: Services
) -> None:
    args = _args(command)
    aid = _int(args[0]) if args else None
    if aid is None:
        await services.access.admin_scope(actor)
        await message.answer(t("admin.usage_cabut"))
        return
    if len(args) > 1:
        account = await services.access.revoke(actor, aid, " ".join(args[1:]))
        await state.clear()
        await message.answer(t("admin.revoked_done", name=account.name, reason=account.state_reason or ""))
        return
    view = await services.access.account(actor, aid)
    await _ask_reason(message.chat.id, message.bot, t, state, "ac", view.account_id, view.name, {})


async def roles_button(
    callback: CallbackQuery, callback_data: AcctCb, actor: Actor, t: Translator, services: Services
) -> None:
    view = await services.access.account(actor, callback_data.account_id)
    markup = _roles_keyboard(t, view.account_id, view.version, _mask(view.roles), callback_data.offset)
    await edit_or_send(callback, t("admin.roles_title", name=view.name), markup)
    await callback.answer()


async def roles_toggle(
    callback: CallbackQuery, callback_data: RolesCb, actor: Actor, t: Translator, services: Services
) -> None:
    cb = callback_data
    if cb.action == "ok":
        change = await services.access.change_roles(actor, cb.account_id, _roles_of(cb.mask), seen_version=cb.version)
        a = change.account
        if change.changed:
            header = t("admin.roles_saved", name=a.name, roles=roles_label(t, [r.value for r in a.roles]))
        else:
            header = t("admin.roles_same")
        page = await services.access.accounts_of_faskes(
            actor, a.faskes_code or "", offset=cb.offset, limit=ACCOUNTS_PAGE
        )
        await edit_or_send(callback, *render_accounts(t, page, header))
        await callback.answer(header[:190])
        return
    view = await services.access.account(actor, cb.account_id)  # scope, even for a mere toggle
    if cb.action == "x":
        page = await services.access.accounts_of_faskes(
            actor, view.faskes_code or "", offset=cb.offset, limit=ACCOUNTS_PAGE
        )
        await edit_or_send(callback, *render_accounts(t, page))
    elif cb.action == "t" and 0 <= cb.bit < len(ROLE_ORDER):
        mask = cb.mask ^ (1 << cb.bit)
        if not mask:
            await callback.answer(t("signup.pick_one"), show_alert=True)
            return
        if isinstance(callback.message, Message):
            await callback.message.edit_reply_markup(
                reply_markup=_roles_keyboard(t, cb.account_id, cb.version, mask, cb.offset)
            )
    else:
        await callback.answer(t("error.stale_button"))
        return
    await callback.answer()


# --- central admin ------------------------------------------------------------------------------


async def dinkes_cmd(message: Message, command: CommandObject, actor: Actor, t: Translator, services: Services) -> None:
    args = _args(command)
    tid = _int(args[0]) if args else None
    if tid is None or len(args) < 3:
        await services.access.admin_scope(actor, central=True)
        await message.answer(t("admin.usage_dinkes"))
        return
    view = await services.access.grant_dinkes(actor, tid, args[1], " ".join(args[2:]))
    await message.answer(t("admin.dinkes_done", name=view.name, kabkota=view.kabkota_name or "", telegram_id=tid))


# --- language -----------------------------------------------------------------------------------


def _language_buttons() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _btn("🇮🇩 Bahasa Indonesia", LangCb(code="id")),
                _btn("🇬🇧 English", LangCb(code="en")),
            ]
        ]
    )


async def language_cmd(
    message: Message, command: CommandObject, actor: Actor, t: Translator, services: Services
) -> None:
    args = _args(command)
    if actor.account_id is None:
        await message.answer(t("bahasa.stranger"))
        return
    if not args:
        await message.answer(t("bahasa.choose"), reply_markup=_language_buttons())
        return
    choice = await services.access.set_locale(actor, args[0])
    await message.answer(translator(choice.locale)("bahasa.set"))


async def language_button(
    callback: CallbackQuery, callback_data: LangCb, actor: Actor, t: Translator, services: Services
) -> None:
    if actor.account_id is None:
        await edit_or_send(callback, t("bahasa.stranger"), None)
        await callback.answer()
        return
    choice = await services.access.set_locale(actor, callback_data.code)
    await edit_or_send(callback, translator(choice.locale)("bahasa.set"), None)
    await callback.answer()
