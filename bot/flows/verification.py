"""``/verifikasi``: Verifikasi Data Sasaran. A verifier corrects a target or adds a missing one.

* **Koreksi**: ticket or NIK (or the card's "Verifikasi" button, ``t:verify:<id>:<version>``) → the fields
  as buttons → a value per field (typed and validated, or chosen with buttons) → a before/after summary
  with what the JKN master file and Dukcapil say → Kirim.
* **Tambah sasaran**: NIK (checked offline and against PL) → name → birth date → sex → phone → category →
  summary → Kirim. A birth date or sex that disagrees with the NIK is shown and must be kept explicitly.

The draft lives in FSM data (JSON primitives); core validates everything again at submission and decides:
applied at once, or queued for the Dinkes admins (``bot/flows/review.py``). The NIK is shown whole only when
the verifier typed it; phone numbers are always masked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.callbacks import TargetAction
from bot.i18n import Safe, Translator
from bot.notifier import Rendered, Renderer
from bot.replies import edit_or_send
from core.domain.accounts import Actor, Role, require_role
from core.domain.errors import Conflict, NotFound, Refused
from core.domain.identifiers import mask_phone, parse_lookup_key
from core.domain.reference import Decision, SourceVerdict, VerdictKind
from core.domain.screening import CATEGORIES
from core.services.registry import Services
from core.services.verification import FIELDS, EditableTarget, FieldChange, NewNik, NewTarget, Preview, Submission

__all__ = ["NOTIFICATIONS", "VerifyCb", "build_router", "render_changes", "render_evidence"]


class Verify(StatesGroup):
    choose = State()  # Koreksi or Tambah
    key = State()  # ticket or NIK of the target to correct
    fields = State()  # the field menu
    value = State()  # typing (or choosing) the new value of one field
    summary = State()  # the correction's summary, waiting for Kirim
    add_nik = State()
    add_name = State()
    add_birth = State()
    add_sex = State()
    add_phone = State()
    add_category = State()
    add_summary = State()


class VerifyCb(CallbackData, prefix="vf"):
    # fix | add: start | f: pick field | v: a button value | sum: summary | ok: submit | back: edit again
    # sx / ct: addition's sex / category | skip: no phone | keep / retype: a value that disagrees with the NIK
    action: str
    value: str = ""


SEXES = ("L", "P")
_EVIDENCE_ICON = {
    VerdictKind.CONFIRMED: "✅",
    VerdictKind.CONTRADICTED: "❌",
    VerdictKind.NOT_FOUND: "❔",
    VerdictKind.UNAVAILABLE: "⚠️",
}


# --------------------------------------------------------------------------------------------
# Rendering (shared with the Dinkes review)
# --------------------------------------------------------------------------------------------


def _button(text: str, action: str, value: str = "") -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=VerifyCb(action=action, value=value).pack())


def _fmt_date(iso: str) -> str:
    try:
        return date.fromisoformat(iso).strftime("%d-%m-%Y")
    except ValueError:
        return iso


def show_value(t: Translator, field: str, value: str | None) -> str:
    """A field's value as a person reads it (phone numbers are masked by core or here)."""
    if value is None or value == "":
        return "–"
    if field == "birth_date":
        return _fmt_date(value)
    if field == "sex" and t.has(f"sex.{value}"):
        return t(f"sex.{value}")
    if field == "category" and t.has(f"category.{value}"):
        return t(f"category.{value}")
    if field == "phone" and value.startswith("+"):
        return mask_phone(value) if "•" not in value else value
    return value


def render_changes(t: Translator, changes: Iterable[FieldChange | Sequence[Any]]) -> list[str]:
    lines: list[str] = []
    for change in changes:
        field, before, after = (
            (change.field, change.before, change.after) if isinstance(change, FieldChange) else tuple(change)
        )
        label = t(f"verification.field.{field}")
        if before is None:
            lines.append(t("verification.value_line", field=label, value=show_value(t, field, after)))
        else:
            lines.append(
                t(
                    "verification.change_line",
                    field=label,
                    before=show_value(t, field, before),
                    after=show_value(t, field, after),
                )
            )
    return lines


def render_evidence(t: Translator, verdicts: Iterable[SourceVerdict | Mapping[str, Any]]) -> list[str]:
    lines: list[str] = []
    for item in verdicts:
        try:
            v = item if isinstance(item, SourceVerdict) else SourceVerdict.from_json(item)
        except ValueError:
            continue
        icon = _EVIDENCE_ICON[v.kind]
        if v.kind is VerdictKind.CONTRADICTED:
            fields = ", ".join(t(f"verification.diff.{f}") for f in v.fields)
            outcome = t("verification.evidence.contradicted", fields=fields)
        else:
            outcome = t(f"verification.evidence.{v.kind.value}")
        lines.append(
            t(
                "verification.evidence.line",
                icon=icon,
                source=t(f"verification.source.{v.source.value}"),
                outcome=outcome,
            )
        )
    return lines or [t("verification.evidence.none")]


def render_mismatches(t: Translator, fields: Iterable[str]) -> list[str]:
    names = ", ".join(t(f"verification.diff.{f}") for f in fields)
    return [t("verification.nik_mismatch", fields=names)] if names else []


def _kind(t: Translator, kind: object) -> str:
    return t(f"verification.kind.{kind}") if kind in ("correction", "addition") else str(kind)


# --------------------------------------------------------------------------------------------
# Notifications to the verifier (after the Dinkes admin decided)
# --------------------------------------------------------------------------------------------


def _render_approved(t: Translator, p: Mapping[str, Any]) -> Rendered:
    common = {"kind": _kind(t, p.get("kind")), "id": p.get("correction_id", ""), "name": p.get("name", "")}
    if p.get("ticket"):
        return t("verification.notify.approved_added", ticket=p["ticket"], **common), None
    return t("verification.notify.approved", **common), None


def _render_rejected(t: Translator, p: Mapping[str, Any]) -> Rendered:
    return (
        t(
            "verification.notify.rejected",
            kind=_kind(t, p.get("kind")),
            id=p.get("correction_id", ""),
            name=p.get("name", ""),
            reason=p.get("reason", ""),
        ),
        None,
    )


def _render_stale(t: Translator, p: Mapping[str, Any]) -> Rendered:
    key = f"verification.stale_reason.{p.get('reason')}"
    why = t(key) if t.has(key) else t("verification.stale_reason.target_changed")
    return (
        t(
            "verification.notify.stale",
            kind=_kind(t, p.get("kind")),
            id=p.get("correction_id", ""),
            name=p.get("name", ""),
            why=why,
        ),
        None,
    )


NOTIFICATIONS: Mapping[str, Renderer] = {
    "verification.approved": _render_approved,
    "verification.rejected": _render_rejected,
    "verification.stale": _render_stale,
}


# --------------------------------------------------------------------------------------------
# The router
# --------------------------------------------------------------------------------------------


def build_router() -> Router:
    router = Router(name="verification")
    router.message.register(start, Command("verifikasi"))
    router.callback_query.register(from_card, TargetAction.filter(F.action == "verify"))
    router.callback_query.register(choose_fix, Verify.choose, VerifyCb.filter(F.action == "fix"))
    router.callback_query.register(choose_add, VerifyCb.filter(F.action == "add"), _in_flow)
    router.message.register(expect_choice, Verify.choose, _not_command)
    # correction
    router.message.register(got_key, Verify.key, F.text, _not_command)
    router.message.register(expect_key, Verify.key, _not_command)
    router.callback_query.register(pick_field, Verify.fields, VerifyCb.filter(F.action == "f"))
    router.callback_query.register(show_summary, Verify.fields, VerifyCb.filter(F.action == "sum"))
    router.message.register(expect_field, Verify.fields, _not_command)
    router.message.register(got_value, Verify.value, F.text, _not_command)
    router.callback_query.register(got_button_value, Verify.value, VerifyCb.filter(F.action == "v"))
    router.callback_query.register(back_to_fields, Verify.value, VerifyCb.filter(F.action == "back"))
    router.message.register(expect_value, Verify.value, _not_command)
    router.callback_query.register(submit_correction, Verify.summary, VerifyCb.filter(F.action == "ok"))
    router.callback_query.register(back_to_fields, Verify.summary, VerifyCb.filter(F.action == "back"))
    router.message.register(expect_submit, Verify.summary, _not_command)
    # addition
    router.message.register(got_new_nik, Verify.add_nik, F.text, _not_command)
    router.message.register(expect_new_nik, Verify.add_nik, _not_command)
    router.message.register(got_new_name, Verify.add_name, F.text, _not_command)
    router.message.register(expect_new_name, Verify.add_name, _not_command)
    router.message.register(got_new_birth, Verify.add_birth, F.text, _not_command)
    router.callback_query.register(keep_value, Verify.add_birth, VerifyCb.filter(F.action == "keep"))
    router.callback_query.register(retype_value, Verify.add_birth, VerifyCb.filter(F.action == "retype"))
    router.message.register(expect_new_birth, Verify.add_birth, _not_command)
    router.callback_query.register(got_new_sex, Verify.add_sex, VerifyCb.filter(F.action == "sx"))
    router.callback_query.register(keep_value, Verify.add_sex, VerifyCb.filter(F.action == "keep"))
    router.callback_query.register(retype_value, Verify.add_sex, VerifyCb.filter(F.action == "retype"))
    router.message.register(expect_new_sex, Verify.add_sex, _not_command)
    router.message.register(got_new_phone, Verify.add_phone, F.text, _not_command)
    router.callback_query.register(skip_phone, Verify.add_phone, VerifyCb.filter(F.action == "skip"))
    router.message.register(expect_new_phone, Verify.add_phone, _not_command)
    router.callback_query.register(got_new_category, Verify.add_category, VerifyCb.filter(F.action == "ct"))
    router.message.register(expect_new_category, Verify.add_category, _not_command)
    router.callback_query.register(submit_addition, Verify.add_summary, VerifyCb.filter(F.action == "ok"))
    router.callback_query.register(restart_addition, Verify.add_summary, VerifyCb.filter(F.action == "back"))
    router.message.register(expect_submit, Verify.add_summary, _not_command)
    # any step
    router.callback_query.register(cancel, VerifyCb.filter(F.action == "x"), _in_flow)
    return router


def _not_command(message: Message) -> bool:
    """Commands typed during the flow go to their own handlers (/batal, /bantuan, ...)."""
    return not (message.text or "").startswith("/")


async def _in_flow(callback: CallbackQuery, state: FSMContext) -> bool:
    current = await state.get_state()
    return current is not None and current.startswith(f"{Verify.__name__}:")


async def _send(callback: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    if isinstance(callback.message, Message):
        await callback.message.answer(text, reply_markup=markup)
    elif callback.bot is not None:
        await callback.bot.send_message(callback.from_user.id, text, reply_markup=markup)


def _cancel_row(t: Translator) -> list[InlineKeyboardButton]:
    return [_button(t("verification.btn.cancel"), "x")]


# --- start ---------------------------------------------------------------------------------


async def start(message: Message, actor: Actor, t: Translator, state: FSMContext) -> None:
    # A convenience: core checks the role again on every step.
    require_role(actor, Role.VERIFIKASI)
    await state.clear()
    await state.set_state(Verify.choose)
    markup = InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(t("verification.btn.fix"), "fix"), _button(t("verification.btn.add"), "add")],
            _cancel_row(t),
        ]
    )
    await message.answer(t("verification.start"), reply_markup=markup)


async def expect_choice(message: Message, t: Translator) -> None:
    await message.answer(t("verification.expect_choice"))


async def choose_fix(callback: CallbackQuery, t: Translator, state: FSMContext) -> None:
    await state.set_state(Verify.key)
    await edit_or_send(callback, t("verification.ask_key"), None)
    await callback.answer()


async def cancel(callback: CallbackQuery, t: Translator, state: FSMContext) -> None:
    await state.clear()
    await edit_or_send(callback, t("common.cancelled"), None)
    await callback.answer()


# --- correction ----------------------------------------------------------------------------


def _target_data(target: EditableTarget) -> dict[str, Any]:
    return {
        "mode": "fix",
        "target_id": target.target_id,
        "version": target.version,
        "current": {
            "name": target.name,
            "nik": target.nik,
            "ticket": target.ticket,
            "birth_date": target.birth_date.isoformat(),
            "sex": target.sex,
            "phone": target.phone_masked,
            "category": target.category,
            "assigned_faskes_code": target.assigned_faskes,
        },
        "changes": {},
    }


def _header(t: Translator, current: Mapping[str, Any]) -> str:
    return t(
        "verification.header",
        name=current.get("name", ""),
        nik=current.get("nik", ""),
        ticket=current.get("ticket", ""),
        born=_fmt_date(str(current.get("birth_date", ""))),
        sex=show_value(t, "sex", current.get("sex")),
        phone=current.get("phone") or "–",
        category=show_value(t, "category", current.get("category")),
        faskes=current.get("assigned_faskes_code") or "–",
    )


def _fields_view(t: Translator, data: Mapping[str, Any]) -> tuple[str, InlineKeyboardMarkup]:
    changes: dict[str, str | None] = dict(data.get("changes", {}))
    lines = [_header(t, data.get("current", {})), ""]
    if changes:
        lines.append(t("verification.pending"))
        lines += [
            t("verification.pending_line", field=t(f"verification.field.{f}"), value=show_value(t, f, v))
            for f, v in changes.items()
        ]
        lines.append("")
    lines.append(t("verification.pick_field"))
    buttons = [_button(("✏️ " if f in changes else "") + t(f"verification.field.{f}"), "f", f) for f in FIELDS]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    if changes:
        rows.append([_button(t("verification.btn.summary"), "sum")])
    rows.append(_cancel_row(t))
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows)


async def _open(target: EditableTarget, t: Translator, state: FSMContext) -> tuple[str, InlineKeyboardMarkup]:
    await state.clear()
    await state.set_state(Verify.fields)
    await state.update_data(**_target_data(target))
    return _fields_view(t, await state.get_data())


async def from_card(
    callback: CallbackQuery,
    callback_data: TargetAction,
    actor: Actor,
    t: Translator,
    state: FSMContext,
    services: Services,
) -> None:
    target = await services.verification.open_target_by_id(actor, callback_data.target_id)
    text, markup = await _open(target, t, state)
    await callback.answer()
    await _send(callback, text, markup)


async def got_key(message: Message, actor: Actor, t: Translator, state: FSMContext, services: Services) -> None:
    assert message.text is not None
    try:
        target = await services.verification.open_target(actor, message.text)
    except NotFound:
        kind, key = parse_lookup_key(message.text)
        if kind != "nik":
            raise
        # A NIK missing from PL: offer to add it (the NIK stays in FSM data, never in a button).
        await state.update_data(pending_nik=key)
        markup = InlineKeyboardMarkup(
            inline_keyboard=[[_button(t("verification.btn.add"), "add", "nik")], _cancel_row(t)]
        )
        await message.answer(t("verification.not_in_pl", nik=key), reply_markup=markup)
        return
    text, markup = await _open(target, t, state)
    await message.answer(text, reply_markup=markup)


async def expect_key(message: Message, t: Translator) -> None:
    await message.answer(t("verification.ask_key"))


def _choices(t: Translator, field: str) -> InlineKeyboardMarkup | None:
    if field == "sex":
        rows = [[_button(t(f"sex.{s}"), "v", s) for s in SEXES]]
    elif field == "category":
        buttons = [_button(t(f"category.{c}"), "v", c) for c in CATEGORIES]
        rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    else:
        rows = []
    rows.append([_button(t("verification.btn.back"), "back")])
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def pick_field(callback: CallbackQuery, callback_data: VerifyCb, t: Translator, state: FSMContext) -> None:
    field = callback_data.value
    if field not in FIELDS:
        await callback.answer(t("error.stale_button"))
        return
    await state.update_data(field=field)
    await state.set_state(Verify.value)
    await edit_or_send(callback, t(f"verification.ask.{field}"), _choices(t, field))
    await callback.answer()


async def _store_value(
    raw: str, actor: Actor, t: Translator, state: FSMContext, services: Services
) -> tuple[str, InlineKeyboardMarkup]:
    data = await state.get_data()
    field = str(data.get("field", ""))
    value = await services.verification.check_value(actor, field, raw)  # InvalidInput: the step stays
    changes = dict(data.get("changes", {}))
    changes[field] = value
    await state.update_data(changes=changes)
    await state.set_state(Verify.fields)
    return _fields_view(t, await state.get_data())


async def got_value(message: Message, actor: Actor, t: Translator, state: FSMContext, services: Services) -> None:
    assert message.text is not None
    text, markup = await _store_value(message.text, actor, t, state, services)
    await message.answer(text, reply_markup=markup)


async def got_button_value(
    callback: CallbackQuery, callback_data: VerifyCb, actor: Actor, t: Translator, state: FSMContext, services: Services
) -> None:
    text, markup = await _store_value(callback_data.value, actor, t, state, services)
    await edit_or_send(callback, text, markup)
    await callback.answer()


async def back_to_fields(callback: CallbackQuery, t: Translator, state: FSMContext) -> None:
    await state.set_state(Verify.fields)
    text, markup = _fields_view(t, await state.get_data())
    await edit_or_send(callback, text, markup)
    await callback.answer()


async def expect_field(message: Message, t: Translator, state: FSMContext) -> None:
    _, markup = _fields_view(t, await state.get_data())
    await message.answer(t("verification.expect_field"), reply_markup=markup)


async def expect_value(message: Message, t: Translator, state: FSMContext) -> None:
    field = str((await state.get_data()).get("field", "name"))
    await message.answer(t(f"verification.ask.{field}"), reply_markup=_choices(t, field))


def _summary_text(t: Translator, preview: Preview | Submission, title_key: str) -> str:
    lines = [t(title_key, name=preview.name)]
    lines += render_changes(t, preview.changes)
    lines += render_mismatches(t, preview.nik_mismatches)
    lines.append(t("verification.evidence.title"))
    lines += render_evidence(t, preview.verdicts)
    return "\n".join(lines)


def _summary_markup(t: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(t("verification.btn.submit"), "ok"), _button(t("verification.btn.edit"), "back")],
            _cancel_row(t),
        ]
    )


async def show_summary(
    callback: CallbackQuery, actor: Actor, t: Translator, state: FSMContext, services: Services
) -> None:
    data = await state.get_data()
    await callback.answer(t("verification.checking"))
    try:
        preview = await services.verification.preview_correction(
            actor, int(data["target_id"]), int(data["version"]), dict(data.get("changes", {}))
        )
    except (Refused, Conflict) as exc:
        # Registered at meja 1 or changed since it was opened: this draft is of no use any more.
        await state.clear()
        await edit_or_send(callback, t.error(exc), None)
        return
    await state.set_state(Verify.summary)
    decision = "verification.will_apply" if preview.decision is Decision.APPLY else "verification.will_queue"
    text = f"{_summary_text(t, preview, 'verification.summary_fix')}\n\n{t(decision)}"
    await edit_or_send(callback, text, _summary_markup(t))


async def expect_submit(message: Message, t: Translator) -> None:
    await message.answer(t("verification.expect_submit"), reply_markup=_summary_markup(t))


def _outcome(t: Translator, done: Submission) -> str:
    if done.status == "queued":
        return t("verification.queued", id=done.correction_id)
    if done.kind == "addition":
        return t("verification.added", name=done.name, ticket=Safe(f"<b>{done.ticket}</b>"))
    return t("verification.applied", name=done.name)


async def submit_correction(
    callback: CallbackQuery, actor: Actor, t: Translator, state: FSMContext, services: Services
) -> None:
    data = await state.get_data()
    await callback.answer(t("verification.checking"))
    try:
        done = await services.verification.submit_correction(
            actor, int(data["target_id"]), int(data["version"]), dict(data.get("changes", {}))
        )
    except (Refused, Conflict) as exc:
        # Registered at meja 1 or changed meanwhile: nothing was written, the draft is of no use.
        await state.clear()
        await edit_or_send(callback, t.error(exc), None)
        return
    await state.clear()
    text = f"{_summary_text(t, done, 'verification.summary_fix')}\n\n{_outcome(t, done)}"
    await edit_or_send(callback, text, None)


# --- addition ------------------------------------------------------------------------------


async def choose_add(
    callback: CallbackQuery, callback_data: VerifyCb, actor: Actor, t: Translator, state: FSMContext, services: Services
) -> None:
    pending = (await state.get_data()).get("pending_nik") if callback_data.value == "nik" else None
    await state.clear()
    await state.update_data(mode="add")
    await state.set_state(Verify.add_nik)
    await callback.answer()
    if not pending:
        await edit_or_send(callback, f"{t('verification.add.title')}\n{t('verification.add.ask_nik')}", None)
        return
    # The NIK the verifier just typed (kept in FSM data, never in a button): checked as if typed again.
    await edit_or_send(callback, f"{t('verification.add.title')}\n{t('verification.add.ask_nik')}", None)
    new = await services.verification.check_new_nik(actor, str(pending))
    await _send(callback, await _accept_nik(new, t, state))


async def _accept_nik(new: NewNik, t: Translator, state: FSMContext) -> str:
    await state.update_data(nik=new.nik, nik_birth=new.birth_date.isoformat(), nik_sex=new.sex)
    await state.set_state(Verify.add_name)
    return t("verification.add.ask_name", nik=new.nik)


async def got_new_nik(message: Message, actor: Actor, t: Translator, state: FSMContext, services: Services) -> None:
    assert message.text is not None
    new = await services.verification.check_new_nik(actor, message.text)  # InvalidNik / nik_exists: step stays
    await message.answer(await _accept_nik(new, t, state))


async def expect_new_nik(message: Message, t: Translator) -> None:
    await message.answer(t("verification.add.ask_nik"))


async def got_new_name(message: Message, actor: Actor, t: Translator, state: FSMContext, services: Services) -> None:
    assert message.text is not None
    name = await services.verification.check_value(actor, "name", message.text)
    await state.update_data(name=name)
    await state.set_state(Verify.add_birth)
    await message.answer(t("verification.add.ask_birth"))


async def expect_new_name(message: Message, t: Translator) -> None:
    await message.answer(t("verification.add.ask_name_again"))


def _keep_markup(t: Translator, step: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(t("verification.btn.keep"), "keep", step), _button(t("verification.btn.retype"), "retype", step)],
            _cancel_row(t),
        ]
    )


def _sex_markup(t: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[_button(t(f"sex.{s}"), "sx", s) for s in SEXES], _cancel_row(t)])


def _category_markup(t: Translator) -> InlineKeyboardMarkup:
    buttons = [_button(t(f"category.{c}"), "ct", c) for c in CATEGORIES]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    rows.append(_cancel_row(t))
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _phone_markup(t: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[_button(t("verification.btn.skip_phone"), "skip")], _cancel_row(t)])


def _same_birth(typed: str, encoded: str) -> bool:
    """Day, month and the year's last two digits: the NIK carries no century."""
    a, b = date.fromisoformat(typed), date.fromisoformat(encoded)
    return (a.day, a.month, a.year % 100) == (b.day, b.month, b.year % 100)


async def got_new_birth(message: Message, actor: Actor, t: Translator, state: FSMContext, services: Services) -> None:
    assert message.text is not None
    born = await services.verification.check_value(actor, "birth_date", message.text)
    assert born is not None
    await state.update_data(birth_date=born)
    encoded = str((await state.get_data()).get("nik_birth", born))
    if not _same_birth(born, encoded):
        text = t("verification.add.birth_mismatch", typed=_fmt_date(born), nik=_fmt_date(encoded))
        await message.answer(text, reply_markup=_keep_markup(t, "birth"))
        return
    await state.set_state(Verify.add_sex)
    await message.answer(t("verification.add.ask_sex"), reply_markup=_sex_markup(t))


async def expect_new_birth(message: Message, t: Translator) -> None:
    await message.answer(t("verification.add.ask_birth"))


async def got_new_sex(
    callback: CallbackQuery, callback_data: VerifyCb, actor: Actor, t: Translator, state: FSMContext, services: Services
) -> None:
    sex = await services.verification.check_value(actor, "sex", callback_data.value)
    await state.update_data(sex=sex)
    encoded = str((await state.get_data()).get("nik_sex", sex))
    await callback.answer()
    if sex != encoded:
        text = t("verification.add.sex_mismatch", typed=show_value(t, "sex", sex), nik=show_value(t, "sex", encoded))
        await edit_or_send(callback, text, _keep_markup(t, "sex"))
        return
    await state.set_state(Verify.add_phone)
    await edit_or_send(callback, t("verification.add.ask_phone"), _phone_markup(t))


async def expect_new_sex(message: Message, t: Translator) -> None:
    await message.answer(t("verification.add.ask_sex"), reply_markup=_sex_markup(t))


async def keep_value(callback: CallbackQuery, callback_data: VerifyCb, t: Translator, state: FSMContext) -> None:
    """The verifier keeps a value that disagrees with the NIK: recorded, and shown again in the summary."""
    await callback.answer()
    if callback_data.value == "birth":
        await state.set_state(Verify.add_sex)
        await edit_or_send(callback, t("verification.add.ask_sex"), _sex_markup(t))
    else:
        await state.set_state(Verify.add_phone)
        await edit_or_send(callback, t("verification.add.ask_phone"), _phone_markup(t))


async def retype_value(callback: CallbackQuery, callback_data: VerifyCb, t: Translator, state: FSMContext) -> None:
    await callback.answer()
    if callback_data.value == "birth":
        await state.set_state(Verify.add_birth)
        await edit_or_send(callback, t("verification.add.ask_birth"), None)
    else:
        await state.set_state(Verify.add_sex)
        await edit_or_send(callback, t("verification.add.ask_sex"), _sex_markup(t))


async def got_new_phone(message: Message, actor: Actor, t: Translator, state: FSMContext, services: Services) -> None:
    assert message.text is not None
    phone = await services.verification.check_value(actor, "phone", message.text)
    await state.update_data(phone=phone)
    await state.set_state(Verify.add_category)
    await message.answer(t("verification.add.ask_category"), reply_markup=_category_markup(t))


async def skip_phone(callback: CallbackQuery, t: Translator, state: FSMContext) -> None:
    await state.update_data(phone=None)
    await state.set_state(Verify.add_category)
    await edit_or_send(callback, t("verification.add.ask_category"), _category_markup(t))
    await callback.answer()


async def expect_new_phone(message: Message, t: Translator) -> None:
    await message.answer(t("verification.add.ask_phone"), reply_markup=_phone_markup(t))


def _draft(data: Mapping[str, Any]) -> NewTarget:
    phone = data.get("phone")
    return NewTarget(
        nik=str(data.get("nik", "")),
        name=str(data.get("name", "")),
        birth_date=str(data.get("birth_date", "")),
        sex=str(data.get("sex", "")),
        phone=str(phone) if phone else None,
        category=str(data.get("category", "")),
    )


def _addition_text(t: Translator, preview: Preview | Submission, nik: str) -> str:
    lines = [t("verification.summary_add", name=preview.name)]
    lines += [
        line
        for change, line in zip(preview.changes, render_changes(t, preview.changes), strict=True)
        if change.field != "nik"
    ]
    lines.insert(1, t("verification.value_line", field=t("verification.field.nik"), value=nik))
    lines += render_mismatches(t, preview.nik_mismatches)
    lines.append(t("verification.evidence.title"))
    lines += render_evidence(t, preview.verdicts)
    return "\n".join(lines)


def _addition_markup(t: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(t("verification.btn.submit"), "ok"), _button(t("verification.btn.restart"), "back")],
            _cancel_row(t),
        ]
    )


async def got_new_category(
    callback: CallbackQuery, callback_data: VerifyCb, actor: Actor, t: Translator, state: FSMContext, services: Services
) -> None:
    category = await services.verification.check_value(actor, "category", callback_data.value)
    await state.update_data(category=category)
    await callback.answer(t("verification.checking"))
    data = await state.get_data()
    preview = await services.verification.preview_addition(actor, _draft(data))
    await state.set_state(Verify.add_summary)
    decision = "verification.will_apply_add" if preview.decision is Decision.APPLY else "verification.will_queue"
    text = f"{_addition_text(t, preview, str(data.get('nik', '')))}\n\n{t(decision)}"
    await edit_or_send(callback, text, _addition_markup(t))


async def expect_new_category(message: Message, t: Translator) -> None:
    await message.answer(t("verification.add.ask_category"), reply_markup=_category_markup(t))


async def submit_addition(
    callback: CallbackQuery, actor: Actor, t: Translator, state: FSMContext, services: Services
) -> None:
    data = await state.get_data()
    await callback.answer(t("verification.checking"))
    try:
        done = await services.verification.submit_addition(actor, _draft(data))
    except (Refused, Conflict) as exc:
        await state.clear()
        await edit_or_send(callback, t.error(exc), None)
        return
    await state.clear()
    text = f"{_addition_text(t, done, str(data.get('nik', '')))}\n\n{_outcome(t, done)}"
    await edit_or_send(callback, text, None)


async def restart_addition(callback: CallbackQuery, t: Translator, state: FSMContext) -> None:
    """Back to the name (the NIK is kept: it was checked)."""
    data = await state.get_data()
    await state.set_data({k: data[k] for k in ("mode", "nik", "nik_birth", "nik_sex") if k in data})
    await state.set_state(Verify.add_name)
    await edit_or_send(callback, t("verification.add.ask_name", nik=data.get("nik", "")), None)
    await callback.answer()
