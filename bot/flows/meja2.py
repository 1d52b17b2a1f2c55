"""Meja 2: screening (``/skrining``, or ``v:screen:<visit_id>`` from the Daftar Penerima Vaksin and the card).

The ordinary visit takes five taps and messages: open (a tap in the list), temperature, blood pressure,
"Semua tidak", "Simpan". The checklist is one message that is edited in place: each question has a numbered
toggle (no -> YES -> no), follow-up questions appear only under a YES, and one tap on "Semua tidak" (or
"Lanjut" when something is YES) shows the review with the outcome computed by core's rules; nothing is saved
before "Simpan". After saving, the list of the next people waiting comes with the result, so the next visit
opens with one tap.

FSM data holds JSON primitives only: ids, the subject of the screening (rule set id, age, dose, date), the
vitals as text/ints and the list of item ids answered YES.
"""

from __future__ import annotations

import html
import re
import tomllib
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

import core.domain.screening as screening_rules
from bot.callbacks import VisitAction
from bot.i18n import Safe, Translator
from bot.notifier import Renderer
from bot.replies import edit_or_send, flow_data, remove_buttons, stale
from core.domain.accounts import Actor
from core.domain.errors import Conflict
from core.domain.screening import Outcome, ScreeningResult, Vitals
from core.domain.visits import VisitStatus
from core.domain.vitals import parse_blood_pressure, parse_temperature
from core.services.registry import Services
from core.services.screening import ScreeningForm, ScreeningQueue, ScreeningSaved, ScreeningSubject

NOTIFICATIONS: Mapping[str, Renderer] = {}

SCREENING_TEXTS = Path(screening_rules.__file__).with_name("screening_texts.toml")
TOGGLES_PER_ROW = 5


class Meja2(StatesGroup):
    choose = State()
    temperature = State()
    blood_pressure = State()
    remeasure = State()
    checklist = State()
    review = State()


class Screen(CallbackData, prefix="m2"):
    """A button of the screening flow. ``item`` is the index of a checklist item (for ``tog``)."""

    action: str  # tog | done | back | vitals | save | edit
    visit_id: int
    item: int = -1


# --------------------------------------------------------------------------------------------
# Texts of core/domain/screening_texts.toml (questions and reason labels)


@cache
def _screening_texts() -> dict[str, dict[str, str]]:
    with SCREENING_TEXTS.open("rb") as fh:
        raw = tomllib.load(fh)
    # The file is plain text; messages are HTML ("HbA1c < 7,5%").
    return {locale: {k: html.escape(str(v), quote=False) for k, v in table.items()} for locale, table in raw.items()}


def screening_text(t: Translator, key: str) -> str:
    """The question of an item id, the label of a reason code or the title of a rule set, in t's language."""
    texts = _screening_texts()
    return texts.get(t.locale, {}).get(key) or texts.get("id", {}).get(key) or html.escape(key)


def reason_lines(result: ScreeningResult, t: Translator) -> list[str]:
    lines = []
    for reason in result.reasons:
        effect = "tunda_rujuk" if reason.rujuk else reason.outcome.value
        lines.append(t("meja2.reason", reason=_raw(screening_text(t, reason.code)), effect=t(f"meja2.effect.{effect}")))
    return lines


def outcome_label(result: ScreeningResult, t: Translator) -> str:
    key = "tunda_rujuk" if result.outcome is Outcome.TUNDA and result.rujuk else result.outcome.value
    return t(f"meja2.outcome.{key}")


def _raw(text: str) -> Safe:
    """Already HTML (escaped when loaded): not escaped again."""
    return Safe(text)


# --------------------------------------------------------------------------------------------
# Router


def _not_command(message: Message) -> bool:
    return not (message.text or "").startswith("/")


def build_router() -> Router:
    router = Router(name="meja2")
    router.message.register(start, Command("skrining"))
    router.callback_query.register(open_visit, VisitAction.filter(F.action == "screen"))
    router.callback_query.register(open_edit, Screen.filter(F.action == "edit"))
    # For other features' lists and cards: ``v:rescreen:<visit_id>`` opens the edit of today's Tunda.
    router.callback_query.register(open_edit, VisitAction.filter(F.action == "rescreen"))
    router.callback_query.register(toggle, Screen.filter(F.action == "tog"))
    router.callback_query.register(review, Screen.filter(F.action == "done"))
    router.callback_query.register(back_to_checklist, Screen.filter(F.action == "back"))
    router.callback_query.register(measure_again, Screen.filter(F.action == "vitals"))
    router.callback_query.register(save, Screen.filter(F.action == "save"))
    router.message.register(choose_by_key, Meja2.choose, F.text, _not_command)
    router.message.register(temperature, Meja2.temperature, F.text, _not_command)
    router.message.register(blood_pressure, Meja2.blood_pressure, F.text, _not_command)
    router.message.register(remeasure, Meja2.remeasure, F.text, _not_command)
    router.message.register(expect_button, StateFilter(Meja2.checklist, Meja2.review), _not_command)
    router.message.register(
        expect_text, StateFilter(Meja2.choose, Meja2.temperature, Meja2.blood_pressure, Meja2.remeasure), _not_command
    )
    return router


# --------------------------------------------------------------------------------------------
# Shared helpers (meja 4 uses them too)


def fmt_date(d: date) -> str:
    return d.strftime("%d-%m-%Y")


def fmt_temperature(value: str | Decimal, t: Translator) -> str:
    text = str(value)
    return text.replace(".", ",") if t.locale == "id" else text


def fmt_bp(bp: list[int] | None, bp2: list[int] | None = None) -> str:
    if not bp:
        return "–"
    text = f"{bp[0]}/{bp[1]}"
    return f"{text} → {bp2[0]}/{bp2[1]}" if bp2 else text


# --------------------------------------------------------------------------------------------
# Choosing the visit


def queue_view(queue: ScreeningQueue, t: Translator) -> tuple[str, InlineKeyboardMarkup | None]:
    lines = [t("meja2.queue_title", count=len(queue.waiting) + queue.more)]
    kb: list[list[InlineKeyboardButton]] = []
    for e in queue.waiting:
        label = t("meja2.button_visit", name=e.name, dose=e.dose_number, time=e.opened_at.strftime("%H:%M"))
        kb.append(
            [
                InlineKeyboardButton(
                    text=html.unescape(label), callback_data=VisitAction(action="screen", visit_id=e.visit_id).pack()
                )
            ]
        )
    if not queue.waiting:
        lines.append(t("meja2.queue_empty"))
    if queue.more:
        lines.append(t("meja2.queue_more", count=queue.more))
    if queue.editable:
        lines.append(t("meja2.queue_editable"))
        for e in queue.editable:
            label = t("meja2.button_edit", name=e.name)
            kb.append(
                [
                    InlineKeyboardButton(
                        text=html.unescape(label), callback_data=Screen(action="edit", visit_id=e.visit_id).pack()
                    )
                ]
            )
    lines.append(t("meja2.queue_hint"))
    markup = InlineKeyboardMarkup(inline_keyboard=kb) if (queue.waiting or queue.editable) else None
    return "\n".join(lines), markup


async def start(message: Message, actor: Actor, t: Translator, state: FSMContext, services: Services) -> None:
    queue = await services.screening.queue(actor)
    await state.set_state(Meja2.choose)
    await state.set_data({})
    text, markup = queue_view(queue, t)
    await message.answer(text, reply_markup=markup)


async def choose_by_key(message: Message, actor: Actor, t: Translator, state: FSMContext, services: Services) -> None:
    assert message.text is not None
    entry = await services.screening.locate(actor, message.text)
    if entry.status is VisitStatus.TUNDA:
        form = await services.screening.open_edit(actor, entry.visit_id)
    else:
        form = await services.screening.open(actor, entry.visit_id)
    await _begin(message, form, t, state)


async def open_visit(
    callback: CallbackQuery,
    callback_data: VisitAction,
    actor: Actor,
    t: Translator,
    state: FSMContext,
    services: Services,
) -> None:
    form = await services.screening.open(actor, callback_data.visit_id)
    await callback.answer()
    await _begin(callback, form, t, state)


async def open_edit(
    callback: CallbackQuery,
    callback_data: Screen | VisitAction,
    actor: Actor,
    t: Translator,
    state: FSMContext,
    services: Services,
) -> None:
    form = await services.screening.open_edit(actor, callback_data.visit_id)
    await callback.answer()
    await _begin(callback, form, t, state)


async def _begin(origin: Message | CallbackQuery, form: ScreeningForm, t: Translator, state: FSMContext) -> None:
    subject = form.subject
    applicable = {i.id for i in subject.items()}
    previous = form.previous
    yes = [i for i in (previous.yes if previous else ()) if i in applicable]
    await state.set_state(Meja2.temperature)
    await state.set_data(
        {
            "visit": form.visit_id,
            "version": form.version,
            "edit": form.editing,
            "name": form.name,
            "rs": subject.rule_set_id,
            "age": subject.age,
            "dose": subject.dose_number,
            "day": subject.service_date.isoformat(),
            "yes": yes,
            "temp": None,
            "bp": None,
            "bp2": None,
        }
    )
    params: dict[str, Any] = {
        "name": form.name,
        "nik": form.nik_masked,
        "age": subject.age,
        "dose": subject.dose_number,
        "rule_set": _raw(screening_text(t, form.rule_set_title_key)),
    }
    if form.editing and previous is not None:
        prev_bp = [previous.systolic, previous.diastolic] if previous.systolic and previous.diastolic else None
        prev_bp2 = [previous.systolic_2, previous.diastolic_2] if previous.systolic_2 and previous.diastolic_2 else None
        head = t(
            "meja2.head_edit",
            **params,
            temperature=fmt_temperature(previous.temperature_c or "–", t),
            bp=fmt_bp(prev_bp, prev_bp2),
        )
    else:
        head = t("meja2.head", **params)
    text = f"{head}\n\n{t('meja2.ask_temperature')}"
    if isinstance(origin, Message):
        await origin.answer(text)
    elif origin.bot is not None:
        await origin.bot.send_message(origin.from_user.id, text)


# --------------------------------------------------------------------------------------------
# Vitals


def _subject(data: Mapping[str, Any]) -> ScreeningSubject:
    return ScreeningSubject(str(data["rs"]), int(data["age"]), int(data["dose"]), date.fromisoformat(str(data["day"])))


def _vitals(data: Mapping[str, Any]) -> Vitals:
    bp, bp2 = data["bp"], data.get("bp2")
    return Vitals(
        Decimal(str(data["temp"])),
        int(bp[0]),
        int(bp[1]),
        int(bp2[0]) if bp2 else None,
        int(bp2[1]) if bp2 else None,
    )


# Temperature and blood pressure in one message ("36,5 120/80"): one message fewer per person.
_BOTH = re.compile(r"^\s*(\S+(?:\s*°?\s*C)?)\s+(\d{2,3}\s*[/-]\s*\d{2,3}(?:\s*mmHg)?)\s*$", re.IGNORECASE)


async def temperature(message: Message, t: Translator, state: FSMContext) -> None:
    assert message.text is not None
    both = _BOTH.match(message.text)
    value = parse_temperature(both.group(1) if both else message.text)
    if both:
        bp = parse_blood_pressure(both.group(2))  # both parsed before anything is kept
        await state.update_data(temp=str(value))
        await _with_blood_pressure(message, bp, t, state)
        return
    await state.update_data(temp=str(value))
    await state.set_state(Meja2.blood_pressure)
    await message.answer(t("meja2.ask_bp", temperature=fmt_temperature(value, t)))


async def blood_pressure(message: Message, t: Translator, state: FSMContext) -> None:
    assert message.text is not None
    await _with_blood_pressure(message, parse_blood_pressure(message.text), t, state)


async def _with_blood_pressure(message: Message, bp: tuple[int, int], t: Translator, state: FSMContext) -> None:
    systolic, diastolic = bp
    data = await state.update_data(bp=[systolic, diastolic], bp2=None)
    if _subject(data).needs_remeasure(_vitals(data)):
        await state.set_state(Meja2.remeasure)
        await message.answer(t("meja2.ask_remeasure", bp=f"{systolic}/{diastolic}"))
        return
    await _show_checklist(message, data, t, state)


async def remeasure(message: Message, t: Translator, state: FSMContext) -> None:
    assert message.text is not None
    systolic, diastolic = parse_blood_pressure(message.text)
    data = await state.update_data(bp2=[systolic, diastolic])
    await _show_checklist(message, data, t, state)


# --------------------------------------------------------------------------------------------
# The checklist


def _numbers(subject: ScreeningSubject) -> dict[str, str]:
    """Display numbers: 1, 2, ... for questions; 14a, 14b for the follow-ups of question 14."""
    out: dict[str, str] = {}
    n = 0
    sub = 0
    for item in subject.items():
        if item.parent_id is None:
            n += 1
            sub = 0
            out[item.id] = str(n)
        else:
            out[item.id] = f"{n}{chr(ord('a') + sub)}"
            sub += 1
    return out


def checklist_view(data: Mapping[str, Any], t: Translator) -> tuple[str, InlineKeyboardMarkup]:
    subject = _subject(data)
    yes = set(data.get("yes") or [])
    numbers = _numbers(subject)
    index = {item.id: i for i, item in enumerate(subject.items())}
    visit_id = int(data["visit"])
    lines = [
        t(
            "meja2.checklist_head",
            name=data["name"],
            temperature=fmt_temperature(str(data["temp"]), t),
            bp=fmt_bp(data.get("bp"), data.get("bp2")),
        ),
        "",
    ]
    kb: list[list[InlineKeyboardButton]] = []
    buttons: list[InlineKeyboardButton] = []
    for item in subject.visible(yes):
        number = numbers[item.id]
        key = "meja2.line_yes" if item.id in yes else "meja2.line_no"
        line = t(key, n=number, question=_raw(screening_text(t, item.id)))
        lines.append(f"   {line}" if item.parent_id else line)
        label = f"✅ {number}" if item.id in yes else number
        buttons.append(
            InlineKeyboardButton(
                text=label, callback_data=Screen(action="tog", visit_id=visit_id, item=index[item.id]).pack()
            )
        )
    for i in range(0, len(buttons), TOGGLES_PER_ROW):
        kb.append(buttons[i : i + TOGGLES_PER_ROW])
    done = "meja2.next_with_yes" if yes else "meja2.all_no"
    kb.append([InlineKeyboardButton(text=t(done), callback_data=Screen(action="done", visit_id=visit_id).pack())])
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=kb)


async def _show_checklist(message: Message, data: Mapping[str, Any], t: Translator, state: FSMContext) -> None:
    await state.set_state(Meja2.checklist)
    text, markup = checklist_view(data, t)
    await message.answer(text, reply_markup=markup)


async def toggle(callback: CallbackQuery, callback_data: Screen, t: Translator, state: FSMContext) -> None:
    data = await flow_data(state, callback_data.visit_id, Meja2.checklist)
    if data is None:
        await stale(callback, t)
        return
    subject = _subject(data)
    items = subject.items()
    if not 0 <= callback_data.item < len(items):
        await stale(callback, t)
        return
    item = items[callback_data.item]
    yes = set(data.get("yes") or [])
    if item.parent_id is not None and item.parent_id not in yes:
        await callback.answer()
        return
    if item.id in yes:
        yes.discard(item.id)
        yes.difference_update(item.follow_ups)  # a follow-up is asked only under a YES
    else:
        yes.add(item.id)
    order = [i.id for i in items]
    data = await state.update_data(yes=sorted(yes, key=order.index))
    text, markup = checklist_view(data, t)
    await callback.answer()
    await edit_or_send(callback, text, markup)


def review_view(data: Mapping[str, Any], result: ScreeningResult, t: Translator) -> tuple[str, InlineKeyboardMarkup]:
    subject = _subject(data)
    yes = list(data.get("yes") or [])
    asked = subject.visible(yes)
    lines = [
        t(
            "meja2.review_head",
            name=data["name"],
            dose=subject.dose_number,
            temperature=fmt_temperature(str(data["temp"]), t),
            bp=fmt_bp(data.get("bp"), data.get("bp2")),
        )
    ]
    if yes:
        lines.append(t("meja2.review_yes", count=len(yes), total=len(asked)))
        lines += [t("meja2.review_item", question=_raw(screening_text(t, i))) for i in yes]
    else:
        lines.append(t("meja2.review_all_no", count=len(asked)))
    lines += ["", t("meja2.review_result", outcome=_raw(outcome_label(result, t)))]
    lines += reason_lines(result, t)
    if result.outcome is Outcome.TUNDA:
        if result.rescreen_date:
            lines.append(t("meja2.rescreen", date=fmt_date(result.rescreen_date)))
        else:
            lines.append(t("meja2.rescreen_open"))
    lines.append(t("meja2.confirm"))
    visit_id = int(data["visit"])

    def button(key: str, action: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(text=t(key), callback_data=Screen(action=action, visit_id=visit_id).pack())

    rows = [
        [button("meja2.button_save", "save")],
        [button("meja2.button_back", "back"), button("meja2.button_vitals", "vitals")],
    ]
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows)


async def review(callback: CallbackQuery, callback_data: Screen, t: Translator, state: FSMContext) -> None:
    data = await flow_data(state, callback_data.visit_id, Meja2.checklist)
    if data is None:
        await stale(callback, t)
        return
    subject = _subject(data)
    result = subject.evaluate(_vitals(data), subject.answers(data.get("yes") or []))
    await state.update_data(outcome=result.outcome.value)
    await state.set_state(Meja2.review)
    text, markup = review_view(data, result, t)
    await callback.answer()
    await edit_or_send(callback, text, markup)


async def back_to_checklist(callback: CallbackQuery, callback_data: Screen, t: Translator, state: FSMContext) -> None:
    data = await flow_data(state, callback_data.visit_id, Meja2.review)
    if data is None:
        await stale(callback, t)
        return
    await state.set_state(Meja2.checklist)
    text, markup = checklist_view(data, t)
    await callback.answer()
    await edit_or_send(callback, text, markup)


async def measure_again(callback: CallbackQuery, callback_data: Screen, t: Translator, state: FSMContext) -> None:
    data = await flow_data(state, callback_data.visit_id, Meja2.review, Meja2.checklist)
    if data is None:
        await stale(callback, t)
        return
    await state.update_data(temp=None, bp=None, bp2=None)
    await state.set_state(Meja2.temperature)
    await callback.answer()
    await edit_or_send(callback, t("meja2.ask_temperature"))


# --------------------------------------------------------------------------------------------
# Saving


def saved_view(saved: ScreeningSaved, t: Translator) -> tuple[str, InlineKeyboardMarkup | None]:
    result = saved.result
    if saved.status is VisitStatus.TUNDA:
        until = saved.editable_until.strftime("%H:%M") if saved.editable_until else "23:59"
        lines = [t("meja2.saved_tunda", name=saved.name, until=until)]
    elif saved.status is VisitStatus.TIDAK_DIBERIKAN:
        lines = [t("meja2.saved_tidak_diberikan", name=saved.name)]
    else:
        lines = [t("meja2.saved_lanjut", name=saved.name)]
    if saved.edited:
        lines[0] += " " + t("meja2.saved_edited")
    if result.rujuk:
        lines.append(outcome_label(result, t))
    lines += reason_lines(result, t)
    if result.outcome is Outcome.TUNDA:
        lines.append(
            t("meja2.rescreen", date=fmt_date(result.rescreen_date))
            if result.rescreen_date
            else t("meja2.rescreen_open")
        )
    markup = None
    if saved.status is VisitStatus.TUNDA:
        edit = InlineKeyboardButton(
            text=t("meja2.button_edit_tunda"), callback_data=Screen(action="edit", visit_id=saved.visit_id).pack()
        )
        markup = InlineKeyboardMarkup(inline_keyboard=[[edit]])
    return "\n".join(lines), markup


async def save(
    callback: CallbackQuery, callback_data: Screen, actor: Actor, t: Translator, state: FSMContext, services: Services
) -> None:
    data = await flow_data(state, callback_data.visit_id, Meja2.review)
    if data is None:
        await stale(callback, t)
        return
    subject = _subject(data)
    answers = subject.answers(data.get("yes") or [])
    seen = Outcome(str(data["outcome"]))
    try:
        if data.get("edit"):
            saved = await services.screening.save_edit(
                actor,
                callback_data.visit_id,
                _vitals(data),
                answers,
                seen_version=int(data["version"]),
                seen_outcome=seen,
                with_queue=True,
            )
        else:
            saved = await services.screening.save(
                actor, callback_data.visit_id, _vitals(data), answers, seen_outcome=seen, with_queue=True
            )
    except Conflict:
        # Saved by someone else (or by the first of two taps): this draft is finished either way.
        await state.clear()
        await remove_buttons(callback)
        raise
    await state.clear()
    await callback.answer()
    text, markup = saved_view(saved, t)
    await edit_or_send(callback, text, markup)
    queue = saved.queue or await services.screening.queue(actor)  # read with the save, in one transaction
    if queue.waiting and callback.bot is not None:
        text, markup = queue_view(queue, t)
        await callback.bot.send_message(callback.from_user.id, text, reply_markup=markup)


# --------------------------------------------------------------------------------------------
# Anything else


async def expect_button(message: Message, t: Translator) -> None:
    await message.answer(t("meja2.expect_button"))


async def expect_text(message: Message, t: Translator, state: FSMContext) -> None:
    current = await state.get_state()
    if current == Meja2.temperature.state:
        await message.answer(t("meja2.ask_temperature"))
    elif current in (Meja2.blood_pressure.state, Meja2.remeasure.state):
        await message.answer(t("meja2.expect_bp"))
    else:
        await message.answer(t("meja2.expect_key"))
