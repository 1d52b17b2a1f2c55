"""Meja 4: record the vaccination and the observation (``/vaksinasi``, ``v:vaccinate:<id>``, ``v:observe:<id>``).

An ordinary visit takes four taps and messages: open (a tap in the list), the recorder's last batch of the day
(one tap sets product, batch and expiry), the last four digits of the NIK (the confirmation that saves), and
"Tidak ada KIPI" after 30 minutes on the result message. The first visit of the day takes one more: the
product, then the batch (with the expiry in the same message, or "Lewati").

The NIK is never shown beyond its first 6 digits; a wrong code saves nothing and three wrong codes end the
flow. The KIPI buttons carry the visit id and need no conversation state: they work from the result message,
from the list and from the card, and core's conditional update makes a second tap a no-op.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import date
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.callbacks import VisitAction
from bot.flows.meja2 import fmt_date
from bot.i18n import Translator
from bot.notifier import Rendered, Renderer
from bot.replies import edit_or_send, flow_data, remove_buttons, stale
from core.domain.accounts import Actor
from core.domain.errors import Conflict, InvalidInput, Refused
from core.domain.visits import KipiOutcome, VisitStatus
from core.domain.vitals import parse_batch, parse_expiry
from core.services.registry import Services
from core.services.vaccination import (
    KIPI_SERIOUS_NOTIFICATION,
    OBSERVATION_MINUTES,
    ObservationForm,
    VaccinationForm,
    VaccinationQueue,
    VaccinationSaved,
)

MAX_CODE_TRIES = 3
PRODUCTS_PER_ROW = 2


def render_kipi_serious(t: Translator, params: Mapping[str, Any]) -> Rendered:
    """A serious KIPI, as the district's Dinkes admins read it (the NIK arrives masked from core)."""
    keys = ("name", "nik", "faskes", "faskes_code", "dose", "product", "batch", "vaccinated_at", "zone", "description")
    return t(KIPI_SERIOUS_NOTIFICATION, **{k: params.get(k, "") for k in keys}), None


NOTIFICATIONS: Mapping[str, Renderer] = {KIPI_SERIOUS_NOTIFICATION: render_kipi_serious}


class Meja4(StatesGroup):
    choose = State()
    product = State()
    batch = State()
    expiry = State()
    code = State()
    kipi_note = State()


class Vax(CallbackData, prefix="m4"):
    """A button of the meja 4 flow. ``value``: a product code, or a KIPI outcome."""

    action: str  # prod | last | lastb | skip | chg | kipi | early | later | note
    visit_id: int
    value: str = ""


def _not_command(message: Message) -> bool:
    return not (message.text or "").startswith("/")


def build_router() -> Router:
    router = Router(name="meja4")
    router.message.register(start, Command("vaksinasi"))
    router.callback_query.register(open_visit, VisitAction.filter(F.action == "vaccinate"))
    router.callback_query.register(open_observation, VisitAction.filter(F.action == "observe"))
    router.callback_query.register(choose_product, Vax.filter(F.action == "prod"))
    router.callback_query.register(use_last, Vax.filter(F.action.in_({"last", "lastb"})))
    router.callback_query.register(skip_expiry, Vax.filter(F.action == "skip"))
    router.callback_query.register(change, Vax.filter(F.action == "chg"))
    router.callback_query.register(kipi, Vax.filter(F.action == "kipi"))
    router.callback_query.register(early, Vax.filter(F.action == "early"))
    router.callback_query.register(later, Vax.filter(F.action == "later"))
    router.callback_query.register(skip_note, Vax.filter(F.action == "note"))
    router.message.register(choose_by_key, Meja4.choose, F.text, _not_command)
    router.message.register(batch, Meja4.batch, F.text, _not_command)
    router.message.register(expiry, Meja4.expiry, F.text, _not_command)
    router.message.register(code, Meja4.code, F.text, _not_command)
    router.message.register(kipi_note, Meja4.kipi_note, F.text, _not_command)
    router.message.register(expect, StateFilter(*Meja4.__states__), _not_command)
    return router


# --------------------------------------------------------------------------------------------
# Lists


def _button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=html.unescape(text), callback_data=data.pack())


def queue_view(
    queue: VaccinationQueue, t: Translator, now_minutes: Mapping[int, int]
) -> tuple[str, InlineKeyboardMarkup | None]:
    lines = [t("meja4.queue_title", count=len(queue.waiting) + queue.more)]
    kb: list[list[InlineKeyboardButton]] = []
    for e in queue.waiting:
        kb.append(
            [
                _button(
                    t("meja4.button_visit", name=e.name, dose=e.dose_number),
                    VisitAction(action="vaccinate", visit_id=e.visit_id),
                )
            ]
        )
    if not queue.waiting:
        lines.append(t("meja4.queue_empty"))
    if queue.more:
        lines.append(t("meja4.queue_more", count=queue.more))
    if queue.observing:
        lines.append(t("meja4.queue_observing", count=len(queue.observing)))
        for e in queue.observing:
            label = t("meja4.button_observe", name=e.name, minutes=now_minutes.get(e.visit_id, 0))
            kb.append([_button(label, VisitAction(action="observe", visit_id=e.visit_id))])
    lines.append(t("meja4.queue_hint"))
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=kb) if (queue.waiting or queue.observing) else None


def _elapsed(queue: VaccinationQueue, services: Services) -> dict[int, int]:
    now = services.ctx.clock.now()
    return {
        e.visit_id: max(0, int((now - e.vaccinated_at).total_seconds() // 60))
        for e in queue.observing
        if e.vaccinated_at is not None
    }


async def _send_queue(
    target: Message | CallbackQuery,
    actor: Actor,
    t: Translator,
    services: Services,
    *,
    always: bool,
    queue: VaccinationQueue | None = None,
) -> None:
    """The desk's list; ``queue`` when a use case already read it (in its own transaction)."""
    if queue is None:
        queue = await services.vaccination.queue(actor)
    if not always and not queue.waiting:
        return
    text, markup = queue_view(queue, t, _elapsed(queue, services))
    if isinstance(target, Message):
        await target.answer(text, reply_markup=markup)
    elif target.bot is not None:
        await target.bot.send_message(target.from_user.id, text, reply_markup=markup)


async def start(message: Message, actor: Actor, t: Translator, state: FSMContext, services: Services) -> None:
    await _send_queue(message, actor, t, services, always=True)
    await state.set_state(Meja4.choose)
    await state.set_data({})


async def choose_by_key(message: Message, actor: Actor, t: Translator, state: FSMContext, services: Services) -> None:
    assert message.text is not None
    entry = await services.vaccination.locate(actor, message.text)
    if entry.status is VisitStatus.OBSERVASI:
        form = await services.vaccination.observation(actor, entry.visit_id)
        text, markup = observation_view(form, t)
        await message.answer(text, reply_markup=markup)
        return
    await _begin(message, await services.vaccination.open(actor, entry.visit_id), t, state)


# --------------------------------------------------------------------------------------------
# Recording the dose


async def open_visit(
    callback: CallbackQuery,
    callback_data: VisitAction,
    actor: Actor,
    t: Translator,
    state: FSMContext,
    services: Services,
) -> None:
    form = await services.vaccination.open(actor, callback_data.visit_id)
    await callback.answer()
    await _begin(callback, form, t, state)


def _head(form_or_data: VaccinationForm | Mapping[str, Any], t: Translator) -> str:
    if isinstance(form_or_data, VaccinationForm):
        f = form_or_data
        return t("meja4.head", name=f.name, nik=f.nik_masked, age=f.age, dose=f.dose_number)
    d = form_or_data
    return t("meja4.head", name=d["name"], nik=d["nik"], age=d["age"], dose=d["dose"])


async def _begin(origin: Message | CallbackQuery, form: VaccinationForm, t: Translator, state: FSMContext) -> None:
    last = form.last_batch
    data: dict[str, Any] = {
        "visit": form.visit_id,
        "name": form.name,
        "nik": form.nik_masked,
        "age": form.age,
        "dose": form.dose_number,
        "today": form.today.isoformat(),
        "products": {p.code: p.name for p in form.products},
        "last": {
            "product": last.product_code,
            "batch": last.batch,
            "expiry": last.expiry.isoformat() if last.expiry else None,
        }
        if last
        else None,
        "product": None,
        "batch": None,
        "expiry": None,
        "tries": 0,
        "late": fmt_date(form.previous_dose_date) if form.late and form.previous_dose_date else None,
    }
    await state.set_data(data)
    if len(form.products) == 1:
        data["product"] = form.products[0].code
        await state.update_data(product=data["product"])
        text, markup = _batch_view(data, t, only=True)
        await state.set_state(Meja4.batch)
    else:
        text, markup = _product_view(data, t)
        await state.set_state(Meja4.product)
    await _send(origin, text, markup)


async def _send(origin: Message | CallbackQuery, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    if isinstance(origin, Message):
        await origin.answer(text, reply_markup=markup)
    elif origin.bot is not None:
        await origin.bot.send_message(origin.from_user.id, text, reply_markup=markup)


def _intro(data: Mapping[str, Any], t: Translator) -> list[str]:
    lines = [_head(data, t)]
    if data.get("late"):
        lines.append(t("meja4.late", dose=data["dose"], date=data["late"]))
    return lines


def _expiry_label(iso: str | None) -> str | None:
    return date.fromisoformat(iso).strftime("%m/%Y") if iso else None


def _product_view(data: Mapping[str, Any], t: Translator) -> tuple[str, InlineKeyboardMarkup]:
    visit_id = int(data["visit"])
    products: dict[str, str] = data["products"]
    last = data.get("last")
    kb: list[list[InlineKeyboardButton]] = []
    lines = _intro(data, t)
    if last and last["product"] in products:
        expiry = _expiry_label(last["expiry"])
        params = {"product": products[last["product"]], "batch": last["batch"]}
        label = t("meja4.button_last_expiry", **params, expiry=expiry) if expiry else t("meja4.button_last", **params)
        kb.append([_button(label, Vax(action="last", visit_id=visit_id))])
        lines.append(t("meja4.ask_product_last"))
    else:
        lines.append(t("meja4.ask_product"))
    buttons = [_button(name, Vax(action="prod", visit_id=visit_id, value=code)) for code, name in products.items()]
    for i in range(0, len(buttons), PRODUCTS_PER_ROW):
        kb.append(buttons[i : i + PRODUCTS_PER_ROW])
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=kb)


def _batch_view(
    data: Mapping[str, Any], t: Translator, *, only: bool = False
) -> tuple[str, InlineKeyboardMarkup | None]:
    product = data["products"][data["product"]]
    lines = _intro(data, t)
    if only:
        lines.append(t("meja4.only_product", product=product))
    lines.append(t("meja4.ask_batch", product=product))
    last = data.get("last")
    if not last or last["product"] != data["product"]:
        return "\n".join(lines), None
    expiry = _expiry_label(last["expiry"])
    label = (
        t("meja4.button_last_batch_expiry", batch=last["batch"], expiry=expiry)
        if expiry
        else t("meja4.button_last_batch", batch=last["batch"])
    )
    last = _button(label, Vax(action="lastb", visit_id=int(data["visit"])))
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=[[last]])


def _code_view(data: Mapping[str, Any], t: Translator) -> tuple[str, InlineKeyboardMarkup]:
    expiry = data.get("expiry")
    summary = t(
        "meja4.summary",
        name=data["name"],
        dose=data["dose"],
        product=data["products"][data["product"]],
        batch=data["batch"],
    )
    if expiry:
        summary += t("meja4.summary_expiry", expiry=fmt_date(date.fromisoformat(expiry)))
    change = _button(t("meja4.button_change"), Vax(action="chg", visit_id=int(data["visit"])))
    return f"{summary}\n{t('meja4.ask_code')}", InlineKeyboardMarkup(inline_keyboard=[[change]])


async def choose_product(callback: CallbackQuery, callback_data: Vax, t: Translator, state: FSMContext) -> None:
    data = await flow_data(state, callback_data.visit_id, Meja4.product)
    if data is None or callback_data.value not in data["products"]:
        await stale(callback, t)
        return
    data = await state.update_data(product=callback_data.value)
    await state.set_state(Meja4.batch)
    text, markup = _batch_view(data, t)
    await callback.answer()
    await edit_or_send(callback, text, markup)


async def use_last(callback: CallbackQuery, callback_data: Vax, t: Translator, state: FSMContext) -> None:
    """The recorder's last batch of the day: product (from the product step), batch and expiry in one tap."""
    expected = Meja4.product if callback_data.action == "last" else Meja4.batch
    data = await flow_data(state, callback_data.visit_id, expected)
    last = data.get("last") if data else None
    if data is None or not last or last["product"] not in data["products"]:
        await stale(callback, t)
        return
    if callback_data.action == "lastb" and last["product"] != data["product"]:
        await stale(callback, t)
        return
    data = await state.update_data(product=last["product"], batch=last["batch"], expiry=last["expiry"])
    await state.set_state(Meja4.code)
    text, markup = _code_view(data, t)
    await callback.answer()
    await edit_or_send(callback, text, markup)


async def batch(message: Message, t: Translator, state: FSMContext) -> None:
    assert message.text is not None
    data = await state.get_data()
    parts = message.text.split()
    if not parts or len(parts) > 2:
        raise InvalidInput("batch", got=message.text)
    value = parse_batch(parts[0])
    expiry_iso: str | None = None
    if len(parts) == 2:
        expiry_iso = parse_expiry(parts[1], date.fromisoformat(str(data["today"]))).isoformat()
    data = await state.update_data(batch=value, expiry=expiry_iso)
    if expiry_iso is None:
        await state.set_state(Meja4.expiry)
        skip = _button(t("meja4.button_skip"), Vax(action="skip", visit_id=int(data["visit"])))
        await message.answer(
            t("meja4.ask_expiry", batch=value), reply_markup=InlineKeyboardMarkup(inline_keyboard=[[skip]])
        )
        return
    await state.set_state(Meja4.code)
    text, markup = _code_view(data, t)
    await message.answer(text, reply_markup=markup)


async def expiry(message: Message, t: Translator, state: FSMContext) -> None:
    assert message.text is not None
    data = await state.get_data()
    value = parse_expiry(message.text, date.fromisoformat(str(data["today"])))
    data = await state.update_data(expiry=value.isoformat())
    await state.set_state(Meja4.code)
    text, markup = _code_view(data, t)
    await message.answer(text, reply_markup=markup)


async def skip_expiry(callback: CallbackQuery, callback_data: Vax, t: Translator, state: FSMContext) -> None:
    data = await flow_data(state, callback_data.visit_id, Meja4.expiry)
    if data is None:
        await stale(callback, t)
        return
    data = await state.update_data(expiry=None)
    await state.set_state(Meja4.code)
    text, markup = _code_view(data, t)
    await callback.answer()
    await edit_or_send(callback, text, markup)


async def change(callback: CallbackQuery, callback_data: Vax, t: Translator, state: FSMContext) -> None:
    data = await flow_data(state, callback_data.visit_id, Meja4.code)
    if data is None:
        await stale(callback, t)
        return
    data = await state.update_data(batch=None, expiry=None)
    if len(data["products"]) == 1:
        await state.set_state(Meja4.batch)
        text, markup = _batch_view(data, t, only=True)
    else:
        await state.set_state(Meja4.product)
        text, optional = _product_view(data, t)
        markup = optional
    await callback.answer()
    await edit_or_send(callback, text, markup)


async def code(message: Message, actor: Actor, t: Translator, state: FSMContext, services: Services) -> None:
    assert message.text is not None
    data = await state.get_data()
    expiry_iso = data.get("expiry")
    try:
        saved = await services.vaccination.record(
            actor,
            int(data["visit"]),
            product_code=str(data["product"]),
            batch=str(data["batch"]),
            expiry=date.fromisoformat(expiry_iso) if expiry_iso else None,
            nik_last4=message.text,
            with_queue=True,
        )
    except Refused as exc:
        if exc.reason != "nik_code_mismatch":
            raise
        tries = int(data.get("tries") or 0) + 1
        if tries >= MAX_CODE_TRIES:
            await state.clear()
            await message.answer(t("meja4.code_locked"))
            return
        await state.update_data(tries=tries)
        await message.answer(t("meja4.code_wrong", left=MAX_CODE_TRIES - tries))
        return
    except Conflict:
        await state.clear()
        raise
    await state.clear()
    text, markup = saved_view(saved, t)
    await message.answer(text, reply_markup=markup)
    await _send_queue(message, actor, t, services, always=False, queue=saved.queue)


def kipi_buttons(visit_id: int, t: Translator) -> InlineKeyboardMarkup:
    def kipi(key: str, outcome: KipiOutcome) -> InlineKeyboardButton:
        return _button(t(key), Vax(action="kipi", visit_id=visit_id, value=outcome.value))

    none = kipi("meja4.button_kipi_none", KipiOutcome.NONE)
    mild, serious = (
        kipi("meja4.button_kipi_mild", KipiOutcome.MILD),
        kipi("meja4.button_kipi_serious", KipiOutcome.SERIOUS),
    )
    return InlineKeyboardMarkup(inline_keyboard=[[none], [mild, serious]])


def saved_view(saved: VaccinationSaved, t: Translator) -> tuple[str, InlineKeyboardMarkup]:
    lines = [
        t(
            "meja4.saved",
            name=saved.name,
            dose=saved.dose_number,
            product=saved.product_name,
            batch=saved.batch,
            time=saved.vaccinated_at.strftime("%H:%M"),
            until=saved.observe_until.strftime("%H:%M"),
            zone=saved.zone,
        ),
        t("meja4.next_due", date=fmt_date(saved.next_due_date)) if saved.next_due_date else t("meja4.series_complete"),
    ]
    return "\n".join(lines), kipi_buttons(saved.visit_id, t)


# --------------------------------------------------------------------------------------------
# Observation


def observation_view(form: ObservationForm, t: Translator) -> tuple[str, InlineKeyboardMarkup]:
    lines = [
        t(
            "meja4.observe_head",
            name=form.name,
            dose=form.dose_number,
            product=form.product_name,
            batch=form.batch,
            time=form.vaccinated_at.strftime("%H:%M"),
            zone=form.zone,
            minutes=form.elapsed_minutes,
        ),
        t("meja4.observe_ready")
        if form.ready
        else t("meja4.observe_wait", remaining=OBSERVATION_MINUTES - form.elapsed_minutes),
    ]
    return "\n".join(lines), kipi_buttons(form.visit_id, t)


async def open_observation(
    callback: CallbackQuery, callback_data: VisitAction, actor: Actor, t: Translator, services: Services
) -> None:
    form = await services.vaccination.observation(actor, callback_data.visit_id)
    await callback.answer()
    text, markup = observation_view(form, t)
    await _send(callback, text, markup)


async def _observed(
    callback_or_message: CallbackQuery | Message,
    actor: Actor,
    t: Translator,
    services: Services,
    visit_id: int,
    outcome: KipiOutcome,
    note: str | None = None,
    *,
    early_ok: bool = False,
) -> None:
    saved = await services.vaccination.observe(actor, visit_id, outcome, note, early=early_ok)
    key = {"none": "meja4.observed_none", "mild": "meja4.observed_mild", "serious": "meja4.observed_serious"}[
        saved.outcome.value
    ]
    text = t(key, name=saved.name, count=saved.notified)
    if isinstance(callback_or_message, CallbackQuery):
        await callback_or_message.answer()
        await edit_or_send(callback_or_message, text)
    else:
        await callback_or_message.answer(text)


async def kipi(
    callback: CallbackQuery, callback_data: Vax, actor: Actor, t: Translator, state: FSMContext, services: Services
) -> None:
    try:
        outcome = KipiOutcome(callback_data.value)
    except ValueError:
        await stale(callback, t)
        return
    if outcome is KipiOutcome.NONE:
        try:
            await _observed(callback, actor, t, services, callback_data.visit_id, outcome)
        except Refused as exc:
            if exc.reason != "observation_early":
                raise
            early = [
                _button(t("meja4.button_early_yes"), Vax(action="early", visit_id=callback_data.visit_id)),
                _button(t("meja4.button_early_no"), Vax(action="later", visit_id=callback_data.visit_id)),
            ]
            await callback.answer()
            await edit_or_send(
                callback,
                t("meja4.early", minutes=exc.params.get("minutes", 0)),
                InlineKeyboardMarkup(inline_keyboard=[early]),
            )
        return
    # Mild or serious: ask for the description (checked by core: the visit must be in observation).
    form = await services.vaccination.observation(actor, callback_data.visit_id)
    await state.set_state(Meja4.kipi_note)
    await state.set_data({"visit": form.visit_id, "kipi": outcome.value})
    markup = None
    if outcome is KipiOutcome.MILD:
        skip = _button(t("meja4.button_skip"), Vax(action="note", visit_id=form.visit_id))
        markup = InlineKeyboardMarkup(inline_keyboard=[[skip]])
    await callback.answer()
    await remove_buttons(callback)
    prompt = t("meja4.ask_mild") if outcome is KipiOutcome.MILD else t("meja4.ask_serious")
    await _send(callback, f"<b>{html.escape(form.name)}</b>\n{prompt}", markup)


async def early(callback: CallbackQuery, callback_data: Vax, actor: Actor, t: Translator, services: Services) -> None:
    await _observed(callback, actor, t, services, callback_data.visit_id, KipiOutcome.NONE, early_ok=True)


async def later(callback: CallbackQuery, callback_data: Vax, actor: Actor, t: Translator, services: Services) -> None:
    form = await services.vaccination.observation(actor, callback_data.visit_id)
    text, markup = observation_view(form, t)
    await callback.answer()
    await edit_or_send(callback, text, markup)


async def kipi_note(message: Message, actor: Actor, t: Translator, state: FSMContext, services: Services) -> None:
    assert message.text is not None
    data = await state.get_data()
    outcome = KipiOutcome(str(data["kipi"]))
    try:
        await _observed(message, actor, t, services, int(data["visit"]), outcome, message.text)
    except Conflict:
        await state.clear()
        raise
    await state.clear()


async def skip_note(
    callback: CallbackQuery, callback_data: Vax, actor: Actor, t: Translator, state: FSMContext, services: Services
) -> None:
    current = await state.get_state()
    data = await state.get_data()
    if current != Meja4.kipi_note.state or data.get("visit") != callback_data.visit_id or data.get("kipi") != "mild":
        await stale(callback, t)
        return
    await state.clear()
    await _observed(callback, actor, t, services, callback_data.visit_id, KipiOutcome.MILD)


# --------------------------------------------------------------------------------------------
# Anything else


async def expect(message: Message, t: Translator, state: FSMContext) -> None:
    current = await state.get_state()
    key = {
        Meja4.batch.state: "meja4.expect_batch",
        Meja4.expiry.state: "meja4.expect_expiry",
        Meja4.code.state: "meja4.expect_code",
        Meja4.kipi_note.state: "meja4.expect_note",
        Meja4.choose.state: "meja4.expect_key",
    }.get(current or "", "meja4.expect_button")
    await message.answer(t(key))
