"""Core results into chat text. Everything a person reads comes from the locale files."""

from __future__ import annotations

from datetime import date

from bot.i18n import Translator
from core.domain.identifiers import format_ticket
from core.domain.visits import VisitStatus
from core.services.lookup import TargetCard


def fmt_date(d: date) -> str:
    return d.strftime("%d-%m-%Y")


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
    return "\n".join(lines)


def category_label(category: str, t: Translator) -> str:
    key = f"category.{category}"
    return t(key) if t.has(key) else category


def render_doses(card: TargetCard, t: Translator) -> list[str]:
    out: list[str] = []
    for v in card.visits:
        n, when, where = v.dose_number, fmt_date(v.service_date), v.faskes_name
        if v.status in (VisitStatus.OBSERVASI, VisitStatus.SELESAI):
            out.append(t("card.dose_done", n=n, product=v.product_code or "", date=when, faskes=where))
        elif v.status is VisitStatus.TUNDA:
            if v.rescreen_date and v.rescreen_date > card.today:
                out.append(t("card.dose_tunda_until", n=n, date=when, until=fmt_date(v.rescreen_date)))
            else:
                out.append(t("card.dose_tunda", n=n, date=when, faskes=where))
        elif v.status is VisitStatus.TIDAK_DIBERIKAN:
            out.append(t("card.dose_tidak", n=n, date=when, faskes=where))
        else:
            out.append(t("card.dose_open", n=n, status=t(f"status.{v.status.value}"), faskes=where))
    if not any(v.status in (VisitStatus.OBSERVASI, VisitStatus.SELESAI) for v in card.visits) and not card.visits:
        out.append(t("card.dose_none", n=1))
    return out
