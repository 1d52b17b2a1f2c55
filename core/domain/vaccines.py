"""Vaccine products and their effective-dated minimum intervals between doses.

The interval rows also live in the PL database; the functions take the rows as a parameter and
``DEFAULT_INTERVALS`` is the reference copy (and the seed).

Which row applies: **the row in force on the day the next dose is given.** A change of interval
applies at once to everyone still waiting for a dose (as the Ministry's circulars did), so a
dose given on day ``d`` is allowed when ``d >= previous_dose_date + min_interval_days(d)``.
Because an interval may grow (AstraZeneca 28 -> 84 days on 2021-07-01), the set of allowed days
need not be one unbroken range; :func:`earliest_next_dose` therefore takes ``not_before``
(e.g. today) and answers the first allowed day on or after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from types import MappingProxyType

from core.domain.errors import InvalidInput

__all__ = [
    "DEFAULT_INTERVALS",
    "LATE_AFTER_DAYS",
    "PRODUCTS",
    "IntervalRule",
    "Product",
    "earliest_next_dose",
    "is_interval_passed",
    "is_late",
    "min_interval_days",
]

LATE_AFTER_DAYS = 30
"""A dose is late when given more than this many days after its earliest date."""


@dataclass(frozen=True)
class Product:
    code: str
    name: str
    doses: int


PRODUCTS: Mapping[str, Product] = MappingProxyType(
    {
        product.code: product
        for product in (
            Product("coronavac", "CoronaVac", 2),
            Product("sinopharm", "Sinopharm", 2),
            Product("astrazeneca", "AstraZeneca", 2),
            Product("moderna", "Moderna", 2),
            Product("pfizer", "Pfizer-BioNTech", 2),
            Product("novavax", "Novavax", 2),
        )
    }
)


@dataclass(frozen=True)
class IntervalRule:
    """From ``effective_from`` on, the minimum days between doses of ``product_code``.

    ``min_days_age_60`` applies to people aged 60 or more; None means the same as ``min_days``.
    """

    product_code: str
    effective_from: date
    min_days: int
    min_days_age_60: int | None = None

    def days_for(self, age: int) -> int:
        if age >= 60 and self.min_days_age_60 is not None:
            return self.min_days_age_60
        return self.min_days


_JAN = date(2021, 1, 1)
_JUL = date(2021, 7, 1)

DEFAULT_INTERVALS: tuple[IntervalRule, ...] = (
    IntervalRule("coronavac", _JAN, 14, 28),
    IntervalRule("coronavac", _JUL, 28),
    IntervalRule("sinopharm", _JAN, 21),
    IntervalRule("sinopharm", _JUL, 21),
    IntervalRule("astrazeneca", _JAN, 28),
    IntervalRule("astrazeneca", _JUL, 84),
    IntervalRule("moderna", _JAN, 28),
    IntervalRule("moderna", _JUL, 28),
    IntervalRule("pfizer", _JAN, 28),
    IntervalRule("pfizer", _JUL, 21),
    IntervalRule("novavax", _JAN, 21),
    # DOMAIN.md gives "—" for Novavax from 2021-07 (no revised figure was published): we keep
    # 21 days, so the row is repeated explicitly rather than left to chance.
    IntervalRule("novavax", _JUL, 21),
)


def _rows(rules: Iterable[IntervalRule], product: str) -> list[IntervalRule]:
    """The rows of ``product``, oldest first; raises for an unknown product or none at all."""
    if product not in PRODUCTS:
        raise InvalidInput("product", got=product)
    rows = sorted((r for r in rules if r.product_code == product), key=lambda r: r.effective_from)
    if not rows:
        raise InvalidInput("interval_rule_missing", product=product)
    return rows


def min_interval_days(rules: Iterable[IntervalRule], product: str, on_date: date, age: int) -> int:
    """The minimum days since the previous dose for a dose of ``product`` given on ``on_date``.

    The row in force on ``on_date`` (the latest ``effective_from <= on_date``) decides; ``age``
    is the person's age on that date. Raises ``InvalidInput("interval_rule_missing")`` when no
    row is in force on that date.
    """
    in_force = [r for r in _rows(rules, product) if r.effective_from <= on_date]
    if not in_force:
        raise InvalidInput("interval_rule_missing", product=product, on_date=on_date)
    return in_force[-1].days_for(age)


def is_interval_passed(
    rules: Iterable[IntervalRule],
    product: str,
    previous_dose_date: date,
    age: int,
    on_date: date,
) -> bool:
    """Whether a next dose may be given on ``on_date`` (the interval in force that day)."""
    try:
        days = min_interval_days(rules, product, on_date, age)
    except InvalidInput as error:
        if error.reason == "interval_rule_missing":
            return False
        raise
    return on_date >= previous_dose_date + timedelta(days=days)


def earliest_next_dose(
    rules: Iterable[IntervalRule],
    product: str,
    previous_dose_date: date,
    age: int,
    *,
    not_before: date | None = None,
) -> date:
    """The first day, on or after ``not_before``, on which the next dose may be given.

    ``not_before`` defaults to the day after the previous dose. Each row covers the days from
    its ``effective_from`` to the next row's; within it the candidate is
    ``max(start, previous_dose_date + its interval)``, and the first candidate inside its row
    wins. With ``not_before=today`` the answer is today exactly when the dose is allowed today.
    ``age`` is taken as constant over the wait (pass the age on the day of interest).
    """
    rows = _rows(rules, product)
    start_floor = not_before if not_before is not None else previous_dose_date + timedelta(1)
    for index, row in enumerate(rows):
        end = rows[index + 1].effective_from if index + 1 < len(rows) else None
        candidate = max(
            row.effective_from,
            start_floor,
            previous_dose_date + timedelta(days=row.days_for(age)),
        )
        if end is None or candidate < end:
            return candidate
    raise AssertionError("unreachable: the last row has no end")  # pragma: no cover


def is_late(
    rules: Iterable[IntervalRule],
    product: str,
    previous_dose_date: date,
    age: int,
    on_date: date,
) -> bool:
    """Whether a dose given on ``on_date`` is more than 30 days past its earliest date.

    The earliest date is ``previous_dose_date + min_interval_days(on_date)``: the interval in
    force on the day of the dose, as everywhere in this module. Late doses are allowed (the
    caller warns); this never refuses.
    """
    days = min_interval_days(rules, product, on_date, age)
    earliest = previous_dose_date + timedelta(days=days)
    return on_date > earliest + timedelta(days=LATE_AFTER_DAYS)
