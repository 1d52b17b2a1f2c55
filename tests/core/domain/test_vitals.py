from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.domain.errors import InvalidInput
from core.domain.vitals import (
    parse_batch,
    parse_blood_pressure,
    parse_expiry,
    parse_temperature,
)

TODAY = date(2021, 6, 15)


# --- temperature ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("36,5", "36.5"),
        ("36.5", "36.5"),
        ("36", "36"),
        ("36.5 C", "36.5"),
        ("36,5°", "36.5"),
        ("36.5°C", "36.5"),
        ("  37,8 °c ", "37.8"),
        ("36.55", "36.55"),
        ("34.0", "34.0"),
        ("42.5", "42.5"),
        ("38º", "38"),
    ],
)
def test_parse_temperature(raw: str, expected: str) -> None:
    assert parse_temperature(raw) == Decimal(expected)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "abc",
        "365",
        "33.9",
        "42.6",
        "3.65",
        "36..5",
        "36,5,1",
        "-36",
        "36.5 F",
        "36.555",
        "١٢",
    ],
)
def test_parse_temperature_rejects(raw: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_temperature(raw)
    assert info.value.key == "invalid.temperature"
    assert info.value.params == {"got": raw.strip()}


@given(
    st.decimals(Decimal("34.0"), Decimal("42.5"), places=1),
    st.sampled_from([".", ","]),
    st.sampled_from(["", " C", "°", " °C"]),
)
def test_parse_temperature_roundtrip(value: Decimal, mark: str, unit: str) -> None:
    assert parse_temperature(str(value).replace(".", mark) + unit) == value


@given(st.text())
def test_parse_temperature_only_raises_invalid_input(raw: str) -> None:
    try:
        value = parse_temperature(raw)
    except InvalidInput as error:
        assert error.reason == "temperature"
    else:
        assert Decimal("34.0") <= value <= Decimal("42.5")


# --- blood pressure ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("120/80", (120, 80)),
        ("120 / 80", (120, 80)),
        ("120-80", (120, 80)),
        ("120 80", (120, 80)),
        (" 90/60 mmHg ", (90, 60)),
        ("260/160", (260, 160)),
        ("60/30", (60, 30)),
    ],
)
def test_parse_blood_pressure(raw: str, expected: tuple[int, int]) -> None:
    assert parse_blood_pressure(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "120",
        "120/",
        "/80",
        "abc",
        "300/20",
        "261/80",
        "59/40",
        "120/29",
        "200/161",
        "80/80",
        "80/120",
        "120//80",
        "1200/80",
        "12.0/80",
    ],
)
def test_parse_blood_pressure_rejects(raw: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_blood_pressure(raw)
    assert info.value.key == "invalid.blood_pressure"
    assert info.value.params == {"got": raw.strip()}


@given(
    st.integers(60, 260), st.integers(30, 160), st.sampled_from(["/", " / ", "-", " "])
)
def test_parse_blood_pressure_roundtrip(
    systolic: int, diastolic: int, sep: str
) -> None:
    raw = f"{systolic}{sep}{diastolic}"
    if systolic > diastolic:
        assert parse_blood_pressure(raw) == (systolic, diastolic)
    else:
        with pytest.raises(InvalidInput):
            parse_blood_pressure(raw)


@given(st.text())
def test_parse_blood_pressure_only_raises_invalid_input(raw: str) -> None:
    try:
        systolic, diastolic = parse_blood_pressure(raw)
    except InvalidInput as error:
        assert error.reason == "blood_pressure"
    else:
        assert 60 <= systolic <= 260 and 30 <= diastolic <= 160 and systolic > diastolic


# --- batch ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a123", "A123"),
        ("  ctmav547  ", "CTMAV547"),
        ("PT/BF-2021/01", "PT/BF-2021/01"),
        ("abc", "ABC"),
        ("X" * 20, "X" * 20),
        ("1-2", "1-2"),
    ],
)
def test_parse_batch(raw: str, expected: str) -> None:
    assert parse_batch(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "   ", "ab", "X" * 21, "AB 12", "AB_12", "AB.12", "---", "//-", "ÄBC"]
)
def test_parse_batch_rejects(raw: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_batch(raw)
    assert info.value.key == "invalid.batch"
    assert info.value.params == {"got": raw.strip()}


@given(st.text())
def test_parse_batch_only_raises_invalid_input(raw: str) -> None:
    try:
        batch = parse_batch(raw)
    except InvalidInput as error:
        assert error.reason == "batch"
    else:
        assert 3 <= len(batch) <= 20
        assert set(batch) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-/")
        assert parse_batch(batch) == batch


# --- expiry --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("06/2021", date(2021, 6, 30)),  # this month: still valid until its last day
        ("6/2021", date(2021, 6, 30)),
        ("02-2024", date(2024, 2, 29)),
        ("2022-02", date(2022, 2, 28)),
        ("2021-12", date(2021, 12, 31)),
        ("15-06-2021", TODAY),  # today is not past
        ("31/12/2021", date(2021, 12, 31)),
        ("1.7.2021", date(2021, 7, 1)),
        ("2021-07-01", date(2021, 7, 1)),
    ],
)
def test_parse_expiry(raw: str, expected: date) -> None:
    assert parse_expiry(raw, TODAY) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "abc",
        "13/2021",
        "00/2021",
        "2021-13",
        "31-02-2022",
        "06/21",
        "2021",
        "06//2021",
        "0000-01",
        "32-01-2022",
    ],
)
def test_parse_expiry_malformed(raw: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_expiry(raw, TODAY)
    assert info.value.key == "invalid.expiry"
    assert info.value.params == {"got": raw.strip()}


@pytest.mark.parametrize(
    ("raw", "expiry"),
    [
        ("05/2021", date(2021, 5, 31)),
        ("2020-12", date(2020, 12, 31)),
        ("14-06-2021", date(2021, 6, 14)),
    ],
)
def test_parse_expiry_past(raw: str, expiry: date) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_expiry(raw, TODAY)
    assert info.value.key == "invalid.expiry_past"
    assert info.value.params == {"got": raw, "expiry": expiry, "today": TODAY}


@given(st.dates(date(2000, 1, 1), date(2099, 12, 31)))
def test_parse_expiry_roundtrip(day: date) -> None:
    today = date(2000, 1, 1)
    assert parse_expiry(day.strftime("%d-%m-%Y"), today) == day
    assert parse_expiry(day.isoformat(), today) == day
    month_end = parse_expiry(day.strftime("%m/%Y"), today)
    assert (month_end.year, month_end.month) == (
        day.year,
        day.month,
    ) and month_end >= day


@given(st.text(), st.dates())
def test_parse_expiry_only_raises_invalid_input(raw: str, today: date) -> None:
    try:
        expiry = parse_expiry(raw, today)
    except InvalidInput as error:
        assert error.reason in {"expiry", "expiry_past"}
    else:
        assert expiry >= today


@given(st.text(alphabet="0123456789/-. ", max_size=12), st.dates())
def test_parse_expiry_date_like_text_only_raises_invalid_input(
    raw: str, today: date
) -> None:
    try:
        parse_expiry(raw, today)
    except InvalidInput as error:
        assert error.reason in {"expiry", "expiry_past"}
