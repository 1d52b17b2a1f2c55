"""Tests of core.domain.identifiers: NIK, tickets, lookup keys, phones and dates."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.domain.errors import (
    FrontdeskError,
    InvalidInput,
    InvalidNik,
    InvalidPhone,
    InvalidTicket,
)
from core.domain.identifiers import (
    NIK_PROVINCE_CODES,
    TICKET_ALPHABET,
    NikFacts,
    Sex,
    format_phone,
    format_ticket,
    generate_ticket,
    is_ticket_like,
    mask_nik,
    mask_phone,
    nik_mismatches,
    normalize_nik,
    normalize_phone,
    normalize_ticket,
    parse_date,
    parse_lookup_key,
    parse_nik,
    ticket_check_symbol,
)

FAST = settings(max_examples=60, deadline=None)
TODAY = date(2025, 6, 1)
MALE_NIK = "3171011708450001"  # Jakarta Pusat, 17-08-45, serial 0001
FEMALE_NIK = "3171015708450001"  # same, day 17 + 40


def raised(fn: Callable[[str], object], raw: str) -> FrontdeskError:
    with pytest.raises(InvalidInput) as info:
        fn(raw)
    return info.value


# --------------------------------------------------------------------------------------------
# NIK
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (MALE_NIK, MALE_NIK),
        (FEMALE_NIK, FEMALE_NIK),
        ("3171 0117 0845 0001", MALE_NIK),
        ("31.7101.170845.0001", MALE_NIK),
        ("3171-0117-0845-0001", MALE_NIK),
        (" 3171011708450001 \n", MALE_NIK),
        ("3171\u20130117\t0845 0001", MALE_NIK),  # en dash and tab
        ("3171017101900001", "3171017101900001"),  # woman born 31-01: day 71
        ("3171014101900001", "3171014101900001"),  # woman born 1st: day 41
        ("3171012902000001", "3171012902000001"),  # 29-02-2000 (leap)
        ("3171012902040001", "3171012902040001"),  # 29-02-2004 (leap)
        ("3171016902960001", "3171016902960001"),  # woman, 29-02-1996
        (
            "6501011708459999",
            "6501011708459999",
        ),  # Kalimantan Utara (not in stdnum's data)
        ("9601011708450001", "9601011708450001"),  # Papua Barat Daya (2022)
        ("1101011708450001", "1101011708450001"),  # Aceh, lowest code
    ],
)
def test_normalize_nik_accepts(raw: str, expected: str) -> None:
    assert normalize_nik(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason", "params"),
    [
        ("", "empty", {}),
        ("   ", "empty", {}),
        ("- . -", "empty", {}),
        ("31710117084500O1", "not_digits", {"bad": "O"}),
        ("3171x117x8450001", "not_digits", {"bad": "x"}),
        ("NIK 3171011708450001", "not_digits", {"bad": "NIK"}),
        ("317101170845000١", "not_digits", {"bad": "١"}),  # Arabic-Indic digit
        ("317101170845000", "length", {"got": 15}),
        ("31710117084500011", "length", {"got": 17}),
        ("3171", "length", {"got": 4}),
        ("9971011708450001", "province", {"code": "99"}),
        ("1071011708450001", "province", {"code": "10"}),
        ("0071011708450001", "province", {"code": "00"}),
        ("2071011708450001", "province", {"code": "20"}),
        ("3771011708450001", "province", {"code": "37"}),
        ("9771011708450001", "province", {"code": "97"}),
        ("3171010008450001", "date", {"got": "000845"}),  # day 0
        ("3171013208450001", "date", {"got": "320845"}),  # day 32
        ("3171014008450001", "date", {"got": "400845"}),  # day 40: neither sex
        ("3171017208450001", "date", {"got": "720845"}),  # woman's day 32
        (
            "3171018108450001",
            "date",
            {"got": "810845"},
        ),  # stdnum would read this as the 1st
        ("3171011700450001", "date", {"got": "170045"}),  # month 0
        ("3171011713450001", "date", {"got": "171345"}),  # month 13
        ("3171013104900001", "date", {"got": "310490"}),  # 31 April
        (
            "3171012902010001",
            "date",
            {"got": "290201"},
        ),  # 29-02 in 1901/2001: never leap
        ("3171016902030001", "date", {"got": "690203"}),  # woman, 29-02 in 1903/2003
        ("3171013002000001", "date", {"got": "300200"}),
        ("3171011708450000", "serial", {}),
    ],
)
def test_normalize_nik_rejects(raw: str, reason: str, params: dict[str, Any]) -> None:
    error = raised(normalize_nik, raw)
    assert isinstance(error, InvalidNik)
    assert error.reason == reason
    assert error.key == f"invalid.nik.{reason}"
    assert error.params == params


def test_nik_province_codes() -> None:
    expected = (
        set(range(11, 20))
        | {21}
        | set(range(31, 37))
        | set(range(51, 54))
        | set(range(61, 66))
        | set(range(71, 77))
        | {81, 82}
        | set(range(91, 97))
    )
    assert {int(code) for code in NIK_PROVINCE_CODES} == expected
    assert all(len(code) == 2 for code in NIK_PROVINCE_CODES)


def test_nik_province_codes_cover_stdnum() -> None:
    """Every province python-stdnum knows is ours too (ours adds the newer ones)."""
    from stdnum import numdb

    stdnum_provinces = {prefix[1] for prefix in numdb.get("id/loc").prefixes}
    assert stdnum_provinces
    assert stdnum_provinces <= NIK_PROVINCE_CODES


@pytest.mark.parametrize(
    ("raw", "today", "birth_date", "sex"),
    [
        (MALE_NIK, TODAY, date(1945, 8, 17), Sex.L),
        (FEMALE_NIK, TODAY, date(1945, 8, 17), Sex.P),
        ("3171011708100001", TODAY, date(2010, 8, 17), Sex.L),
        (
            "3171011708250001",
            TODAY,
            date(1925, 8, 17),
            Sex.L,
        ),  # 2025-08-17 is after today
        (
            "3171011708250001",
            date(2025, 8, 17),
            date(2025, 8, 17),
            Sex.L,
        ),  # today itself
        ("3171015708250001", date(2025, 8, 16), date(1925, 8, 17), Sex.P),
        ("3171012902000001", TODAY, date(2000, 2, 29), Sex.L),
        ("3171016902000001", TODAY, date(2000, 2, 29), Sex.P),
        ("3171017112990001", TODAY, date(1999, 12, 31), Sex.P),
        ("3171010101000001", TODAY, date(2000, 1, 1), Sex.L),
    ],
)
def test_parse_nik(raw: str, today: date, birth_date: date, sex: Sex) -> None:
    facts = parse_nik(raw, today=today)
    assert facts == NikFacts(
        nik=raw,
        province_code="31",
        kabkota_code="3171",
        kecamatan_code="317101",
        birth_date=birth_date,
        sex=sex,
    )


def test_parse_nik_defaults_today_and_normalises() -> None:
    facts = parse_nik("3171-0117-0845-0001")
    assert facts.nik == MALE_NIK
    assert facts.birth_date == date(1945, 8, 17)
    assert facts.birth_date <= date.today()


def test_parse_nik_29_february_2000_before_it_happened() -> None:
    # 2000-02-29 lies after `today` and 1900-02-29 does not exist.
    assert raised(
        lambda raw: parse_nik(raw, today=date(1999, 1, 1)), "3171012902000001"
    ).key == ("invalid.nik.date")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("", "empty"), ("3171", "length"), ("9971011708450001", "province"),
     ("3171013208450001", "date"), ("3171011708450000", "serial"), ("31710117O8450001", "not_digits")],
)  # fmt: skip
def test_parse_nik_rejects_like_normalize(raw: str, reason: str) -> None:
    error = raised(lambda r: parse_nik(r, today=TODAY), raw)
    assert isinstance(error, InvalidNik)
    assert error.reason == reason


def test_nik_facts_is_frozen() -> None:
    facts = parse_nik(MALE_NIK, today=TODAY)
    with pytest.raises(AttributeError):
        facts.sex = Sex.P  # type: ignore[misc]


def test_sex_values() -> None:
    assert [member.value for member in Sex] == ["L", "P"]
    assert Sex("P") is Sex.P
    assert f"{Sex.L}" == "L"


@pytest.mark.parametrize(
    ("birth_date", "sex", "expected"),
    [
        (date(1945, 8, 17), Sex.L, []),
        (None, None, []),
        (date(1945, 8, 17), None, []),
        (None, Sex.L, []),
        (date(1945, 8, 18), Sex.L, ["birth_date"]),
        (date(1945, 9, 17), Sex.L, ["birth_date"]),
        (date(1946, 8, 17), Sex.L, ["birth_date"]),
        (date(1945, 8, 17), Sex.P, ["sex"]),
        (date(1990, 1, 1), Sex.P, ["birth_date", "sex"]),
        (None, Sex.P, ["sex"]),
        (date(1845, 8, 17), Sex.L, []),  # the NIK carries no century
        (date(2045, 8, 17), Sex.L, []),
    ],
)
def test_nik_mismatches(
    birth_date: date | None, sex: Sex | None, expected: list[str]
) -> None:
    facts = parse_nik(MALE_NIK, today=TODAY)
    assert nik_mismatches(facts, birth_date, sex) == expected


def test_nik_mismatches_century_ambiguity() -> None:
    # A centenarian's NIK parses a century late; the record's real year must not be flagged.
    facts = parse_nik("3171011708200001", today=TODAY)
    assert facts.birth_date == date(2020, 8, 17)
    assert nik_mismatches(facts, date(1920, 8, 17), Sex.L) == []


@pytest.mark.parametrize(
    ("nik", "masked"),
    [
        (MALE_NIK, "317101••••••••••"),
        ("3171-0117-0845-0001", "317101••••••••••"),
        ("317101170845", "••••••••••••••••"),  # not a NIK: reveal nothing
        ("", "••••••••••••••••"),
        ("31710117084500O1", "••••••••••••••••"),
    ],
)
def test_mask_nik(nik: str, masked: str) -> None:
    assert mask_nik(nik) == masked


# A NIK from its parts, for properties.
birth_dates = st.dates(min_value=date(1926, 1, 1), max_value=TODAY)
provinces = st.sampled_from(sorted(NIK_PROVINCE_CODES))
places = st.text(alphabet="0123456789", min_size=4, max_size=4)
serials = st.integers(min_value=1, max_value=9999).map(lambda n: f"{n:04d}")


def build_nik(province: str, place: str, born: date, sex: Sex, serial: str) -> str:
    day = born.day + (40 if sex is Sex.P else 0)
    return f"{province}{place}{day:02d}{born.month:02d}{born.year % 100:02d}{serial}"


@FAST
@given(provinces, places, birth_dates, st.sampled_from(Sex), serials)
def test_nik_round_trips(
    province: str, place: str, born: date, sex: Sex, serial: str
) -> None:
    nik = build_nik(province, place, born, sex, serial)
    assert normalize_nik(nik) == nik
    assert normalize_nik(f"{nik[:4]} {nik[4:8]}-{nik[8:12]}.{nik[12:]}") == nik
    facts = parse_nik(nik, today=TODAY)
    assert facts == NikFacts(
        nik=nik,
        province_code=province,
        kabkota_code=nik[:4],
        kecamatan_code=nik[:6],
        birth_date=born,
        sex=sex,
    )
    assert nik_mismatches(facts, born, sex) == []


@FAST
@given(provinces, places, birth_dates, st.sampled_from(Sex), serials)
def test_masked_nik_hides_the_last_ten(
    province: str, place: str, born: date, sex: Sex, serial: str
) -> None:
    nik = build_nik(province, place, born, sex, serial)
    masked = mask_nik(nik)
    assert masked == nik[:6] + "•" * 10
    assert len(masked) == 16
    assert [ch for ch in masked if ch.isdigit()] == list(
        nik[:6]
    )  # only the district shows
    assert nik[-4:] not in masked[6:]


# --------------------------------------------------------------------------------------------
# Tickets
# --------------------------------------------------------------------------------------------


def test_ticket_alphabet() -> None:
    assert len(TICKET_ALPHABET) == 31
    assert len(set(TICKET_ALPHABET)) == 31
    assert all(n % d for d in range(2, 31) for n in [len(TICKET_ALPHABET)])  # prime
    assert not set("ILOUV") & set(TICKET_ALPHABET)
    assert set("0123456789") <= set(TICKET_ALPHABET)
    assert TICKET_ALPHABET.upper() == TICKET_ALPHABET


@pytest.mark.parametrize(
    ("body", "check"),
    [
        ("000000000", "0"),
        ("123456789", "6"),  # Σ i*i = 285 ≡ 6 (mod 31)
        ("ABCDEFGHJ", "8"),  # values 10..18: Σ i*(i+9) = 690 ≡ 8
        ("ZZZZZZZZZ", "H"),  # 30 * 45 = 1350 ≡ 17 -> H
    ],
)
def test_ticket_check_symbol(body: str, check: str) -> None:
    assert ticket_check_symbol(body) == check
    assert normalize_ticket(body + check) == body + check


@pytest.mark.parametrize(
    "body", ["", "12345678", "1234567890", "abcdefghj", "ABCDEFGHU"]
)
def test_ticket_check_symbol_refuses_bad_bodies(body: str) -> None:
    with pytest.raises(ValueError, match="ticket body"):
        ticket_check_symbol(body)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ABCDEFGHJ8", "ABCDEFGHJ8"),
        ("abcde-fghj8", "ABCDEFGHJ8"),
        (" ABCDE FGHJ8 ", "ABCDEFGHJ8"),
        ("AB.CDE-FG HJ8", "ABCDEFGHJ8"),
        ("ABCDE\u2013FGHJ8", "ABCDEFGHJ8"),
        ("I234567896", "1234567896"),  # I -> 1
        ("l2345-67896", "1234567896"),  # l -> 1
        ("i2345 67896", "1234567896"),
        ("OOOOOoooo0", "0000000000"),  # O -> 0
    ],
)
def test_normalize_ticket_accepts(raw: str, expected: str) -> None:
    assert normalize_ticket(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason", "params"),
    [
        ("", "empty", {}),
        (" - . ", "empty", {}),
        ("ABCDU-FGHJ8", "characters", {"bad": "U"}),
        ("ABCDV-FGHJ8", "characters", {"bad": "V"}),
        ("abcdu-fghj8", "characters", {"bad": "u"}),
        ("ABCDE_FGHJ8", "characters", {"bad": "_"}),
        ("#ABC#DEFGHJ8!", "characters", {"bad": "#!"}),
        ("ÀBCDEFGHJ8", "characters", {"bad": "À"}),
        ("ﬁ234567896", "characters", {"bad": "ﬁ"}),  # no Unicode case tricks
        ("ABCDEFGHJ", "length", {"got": 9}),
        ("ABCDEFGHJ88", "length", {"got": 11}),
        ("A", "length", {"got": 1}),
        ("ABCDEFGHJ9", "check", {}),
        ("BACDEFGHJ8", "check", {}),
        ("ABCDEFGH8J", "check", {}),  # last body symbol swapped with the check symbol
    ],
)
def test_normalize_ticket_rejects(
    raw: str, reason: str, params: dict[str, Any]
) -> None:
    error = raised(normalize_ticket, raw)
    assert isinstance(error, InvalidTicket)
    assert error.reason == reason
    assert error.key == f"invalid.ticket.{reason}"
    assert error.params == params


def test_format_ticket() -> None:
    assert format_ticket("ABCDEFGHJ8") == "ABCDE-FGHJ8"
    assert format_ticket("abcdefghj8") == "ABCDE-FGHJ8"
    with pytest.raises(InvalidTicket):
        format_ticket("ABCDEFGHJ9")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ABCDEFGHJ8", True),
        ("ABCDE-FGHJ9", True),  # shape only: the check symbol is not verified
        ("abcde fghjo", True),
        ("0812345678", True),  # ten digits are ticket-like too
        ("ABCDEFGHJ", False),
        ("ABCDU-FGHJ8", False),
        ("", False),
        (MALE_NIK, False),
    ],
)
def test_is_ticket_like(raw: str, expected: bool) -> None:
    assert is_ticket_like(raw) is expected


def test_generated_tickets_are_random() -> None:
    tickets = {generate_ticket() for _ in range(200)}
    assert len(tickets) == 200
    for ticket in tickets:
        assert len(ticket) == 10
        assert set(ticket) <= set(TICKET_ALPHABET)


tickets = st.text(alphabet=TICKET_ALPHABET, min_size=9, max_size=9).map(
    lambda body: body + ticket_check_symbol(body)
)


@FAST
@given(st.builds(generate_ticket) | tickets)
def test_ticket_normalises_to_itself(ticket: str) -> None:
    assert normalize_ticket(ticket) == ticket
    assert normalize_ticket(ticket.lower()) == ticket
    formatted = format_ticket(ticket)
    assert formatted == f"{ticket[:5]}-{ticket[5:]}"
    assert normalize_ticket(formatted) == ticket
    assert normalize_ticket(formatted.lower()) == ticket
    assert is_ticket_like(formatted)
    assert parse_lookup_key(formatted) == ("ticket", ticket)


@FAST
@given(tickets)
def test_every_single_substitution_is_caught(ticket: str) -> None:
    for position in range(len(ticket)):
        for symbol in TICKET_ALPHABET:
            if symbol == ticket[position]:
                continue
            typo = ticket[:position] + symbol + ticket[position + 1 :]
            assert raised(normalize_ticket, typo).reason == "check", typo


foreign = st.characters().filter(
    lambda ch: (
        not (ch.isspace() or ch in ".-\u2010\u2011\u2012\u2013\u2014\u2212")
        and (ch.upper() if ch.isascii() else ch)
        not in set(TICKET_ALPHABET) | {"O", "I", "L"}
    )
)


@FAST
@given(tickets, st.integers(min_value=0, max_value=9), foreign)
def test_foreign_substitution_is_caught(ticket: str, position: int, ch: str) -> None:
    typo = ticket[:position] + ch + ticket[position + 1 :]
    error = raised(normalize_ticket, typo)
    assert error.reason == "characters"
    assert error.params == {"bad": ch}


@FAST
@given(tickets)
def test_every_adjacent_transposition_is_caught(ticket: str) -> None:
    for position in range(len(ticket) - 1):
        a, b = ticket[position], ticket[position + 1]
        if a == b:
            continue
        swapped = ticket[:position] + b + a + ticket[position + 2 :]
        assert raised(normalize_ticket, swapped).reason == "check", swapped


# --------------------------------------------------------------------------------------------
# Lookup keys
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (MALE_NIK, ("nik", MALE_NIK)),
        ("3171 0117 0845 0001", ("nik", MALE_NIK)),
        ("ABCDEFGHJ8", ("ticket", "ABCDEFGHJ8")),
        ("abcde-fghj8", ("ticket", "ABCDEFGHJ8")),
        ("OOOOO-OOOO0", ("ticket", "0000000000")),
    ],
)
def test_parse_lookup_key(raw: str, expected: tuple[str, str]) -> None:
    assert parse_lookup_key(raw) == expected


@pytest.mark.parametrize(
    ("raw", "error_type", "reason", "params"),
    [
        ("", InvalidInput, "lookup_key", {"got": 0}),
        ("12345", InvalidInput, "lookup_key", {"got": 5}),
        ("317101170845000", InvalidInput, "lookup_key", {"got": 15}),
        ("ABCDEFGHJ", InvalidInput, "lookup_key", {"got": 9}),
        ("31710117084500O1", InvalidNik, "not_digits", {"bad": "O"}),
        ("ABCDEFGHJ8ABCDEF", InvalidNik, "not_digits", {"bad": "ABCDEFGHJ"}),
        ("9971011708450001", InvalidNik, "province", {"code": "99"}),
        ("3171011708450000", InvalidNik, "serial", {}),
        ("ABCDEFGHJ9", InvalidTicket, "check", {}),
        ("ABCDU-FGHJ8", InvalidTicket, "characters", {"bad": "U"}),
    ],
)
def test_parse_lookup_key_rejects(
    raw: str, error_type: type[InvalidInput], reason: str, params: dict[str, Any]
) -> None:
    error = raised(parse_lookup_key, raw)
    assert type(error) is error_type
    assert error.reason == reason
    assert error.params == params


def test_lookup_key_error_key() -> None:
    assert raised(parse_lookup_key, "123").key == "invalid.lookup_key"


# --------------------------------------------------------------------------------------------
# Phones
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("081234567890", "+6281234567890"),
        ("0812-3456-7890", "+6281234567890"),
        ("0812 3456 7890", "+6281234567890"),
        ("0812.3456.7890", "+6281234567890"),
        ("(0812) 3456-7890", "+6281234567890"),
        ("+62 812-3456-7890", "+6281234567890"),
        ("+62 (812) 3456 7890", "+6281234567890"),
        ("+62 (0)812 3456 7890", "+6281234567890"),
        ("+62 0812 3456 7890", "+6281234567890"),
        ("6281234567890", "+6281234567890"),
        ("0062 812 3456 7890", "+6281234567890"),
        ("81234567890", "+6281234567890"),
        (" 081234567890\n", "+6281234567890"),
        ("0812345678", "+62812345678"),  # 08 + 8 digits
        ("0812345678901", "+62812345678901"),  # 08 + 11 digits
        ("0899 9999 9999", "+6289999999999"),  # no operator-prefix check
        ("0800 1234 567", "+628001234567"),
    ],
)
def test_normalize_phone_accepts(raw: str, e164: str) -> None:
    assert normalize_phone(raw) == e164


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("---", "format"),
        ("()", "format"),
        ("+", "format"),
        ("08123", "format"),
        ("081234567", "format"),  # 08 + 7 digits
        ("08123456789012", "format"),  # 08 + 12 digits
        ("+62 812 3456 7890 1234", "format"),
        ("0812-3456-789O", "format"),  # letter O
        ("0812 3456 7890 ext 12", "format"),
        ("tel:+6281234567890", "format"),
        ("0812+34567890", "format"),
        ("+1 650 253 0000", "country"),
        ("+65 8123 4567", "country"),
        ("0065 8123 4567", "country"),
        ("+999 1234 5678", "country"),
        ("021-555-1234", "not_mobile"),  # Jakarta landline
        ("+62 21 5551234", "not_mobile"),
        ("0361 234567", "not_mobile"),
    ],
)
def test_normalize_phone_rejects(raw: str, reason: str) -> None:
    error = raised(normalize_phone, raw)
    assert isinstance(error, InvalidPhone)
    assert error.reason == reason
    assert error.key == f"invalid.phone.{reason}"


@pytest.mark.parametrize(
    ("e164", "masked", "national"),
    [
        ("+628123456778", "+62 812-••••-•78", "0812-3456-778"),
        ("+6281234567890", "+62 812-••••-••90", "0812-3456-7890"),
        ("+62812345678", "+62 812-••••-78", "0812-3456-78"),
        ("+62812345678901", "+62 812-••••-•••01", "0812-3456-78901"),
    ],
)
def test_mask_and_format_phone(e164: str, masked: str, national: str) -> None:
    assert mask_phone(e164) == masked
    assert format_phone(e164) == national
    assert normalize_phone(national) == e164


def test_mask_phone_never_raises() -> None:
    assert mask_phone("not a phone") == "••••••••"
    assert mask_phone("+16502530000") == "••••••••"
    with pytest.raises(InvalidPhone):
        format_phone("not a phone")


national_numbers = st.builds(
    lambda rest: "8" + rest, st.text(alphabet="0123456789", min_size=8, max_size=11)
)
phone_separators = st.sampled_from(["", "", " ", "-", "."])


@st.composite
def typed_phones(draw: st.DrawFn) -> tuple[str, str]:
    nsn = draw(national_numbers)
    prefix = draw(st.sampled_from(["0", "+62", "+62 ", "62", "+62 (0)", "0062 ", ""]))
    typed = "".join(digit + draw(phone_separators) for digit in nsn).rstrip(" -.")
    return prefix + typed, nsn


@FAST
@given(typed_phones())
def test_phone_round_trips(case: tuple[str, str]) -> None:
    typed, nsn = case
    e164 = "+62" + nsn
    assert normalize_phone(typed) == e164
    assert normalize_phone(e164) == e164
    assert normalize_phone(format_phone(e164)) == e164


@FAST
@given(national_numbers)
def test_masked_phone_shows_only_the_edges(nsn: str) -> None:
    masked = mask_phone("+62" + nsn)
    assert "".join(ch for ch in masked if ch.isdigit()) == "62" + nsn[:3] + nsn[-2:]
    assert masked.startswith(f"+62 {nsn[:3]}-")
    assert masked.endswith(nsn[-2:])
    assert masked.count("•") == len(nsn) - 5


# --------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("17-08-1990", date(1990, 8, 17)),
        ("17/08/1990", date(1990, 8, 17)),
        ("17.08.1990", date(1990, 8, 17)),
        ("17 08 1990", date(1990, 8, 17)),
        (" 17  08  1990 ", date(1990, 8, 17)),
        ("1990-08-17", date(1990, 8, 17)),
        ("17081990", date(1990, 8, 17)),
        ("7-8-1990", date(1990, 8, 7)),
        ("29-02-2000", date(2000, 2, 29)),
        ("29/02/2024", date(2024, 2, 29)),
        ("01-01-1900", date(1900, 1, 1)),
    ],
)
def test_parse_date_accepts(raw: str, expected: date) -> None:
    assert parse_date(raw) == expected


@pytest.mark.parametrize(
    ("raw", "got"),
    [
        ("", ""),
        ("   ", ""),
        ("kemarin", "kemarin"),
        ("17-08-90", "17-08-90"),  # two-digit year
        ("17-08/1990", "17-08/1990"),  # mixed separators
        ("1708199", "1708199"),
        ("170819900", "170819900"),
        ("31-04-1990", "31-04-1990"),
        ("29-02-1900", "29-02-1900"),  # 1900 is not a leap year
        ("29-02-2023", "29-02-2023"),
        ("00-01-1990", "00-01-1990"),
        ("17-13-1990", "17-13-1990"),
        ("17-08-0090", "17-08-0090"),
        ("1990-17-08", "1990-17-08"),
        ("١٧-٠٨-١٩٩٠", "١٧-٠٨-١٩٩٠"),  # non-ASCII digits
        ("  17 Agustus 1990, Jakarta  ", "17 Agustus 1990, Jak"),  # truncated to 20
    ],
)
def test_parse_date_rejects(raw: str, got: str) -> None:
    error = raised(parse_date, raw)
    assert type(error) is InvalidInput
    assert error.key == "invalid.date"
    assert error.params == {"got": got}


@FAST
@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31)))
def test_parse_date_round_trips(day: date) -> None:
    for text in (
        day.strftime("%d-%m-%Y"),
        day.strftime("%d/%m/%Y"),
        day.strftime("%d.%m.%Y"),
        day.strftime("%d %m %Y"),
        day.strftime("%d%m%Y"),
        day.isoformat(),
    ):
        assert parse_date(text) == day


# --------------------------------------------------------------------------------------------
# Robustness: parsers raise nothing but InvalidInput
# --------------------------------------------------------------------------------------------

PARSERS: list[Callable[[str], object]] = [
    normalize_nik,
    lambda raw: parse_nik(raw, today=TODAY),
    parse_nik,
    normalize_ticket,
    parse_lookup_key,
    normalize_phone,
    parse_date,
    # and the display helpers must never raise at all
    mask_nik,
    mask_phone,
    is_ticket_like,
]

arbitrary_text = (
    st.text(max_size=40)
    | st.text(alphabet="0123456789 -./()+OIlUVabcxyz\u2013\t", max_size=24)
    | st.text(alphabet="0123456789", min_size=8, max_size=20)
)


@settings(max_examples=150, deadline=None)
@given(arbitrary_text)
def test_parsers_raise_only_invalid_input(raw: str) -> None:
    for parser in PARSERS:
        with contextlib.suppress(InvalidInput):
            parser(raw)


@FAST
@given(st.integers(min_value=0, max_value=36500))
def test_parse_nik_never_returns_a_future_birth_date(offset: int) -> None:
    born = date(1926, 1, 1) + timedelta(days=offset)
    nik = build_nik("31", "7101", born, Sex.L, "0001")
    assert parse_nik(nik, today=TODAY).birth_date <= TODAY
