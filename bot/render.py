"""Core results into chat text and buttons. Everything a person reads comes from the locale files."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from aiogram.exceptions import TelegramBadRequest
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.callbacks import TargetAction, VisitAction
from bot.i18n import Translator
from core.domain.accounts import Role
from core.domain.errors import FrontdeskError, NotFound
from core.domain.identifiers import format_ticket
from core.domain.timeutil import ZONE_LABELS
from core.domain.vaccines import PRODUCTS
from core.domain.visits import VACCINATED, VisitStatus
from core.services.lookup import TargetCard
from core.services.recipients import GROUPS, AwaitedTarget, RecipientEntry, RecipientList, next_step
from core.services.registration import Registration

PAGE_SIZE = 8
BUTTON_NAME_MAX = 40

# Icons are not words: they live here, the words in the locale files.
STEP_ICONS = {
    "register": "📝",
    "phone": "📞",
    "verify": "🔎",
    "screen": "🩺",
    "vaccinate": "💉",
    "observe": "👁",
    "card": "📄",
}


def fmt_date(d: date) -> str:
    return d.strftime("%d-%m-%Y")


def fmt_param(value: Any) -> Any:
    """Dates as people read them (dd-mm-yyyy); anything else unchanged."""
    if isinstance(value, datetime):
        return value.strftime("%d-%m-%Y %H:%M")
    if isinstance(value, date):
        return fmt_date(value)
    return value


def error_text(t: Translator, err: FrontdeskError) -> str:
    """The localised message of a typed error, with its dates formatted."""
    copy = type(err)(err.reason, **{k: fmt_param(v) for k, v in err.params.items()})
    return t.error(copy)


def product_name(code: str | None) -> str:
    if not code:
        return ""
    return PRODUCTS[code].name if code in PRODUCTS else code


# --------------------------------------------------------------------------------------------
# The target card


def render_card(card: TargetCard, t: Translator) -> str:
    lines = [
        t("card.title", name=card.name),
        t("card.nik", nik=card.nik),
        t("card.ticket", ticket=format_ticket(card.ticket)),
        t("card.born", date=fmt_date(card.birth_date), age=card.age, sex=t(f"sex.{card.sex}")),
        t("card.phone", phone=card.phone_masked) if card.phone_masked else t("card.no_phone"),
        t("card.category", category=category_label(card.category, t)),
    ]
    if card.assigned_faskes_name:
        if card.scheduled_date:
            lines.append(t("card.assigned", faskes=card.assigned_faskes_name, date=fmt_date(card.scheduled_date)))
        else:
            lines.append(t("card.assigned_undated", faskes=card.assigned_faskes_name))
    lines += render_doses(card, t)
    lines += render_warnings(card, t)
    lines += render_plan(card, t)
    return "\n".join(lines)


def category_label(category: str, t: Translator) -> str:
    key = f"category.{category}"
    return t(key) if t.has(key) else category


def render_doses(card: TargetCard, t: Translator) -> list[str]:
    out: list[str] = []
    for v in card.visits:
        n, when, where = v.dose_number, fmt_date(v.service_date), v.faskes_name
        if v.status in VACCINATED:
            out.append(t("card.dose_done", n=n, product=product_name(v.product_code), date=when, faskes=where))
        elif v.status is VisitStatus.TUNDA:
            if v.rescreen_date and v.rescreen_date > card.today:
                line = t("card.dose_tunda_until", n=n, date=when, until=fmt_date(v.rescreen_date))
            else:
                line = t("card.dose_tunda", n=n, date=when, faskes=where)
            out.append(line + (t("card.rujuk") if v.rujuk else ""))
        elif v.status is VisitStatus.TIDAK_DIBERIKAN:
            out.append(t("card.dose_tidak", n=n, date=when, faskes=where))
        elif v.lapsed:
            out.append(t("card.dose_lapsed", n=n, date=when, faskes=where))
        else:
            out.append(t("card.dose_open", n=n, status=t(f"status.{v.status.value}"), faskes=where))
    if not card.visits:
        out.append(t("card.dose_none", n=1))
    return out


def render_warnings(card: TargetCard, t: Translator) -> list[str]:
    out: list[str] = []
    if card.typed_birth_date is not None:
        if card.typed_birth_vs_nik and card.nik_birth_date is not None:
            out.append(
                t("card.typed_vs_nik", nik_date=fmt_date(card.nik_birth_date), typed=fmt_date(card.typed_birth_date))
            )
        if card.typed_birth_vs_record:
            out.append(
                t("card.typed_vs_record", typed=fmt_date(card.typed_birth_date), record=fmt_date(card.birth_date))
            )
        if not card.typed_birth_vs_nik and not card.typed_birth_vs_record:
            out.append(t("card.typed_ok"))
    if "birth_date" in card.nik_mismatches:
        out.append(t("card.nik_mismatch_birth"))
    if "sex" in card.nik_mismatches:
        out.append(t("card.nik_mismatch_sex"))
    return out


def render_plan(card: TargetCard, t: Translator) -> list[str]:
    """Rule 2 for today, as one line (the open visit is already shown among the doses)."""
    plan = card.plan
    if plan is None or plan.refusal == "open_visit":
        return []
    if plan.refusal == "series_complete":
        return [t("card.series_complete")]
    out: list[str] = []
    if plan.possible:
        out.append(t("card.next_today", n=plan.dose_number))
        if plan.late_due is not None:
            out.append(t("card.late", n=plan.dose_number, due=fmt_date(plan.late_due)))
    else:
        out.append("⛔ " + error_text(t, plan.refuse()))
    if plan.tidak_diberikan_on is not None:
        out.append(t("card.tidak_before", date=fmt_date(plan.tidak_diberikan_on)))
    return out


def card_keyboard(card: TargetCard, t: Translator) -> InlineKeyboardMarkup | None:
    rows: list[list[InlineKeyboardButton]] = []
    small: list[InlineKeyboardButton] = []
    for action in card.actions:
        label = f"{STEP_ICONS[action.kind]} {t(f'card.btn_{action.kind}')}"
        data: CallbackData
        if action.visit_id is not None:
            data = VisitAction(action=action.kind, visit_id=action.visit_id)
        else:
            data = TargetAction(action=action.kind, target_id=card.target_id, version=card.version)
        button = InlineKeyboardButton(text=label, callback_data=data.pack())
        if action.kind in ("register", "screen", "vaccinate", "observe"):
            rows.append([button])
        else:
            small.append(button)
    if small:
        rows.append(small)
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def render_registered(reg: Registration, card: TargetCard, t: Translator) -> str:
    lines = [
        t(
            "meja1.registered",
            name=card.name,
            dose=reg.dose_number,
            faskes=reg.faskes_name,
            date=fmt_date(reg.service_date),
        )
    ]
    if reg.late_due is not None:
        lines.append(t("card.late", n=reg.dose_number, due=fmt_date(reg.late_due)))
    if reg.tidak_diberikan_on is not None:
        lines.append(t("card.tidak_before", date=fmt_date(reg.tidak_diberikan_on)))
    for lapsed in reg.lapsed:
        lines.append(t("meja1.lapsed", date=fmt_date(lapsed.service_date), faskes=lapsed.faskes_name))
    return "\n".join(lines)


def render_not_found(err: NotFound, t: Translator, *, verifier: bool) -> str:
    lines = [error_text(t, err)]
    if "nik_birth" in err.params and "typed_birth" in err.params:
        lines.append(
            t(
                "lookup.hint_nik_birth",
                nik_birth=fmt_param(err.params["nik_birth"]),
                typed_birth=fmt_param(err.params["typed_birth"]),
            )
        )
    if verifier:
        lines.append(t("lookup.hint_verifier"))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Daftar Penerima Vaksin


class Queue(CallbackData, prefix="q"):
    """A view and page of the Daftar Penerima Vaksin (also Refresh: the same view and page)."""

    view: str
    page: int = 0


class QueueRegister(CallbackData, prefix="qr"):
    """Registrasi from the "belum datang" view; the list is re-read and edited in place afterwards."""

    target_id: int
    version: int
    page: int = 0


# view code -> the status it filters on; "a" is every visit, "b" the targets not arrived yet.
VIEWS: dict[str, VisitStatus | None] = {
    "s": VisitStatus.MENUNGGU_SKRINING,
    "v": VisitStatus.MENUNGGU_VAKSINASI,
    "o": VisitStatus.OBSERVASI,
    "d": VisitStatus.SELESAI,
    "t": VisitStatus.TUNDA,
    "x": VisitStatus.TIDAK_DIBERIKAN,
    "b": None,
    "a": None,
}
VIEW_OF_STATUS = {status: code for code, status in VIEWS.items() if status is not None}
GROUP_ICONS = {
    VisitStatus.MENUNGGU_SKRINING: "⏳",
    VisitStatus.MENUNGGU_VAKSINASI: "💉",
    VisitStatus.OBSERVASI: "👁",
    VisitStatus.SELESAI: "✅",
    VisitStatus.TUNDA: "⏸",
    VisitStatus.TIDAK_DIBERIKAN: "⛔",
}
AWAITED_ICON = "🕓"


def default_view(roles: frozenset[Role]) -> str:
    """Each desk sees its own queue first; meja 1 and people at several desks see everything."""
    desks = roles & {Role.MEJA1, Role.MEJA2, Role.MEJA4}
    if desks == {Role.MEJA2}:
        return "s"
    if desks == {Role.MEJA4}:
        return "v"
    return "a"


@dataclass(frozen=True, slots=True)
class Page:
    text: str
    markup: InlineKeyboardMarkup
    view: str
    page: int


def _clip(name: str) -> str:
    return name if len(name) <= BUTTON_NAME_MAX else name[: BUTTON_NAME_MAX - 1] + "…"


def _entry_line(i: int, e: RecipientEntry, t: Translator) -> str:
    line = t("antrian.entry", i=i, name=e.name, dose=e.dose_number, nik=e.nik_masked)
    if e.status is VisitStatus.TUNDA and e.rescreen_date is not None:
        line += t("antrian.until", until=fmt_date(e.rescreen_date))
    if e.rujuk:
        line += t("card.rujuk")
    return line


def _entry_button(e: RecipientEntry, roles: frozenset[Role]) -> InlineKeyboardButton:
    step = next_step(e.status, roles)
    action = step or "card"
    data = VisitAction(action=action, visit_id=e.visit_id).pack()
    return InlineKeyboardButton(text=f"{STEP_ICONS[action]} {_clip(e.name)}", callback_data=data)


def _awaited_button(a: AwaitedTarget, roles: frozenset[Role], page: int) -> InlineKeyboardButton:
    if Role.MEJA1 in roles:
        data = QueueRegister(target_id=a.target_id, version=a.version, page=page).pack()
        return InlineKeyboardButton(text=f"{STEP_ICONS['register']} {_clip(a.name)}", callback_data=data)
    card = TargetAction(action="card", target_id=a.target_id, version=a.version).pack()
    return InlineKeyboardButton(text=f"{STEP_ICONS['card']} {_clip(a.name)}", callback_data=card)


def render_list(lst: RecipientList, view: str, page: int, roles: frozenset[Role], t: Translator) -> Page:
    """One page of one view of the list, with its buttons: entries, tabs, ◀ Refresh ▶."""
    if view not in VIEWS:
        view = "a"
    counts = lst.counts
    zone = ZONE_LABELS.get(lst.timezone, lst.timezone)
    lines = [
        t(
            "antrian.title",
            faskes=lst.faskes_name,
            date=fmt_date(lst.service_date),
            time=lst.as_of.strftime("%H:%M"),
            zone=zone,
        ),
        t(
            "antrian.counts",
            s=counts[VisitStatus.MENUNGGU_SKRINING],
            v=counts[VisitStatus.MENUNGGU_VAKSINASI],
            o=counts[VisitStatus.OBSERVASI],
            d=counts[VisitStatus.SELESAI],
            t=counts[VisitStatus.TUNDA],
            x=counts[VisitStatus.TIDAK_DIBERIKAN],
            b=len(lst.not_arrived),
        ),
        "",
    ]
    rows: list[list[InlineKeyboardButton]] = []
    items: tuple[RecipientEntry | AwaitedTarget, ...]
    if view == "b":
        items = lst.not_arrived
    elif view == "a":
        items = lst.entries
    else:
        status = VIEWS[view]
        assert status is not None
        items = lst.in_status(status)
    pages = max(1, -(-len(items) // PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    start = page * PAGE_SIZE
    chunk: list[RecipientEntry | AwaitedTarget] = list(items[start : start + PAGE_SIZE])

    if view == "b":
        lines.append(t("antrian.section_header", icon=AWAITED_ICON, title=t("antrian.section.belum"), n=len(items)))
    elif view != "a":
        status = VIEWS[view]
        assert status is not None
        lines.append(
            t(
                "antrian.section_header",
                icon=GROUP_ICONS[status],
                title=t(f"antrian.section.{status.value}"),
                n=len(items),
            )
        )
    if not chunk:
        lines.append(t("antrian.empty"))
    last_status: VisitStatus | None = None
    for offset, item in enumerate(chunk, start=start + 1):
        if isinstance(item, AwaitedTarget):
            lines.append(t("antrian.awaited", i=offset, name=item.name, nik=item.nik_masked))
            rows.append([_awaited_button(item, roles, page)])
            continue
        if view == "a" and item.status is not last_status:
            last_status = item.status
            lines.append(
                t(
                    "antrian.section_header",
                    icon=GROUP_ICONS[item.status],
                    title=t(f"antrian.section.{item.status.value}"),
                    n=counts[item.status],
                )
            )
        lines.append(_entry_line(offset, item, t))
        rows.append([_entry_button(item, roles)])
    if pages > 1:
        lines.append(t("antrian.page", page=page + 1, pages=pages))

    def tab(code: str, icon: str, n: int) -> InlineKeyboardButton:
        mark = "• " if code == view else ""
        return InlineKeyboardButton(text=f"{mark}{icon} {n}", callback_data=Queue(view=code, page=0).pack())

    tabs = [tab(VIEW_OF_STATUS[s], GROUP_ICONS[s], counts[s]) for s in GROUPS]
    tabs.append(tab("b", AWAITED_ICON, len(lst.not_arrived)))
    all_label = t("antrian.all")
    tabs.append(
        InlineKeyboardButton(
            text=f"{'• ' if view == 'a' else ''}{all_label} {len(lst.entries)}",
            callback_data=Queue(view="a", page=0).pack(),
        )
    )
    rows.append(tabs[:4])
    rows.append(tabs[4:])
    nav: list[InlineKeyboardButton] = []
    if page > 0:
        nav.append(InlineKeyboardButton(text="◀", callback_data=Queue(view=view, page=page - 1).pack()))
    nav.append(
        InlineKeyboardButton(text=f"🔄 {t('antrian.refresh')}", callback_data=Queue(view=view, page=page).pack())
    )
    if page < pages - 1:
        nav.append(InlineKeyboardButton(text="▶", callback_data=Queue(view=view, page=page + 1).pack()))
    rows.append(nav)
    return Page("\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows), view, page)


# --------------------------------------------------------------------------------------------
# Editing in place


async def edit_in_place(callback: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None) -> bool:
    """Edit the message the button belongs to (or send a new one). False when nothing changed."""
    message = callback.message
    if not isinstance(message, Message):
        if callback.bot is not None and callback.from_user is not None:
            await callback.bot.send_message(callback.from_user.id, text, reply_markup=markup)
        return True
    try:
        await message.edit_text(text, reply_markup=markup)
    except TelegramBadRequest as exc:
        if "message is not modified" in str(exc).lower():
            return False
        raise
    return True
