from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.domain.errors import InvalidInput
from core.domain.vaccines import (
    DEFAULT_INTERVALS,
    PRODUCTS,
    IntervalRule,
    Product,
    earliest_next_dose,
    is_interval_passed,
    is_late,
    min_interval_days,
)

BEFORE = date(2021, 3, 15)
AFTER = date(2021, 8, 15)
R = DEFAULT_INTERVALS


def test_products() -> None:
    assert dict(PRODUCTS) == {
        "coronavac": Product("coronavac", "CoronaVac", 2),
        "sinopharm": Product("sinopharm", "Sinopharm", 2),
        "astrazeneca": Product("astrazeneca", "AstraZeneca", 2),
        "moderna": Product("moderna", "Moderna", 2),
        "pfizer": Product("pfizer", "Pfizer-BioNTech", 2),
        "novavax": Product("novavax", "Novavax", 2),
    }


def test_every_product_has_rows_from_both_dates() -> None:
    for code in PRODUCTS:
        dates = sorted(r.effective_from for r in R if r.product_code == code)
        assert dates == [date(2021, 1, 1), date(2021, 7, 1)], code


@pytest.mark.parametrize(
    ("product", "age", "before", "after"),
    [
        ("coronavac", 40, 14, 28),
        ("coronavac", 59, 14, 28),
        ("coronavac", 60, 28, 28),
        ("coronavac", 75, 28, 28),
        ("sinopharm", 40, 21, 21),
        ("sinopharm", 70, 21, 21),
        ("astrazeneca", 40, 28, 84),
        ("astrazeneca", 70, 28, 84),
        ("moderna", 40, 28, 28),
        ("pfizer", 40, 28, 21),
        ("pfizer", 70, 28, 21),
        ("novavax", 40, 21, 21),  # "—" from 2021-07: kept at 21 days
    ],
)
def test_min_interval_days(product: str, age: int, before: int, after: int) -> None:
    assert min_interval_days(R, product, BEFORE, age) == before
    assert min_interval_days(R, product, AFTER, age) == after


@pytest.mark.parametrize(
    ("on_date", "expected"),
    [
        (date(2021, 1, 1), 28),
        (date(2021, 6, 30), 28),
        (date(2021, 7, 1), 84),
    ],
)
def test_rule_boundary_is_the_dose_date(on_date: date, expected: int) -> None:
    assert min_interval_days(R, "astrazeneca", on_date, 40) == expected


def test_no_rule_in_force() -> None:
    with pytest.raises(InvalidInput) as info:
        min_interval_days(R, "coronavac", date(2020, 12, 31), 40)
    assert info.value.reason == "interval_rule_missing"


def test_unknown_product() -> None:
    with pytest.raises(InvalidInput) as info:
        min_interval_days(R, "sputnik", BEFORE, 40)
    assert info.value.reason == "product"


def test_rows_are_a_parameter() -> None:
    rows = [IntervalRule("moderna", date(2021, 1, 1), 35)]
    assert min_interval_days(rows, "moderna", BEFORE, 40) == 35
    with pytest.raises(InvalidInput):
        min_interval_days(rows, "pfizer", BEFORE, 40)


@pytest.mark.parametrize(
    ("product", "previous", "age", "expected"),
    [
        # simple cases inside one period
        ("coronavac", date(2021, 1, 14), 30, date(2021, 1, 28)),
        ("coronavac", date(2021, 2, 1), 65, date(2021, 3, 1)),
        ("coronavac", date(2021, 7, 10), 30, date(2021, 8, 7)),
        ("sinopharm", date(2021, 3, 1), 30, date(2021, 3, 22)),
        ("moderna", date(2021, 8, 1), 30, date(2021, 8, 29)),
        ("novavax", date(2021, 9, 1), 30, date(2021, 9, 22)),
        # the row in force on the day of the next dose decides
        (
            "astrazeneca",
            date(2021, 5, 1),
            30,
            date(2021, 5, 29),
        ),  # 28 days, before July
        (
            "astrazeneca",
            date(2021, 6, 10),
            30,
            date(2021, 9, 2),
        ),  # 28 days would be in July: 84
        (
            "pfizer",
            date(2021, 6, 10),
            30,
            date(2021, 7, 1),
        ),  # 28 > 21: allowed from July 1
        ("pfizer", date(2021, 6, 1), 30, date(2021, 6, 29)),
        (
            "coronavac",
            date(2021, 6, 20),
            30,
            date(2021, 7, 18),
        ),  # 14 days would be July 4: 28
        ("coronavac", date(2021, 6, 10), 30, date(2021, 6, 24)),
    ],
)
def test_earliest_next_dose(
    product: str, previous: date, age: int, expected: date
) -> None:
    assert earliest_next_dose(R, product, previous, age) == expected


def test_earliest_next_dose_not_before() -> None:
    # AZ dose 1 on 2021-06-01: allowed 06-29 and 06-30, then not again until 84 days (08-24).
    previous = date(2021, 6, 1)
    assert earliest_next_dose(R, "astrazeneca", previous, 30) == date(2021, 6, 29)
    assert earliest_next_dose(
        R, "astrazeneca", previous, 30, not_before=date(2021, 6, 30)
    ) == date(2021, 6, 30)
    assert earliest_next_dose(
        R, "astrazeneca", previous, 30, not_before=date(2021, 7, 1)
    ) == date(2021, 8, 24)
    assert earliest_next_dose(
        R, "astrazeneca", previous, 30, not_before=date(2021, 9, 1)
    ) == date(2021, 9, 1)


@given(
    product=st.sampled_from(sorted(PRODUCTS)),
    previous=st.dates(date(2021, 1, 1), date(2022, 12, 31)),
    age=st.integers(18, 100),
    gap=st.integers(0, 200),
)
def test_earliest_next_dose_is_the_first_allowed_day(
    product: str, previous: date, age: int, gap: int
) -> None:
    not_before = previous + timedelta(days=gap)
    earliest = earliest_next_dose(R, product, previous, age, not_before=not_before)
    assert earliest >= not_before
    assert is_interval_passed(R, product, previous, age, earliest)
    day = not_before
    while day < earliest:
        assert not is_interval_passed(R, product, previous, age, day)
        day += timedelta(days=1)


@pytest.mark.parametrize(
    ("product", "previous", "on_date", "expected"),
    [
        ("sinopharm", date(2021, 3, 1), date(2021, 3, 21), False),  # day 20
        ("sinopharm", date(2021, 3, 1), date(2021, 3, 22), True),  # day 21
        ("astrazeneca", date(2021, 6, 1), date(2021, 6, 29), True),
        ("astrazeneca", date(2021, 6, 1), date(2021, 7, 5), False),  # now 84 days
        (
            "coronavac",
            date(2020, 12, 1),
            date(2020, 12, 30),
            False,
        ),  # no rule in force yet
    ],
)
def test_is_interval_passed(
    product: str, previous: date, on_date: date, expected: bool
) -> None:
    assert is_interval_passed(R, product, previous, 40, on_date) is expected


@pytest.mark.parametrize(
    ("product", "previous", "age", "on_date", "expected"),
    [
        # sinopharm 21 days: earliest 2021-03-22; late after 2021-04-21
        ("sinopharm", date(2021, 3, 1), 30, date(2021, 3, 22), False),
        ("sinopharm", date(2021, 3, 1), 30, date(2021, 4, 21), False),
        ("sinopharm", date(2021, 3, 1), 30, date(2021, 4, 22), True),
        # coronavac before July: 14 days under 60, 28 from 60
        (
            "coronavac",
            date(2021, 3, 1),
            30,
            date(2021, 4, 14),
            False,
        ),  # earliest 03-15, +30
        ("coronavac", date(2021, 3, 1), 30, date(2021, 4, 15), True),
        ("coronavac", date(2021, 3, 1), 65, date(2021, 4, 15), False),  # earliest 03-29
        ("coronavac", date(2021, 3, 1), 65, date(2021, 4, 29), True),
        # the interval in force on the dose date: AZ dose 1 in May, dose 2 in August
        (
            "astrazeneca",
            date(2021, 5, 1),
            30,
            date(2021, 7, 24),
            False,
        ),  # 84 days: due 07-24
        ("astrazeneca", date(2021, 5, 1), 30, date(2021, 8, 23), False),
        ("astrazeneca", date(2021, 5, 1), 30, date(2021, 8, 24), True),
    ],
)
def test_is_late(
    product: str, previous: date, age: int, on_date: date, expected: bool
) -> None:
    assert is_late(R, product, previous, age, on_date) is expected
