"""Parsers for what desk staff type in chat: temperature, blood pressure, batch and expiry.

Each parser returns a clean value or raises :class:`InvalidInput` with a stable reason and the
(trimmed, shortened) text it got as ``got``.
"""

from __future__ import annotations

import calendar
import re
from datetime import date
from decimal import Decimal

from core.domain.errors import InvalidInput

__all__ = [
    "BATCH_MAX",
    "BATCH_MIN",
    "DIASTOLIC_RANGE",
    "SYSTOLIC_RANGE",
    "TEMPERATURE_MAX",
    "TEMPERATURE_MIN",
    "parse_batch",
    "parse_blood_pressure",
    "parse_expiry",
    "parse_temperature",
]

TEMPERATURE_MIN = Decimal("34.0")
TEMPERATURE_MAX = Decimal("42.5")
SYSTOLIC_RANGE = (60, 260)
DIASTOLIC_RANGE = (30, 160)
BATCH_MIN = 3
BATCH_MAX = 20

_GOT_MAX = 40

_TEMPERATURE = re.compile(r"([0-9]{2})(?:[.,]([0-9]{1,2}))?\s*(?:[°º˚]\s*C?|C)?", re.IGNORECASE)
_BLOOD_PRESSURE = re.compile(r"([0-9]{2,3})\s*(?:[/-]|\s)\s*([0-9]{2,3})(?:\s*mm\s*hg)?", re.IGNORECASE)
_BATCH = re.compile(r"(?=.*[A-Z0-9])[A-Z0-9/-]+")
_MONTH_YEAR = re.compile(r"([0-9]{1,2})[/.-]([0-9]{4})")
_YEAR_MONTH = re.compile(r"([0-9]{4})[/.-]([0-9]{1,2})")
_DAY_MONTH_YEAR = re.compile(r"([0-9]{1,2})[/.-]([0-9]{1,2})[/.-]([0-9]{4})")
_YEAR_MONTH_DAY = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})")


def _got(raw: str) -> str:
    text = raw.strip()
    return text if len(text) <= _GOT_MAX else text[: _GOT_MAX - 1] + "…"


def parse_temperature(raw: str) -> Decimal:
    """Body temperature in °C: "36,5", "36.5", "36", "36.5 C", "36,5°".

    Comma or dot as decimal mark, at most two decimals, an optional °/C unit. Reason
    ``temperature`` for anything else and for values outside 34.0–42.5.
    """
    match = _TEMPERATURE.fullmatch(raw.strip())
    if match is None:
        raise InvalidInput("temperature", got=_got(raw))
    whole, fraction = match.groups()
    value = Decimal(f"{whole}.{fraction}" if fraction else whole)
    if not TEMPERATURE_MIN <= value <= TEMPERATURE_MAX:
        raise InvalidInput("temperature", got=_got(raw))
    return value


def parse_blood_pressure(raw: str) -> tuple[int, int]:
    """(systolic, diastolic) from "120/80", "120 / 80", "120-80" or "120 80" (optional mmHg).

    Reason ``blood_pressure`` when malformed, systolic outside 60–260, diastolic outside 30–160,
    or systolic not above diastolic.
    """
    match = _BLOOD_PRESSURE.fullmatch(raw.strip())
    if match is None:
        raise InvalidInput("blood_pressure", got=_got(raw))
    systolic, diastolic = int(match.group(1)), int(match.group(2))
    if not (
        SYSTOLIC_RANGE[0] <= systolic <= SYSTOLIC_RANGE[1]
        and DIASTOLIC_RANGE[0] <= diastolic <= DIASTOLIC_RANGE[1]
        and systolic > diastolic
    ):
        raise InvalidInput("blood_pressure", got=_got(raw))
    return systolic, diastolic


def parse_batch(raw: str) -> str:
    """A batch/lot number: trimmed, uppercased, 3–20 of A–Z, 0–9, "-" and "/".

    At least one letter or digit. Reason ``batch`` otherwise (including empty input).
    """
    text = raw.strip().upper()
    if not BATCH_MIN <= len(text) <= BATCH_MAX or _BATCH.fullmatch(text) is None:
        raise InvalidInput("batch", got=_got(raw))
    return text


def _date_or_none(year: int, month: int, day: int | None) -> date | None:
    if not 1 <= month <= 12 or not 1 <= year <= 9999:
        return None
    last = calendar.monthrange(year, month)[1]
    if day is None:
        return date(year, month, last)
    if not 1 <= day <= last:
        return None
    return date(year, month, day)


def parse_expiry(raw: str, today: date) -> date:
    """An expiry date, not before ``today``.

    "MM/YYYY", "MM-YYYY" and "YYYY-MM" mean the last day of that month; full dates are
    "DD-MM-YYYY" (also with "/" or ".") and ISO "YYYY-MM-DD". Reason ``expiry`` when malformed,
    ``expiry_past`` (params ``got``, ``expiry``, ``today``) when before ``today``.
    """
    text = raw.strip()
    parsed: date | None = None
    if match := _DAY_MONTH_YEAR.fullmatch(text):
        day, month, year = (int(g) for g in match.groups())
        parsed = _date_or_none(year, month, day)
    elif match := _YEAR_MONTH_DAY.fullmatch(text):
        year, month, day = (int(g) for g in match.groups())
        parsed = _date_or_none(year, month, day)
    elif match := _MONTH_YEAR.fullmatch(text):
        month, year = (int(g) for g in match.groups())
        parsed = _date_or_none(year, month, None)
    elif match := _YEAR_MONTH.fullmatch(text):
        year, month = (int(g) for g in match.groups())
        parsed = _date_or_none(year, month, None)
    if parsed is None:
        raise InvalidInput("expiry", got=_got(raw))
    if parsed < today:
        raise InvalidInput("expiry_past", got=_got(raw), expiry=parsed, today=today)
    return parsed
