"""``/tinjau``: the Dinkes admin reviews corrections and additions the reference sources could not confirm.

Each queued submission is one message with its changes and the evidence per source, and two buttons:
Setujui (applied at once; it may turn out stale if the person was registered meanwhile) and Tolak (asks for a
reason). The same message, with the same buttons, is sent to every active Dinkes admin of the district when
a submission is queued (``verification.queued``). Core re-checks the admin's district on every tap; the
first decision wins, a second tap finds it decided.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from aiogram import F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.flows.verification import render_changes, render_evidence, render_mismatches
from bot.i18n import Translator
from bot.notifier import Rendered, Renderer
from core.domain.accounts import Actor
from core.services.registry import Services
from core.services.verification import QueuedItem, ReviewResult

__all__ = ["NOTIFICATIONS", "ReviewCb", "build_router"]

#: Queued submissions shown per /tinjau (oldest first); the rest after these are decided.
PAGE = 10


class Review(StatesGroup):
    reason = State()


class ReviewCb(CallbackData, prefix="rv"):
    action: str  # ok: approve | no: reject (asks a reason)
    correction_id: int


def _markup(t: Translator, correction_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=t("review.approve"), callback_data=ReviewCb(action="ok", correction_id=correction_id).pack()
                ),
                InlineKeyboardButton(
                    text=t("review.reject"), callback_data=ReviewCb(action="no", correction_id=correction_id).pack()
                ),
            ]
        ]
    )


def render_item(
    t: Translator,
    *,
    correction_id: object,
    kind: object,
    name: object,
    nik: object,
    changes: Sequence[Any],
    evidence: Sequence[Any],
    mismatches: Sequence[str],
    by: object,
    faskes: object,
) -> str:
    title = "review.item_add" if kind == "addition" else "review.item_fix"
    lines = [t(title, id=correction_id, name=name), t("review.nik", nik=nik)]
    lines += render_changes(t, [c for c in changes if _field(c) != "nik"])
    lines += render_mismatches(t, mismatches)
    lines.append(t("verification.evidence.title"))
    lines += render_evidence(t, evidence)
    lines.append(t("review.by", by=by, faskes=faskes))
    return "\n".join(lines)


def _field(change: Any) -> object:
    return getattr(change, "field", None) or (change[0] if isinstance(change, Sequence) else None)


def _render_item(t: Translator, item: QueuedItem) -> str:
    return render_item(
        t,
        correction_id=item.correction_id,
        kind=item.kind,
        name=item.name,
        nik=item.nik_masked,
        changes=item.changes,
        evidence=item.verdicts,
        mismatches=item.nik_mismatches,
        by=item.submitted_by,
        faskes=item.faskes,
    )


def _render_queued(t: Translator, p: Mapping[str, Any]) -> Rendered:
    text = render_item(
        t,
        correction_id=p.get("correction_id", ""),
        kind=p.get("kind"),
        name=p.get("name", ""),
        nik=p.get("nik", ""),
        changes=list(p.get("changes", [])),
        evidence=list(p.get("evidence", [])),
        mismatches=list(p.get("nik_mismatches", [])),
        by=p.get("by", ""),
        faskes=p.get("faskes", ""),
    )
    correction_id = p.get("correction_id")
    markup = _markup(t, correction_id) if isinstance(correction_id, int) else None
    return f"{t('review.new')}\n{text}", markup


NOTIFICATIONS: Mapping[str, Renderer] = {"verification.queued": _render_queued}


def build_router() -> Router:
    router = Router(name="review")
    router.message.register(list_queued, Command("tinjau"))
    router.callback_query.register(approve, ReviewCb.filter(F.action == "ok"))
    router.callback_query.register(ask_reason, ReviewCb.filter(F.action == "no"))
    router.message.register(got_reason, Review.reason, F.text, _not_command)
    router.message.register(expect_reason, Review.reason, _not_command)
    return router


def _not_command(message: Message) -> bool:
    return not (message.text or "").startswith("/")


async def list_queued(message: Message, actor: Actor, t: Translator, state: FSMContext, services: Services) -> None:
    await state.clear()
    items = await services.verification.queued(actor)
    if not items:
        await message.answer(t("review.none"))
        return
    await message.answer(t("review.title", total=len(items)))
    for item in items[:PAGE]:
        await message.answer(_render_item(t, item), reply_markup=_markup(t, item.correction_id))
    if len(items) > PAGE:
        await message.answer(t("review.more", more=len(items) - PAGE))


def _decided(t: Translator, result: ReviewResult) -> str:
    if result.status == "approved":
        if result.ticket:
            return t("review.approved_added", ticket=result.ticket)
        return t("review.approved")
    if result.status == "rejected":
        return t("review.rejected", reason=result.reason or "")
    key = f"verification.stale_reason.{result.reason}"
    why = t(key) if t.has(key) else t("verification.stale_reason.target_changed")
    return t("review.stale", why=why)


async def _replace(callback: CallbackQuery, suffix: str) -> None:
    """Keep the item's text, drop its buttons, and add what was decided."""
    message = callback.message
    if isinstance(message, Message):
        text = message.html_text if message.text else ""
        await message.edit_text(f"{text}\n\n{suffix}" if text else suffix, reply_markup=None)
    elif callback.bot is not None:
        await callback.bot.send_message(callback.from_user.id, suffix)


async def approve(
    callback: CallbackQuery, callback_data: ReviewCb, actor: Actor, t: Translator, services: Services
) -> None:
    result = await services.verification.approve(actor, callback_data.correction_id)
    await callback.answer()
    await _replace(callback, _decided(t, result))


async def ask_reason(
    callback: CallbackQuery, callback_data: ReviewCb, actor: Actor, t: Translator, state: FSMContext, services: Services
) -> None:
    # Checked now (district, still queued), so that nobody types a reason for nothing.
    item = await services.verification.queued_item(actor, callback_data.correction_id)
    message_id = callback.message.message_id if isinstance(callback.message, Message) else None
    await state.set_state(Review.reason)
    await state.update_data(correction_id=item.correction_id, message_id=message_id)
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.answer(t("review.ask_reason", id=item.correction_id, name=item.name))


async def got_reason(message: Message, actor: Actor, t: Translator, state: FSMContext, services: Services) -> None:
    assert message.text is not None
    data = await state.get_data()
    result = await services.verification.reject(actor, int(data["correction_id"]), message.text)
    await state.clear()
    message_id = data.get("message_id")
    if isinstance(message_id, int) and message.bot is not None:
        # The item's buttons go: a second tap would find it decided anyway.
        # Too old, or already without buttons: the decision stands either way.
        with contextlib.suppress(TelegramAPIError):
            await message.bot.edit_message_reply_markup(
                chat_id=message.chat.id, message_id=message_id, reply_markup=None
            )
    await message.answer(_decided(t, result))


async def expect_reason(message: Message, t: Translator) -> None:
    await message.answer(t("review.expect_reason"))
