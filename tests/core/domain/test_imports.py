"""The pure rules of an import: header mapping, value parsing, the fast paths, bulk tickets, report cells."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.domain.errors import InvalidInput
from core.domain.identifiers import TICKET_ALPHABET, normalize_nik, normalize_phone, normalize_ticket, parse_date
from core.domain.imports import (
    FaskesInfo,
    _Caches,
    _date_value,
    _fast_nik,
    fast_phone,
    find_header,
    generate_tickets,
    map_header,
    neutralize_cell,
    normalize_header,
    parse_category,
    parse_sex,
)


def _outcome(fn, raw):
    try:
        return ("ok", fn(raw))
    except InvalidInput as exc:
        return ("error", exc.key)


# --- fast paths agree with the canonical functions -----------------------------------------

_phone_chars = st.sampled_from([*"0123456789+ -.()", "62", "08", "+62", "8"])


@settings(max_examples=3000, deadline=None)
@given(st.lists(_phone_chars, min_size=0, max_size=18).map("".join))
def test_fast_phone_is_normalize_phone(raw: str) -> None:
    assert _outcome(fast_phone, raw) == _outcome(normalize_phone, raw)


@settings(max_examples=2000, deadline=None)
@given(st.from_regex(r"(\+62|62|0)?8[0-9]{6,13}", fullmatch=True))
def test_fast_phone_on_mobile_shapes(raw: str) -> None:
    assert _outcome(fast_phone, raw) == _outcome(normalize_phone, raw)


def _nik_or_none(raw: str):
    try:
        return normalize_nik(raw)
    except InvalidInput:
        return None


@settings(max_examples=3000, deadline=None)
@given(st.from_regex(r"[0-9]{16}", fullmatch=True) | st.text(alphabet="0123456789 .-x", max_size=20))
def test_fast_nik_never_disagrees(raw: str) -> None:
    fast = _fast_nik(raw, _Caches())
    if fast is not None:
        assert fast == normalize_nik(raw)
    elif len(raw) == 16 and raw.isdigit():
        assert _nik_or_none(raw) is None  # the fast path only declines NIKs the canonical check refuses


@settings(max_examples=2000, deadline=None)
@given(st.dates(min_value=date(1890, 1, 1), max_value=date(2110, 12, 31)), st.sampled_from(["iso", "dmy", "slash"]))
def test_date_cells_parse_like_parse_date(day: date, shape: str) -> None:
    raw = {"iso": day.isoformat(), "dmy": day.strftime("%d-%m-%Y"), "slash": day.strftime("%d/%m/%Y")}[shape]
    if day.year < 1000:
        return
    expected = _outcome(parse_date, raw)
    try:
        got = ("ok", _date_value(raw, _Caches()))
    except InvalidInput as exc:
        got = ("error", exc.key)
    assert got == expected


def test_date_cells_of_every_kind() -> None:
    caches = _Caches()
    assert _date_value(date(1990, 1, 2), caches) == date(1990, 1, 2)
    assert _date_value(32875.0, caches) == date(1990, 1, 2)  # an Excel serial number
    assert _date_value("02011990", caches) == date(1990, 1, 2)
    with pytest.raises(InvalidInput):
        _date_value("1990-02-30", caches)
    with pytest.raises(InvalidInput):  # cached errors raise again
        _date_value("1990-02-30", caches)


# --- headers and values --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "norm"),
    [("Tgl. Lahir ", "tgl_lahir"), ("\ufeffNAMA", "nama"), ("No HP", "no_hp"), ("Kode-Faskes", "kode_faskes")],
)
def test_normalize_header(cell: str, norm: str) -> None:
    assert normalize_header(cell) == norm


def test_header_variants_map_to_fields() -> None:
    cols = map_header(
        [
            "Nama Lengkap",
            "NO_KTP",
            "Tanggal Lahir",
            "Jenis Kelamin (L/P)",
            "Telepon",
            "Kategori",
            "Faskes",
            "Jadwal",
            "Keterangan",
        ],
        line=1,
    )
    assert cols.columns == {
        "name": 0,
        "nik": 1,
        "birth_date": 2,
        "sex": 3,
        "phone": 4,
        "category": 5,
        "faskes_code": 6,
        "scheduled_date": 7,
    }
    assert cols.ignored == ("keterangan",) and cols.source == "excel"
    assert map_header(["name", "nik", "birth_date", "sex", "jenis_sdmk"], 1).source == "sisdmk"


def test_header_is_searched_below_a_title() -> None:
    rows = [(1, ["DAFTAR SASARAN VAKSINASI"]), (2, []), (3, ["NIK", "Nama", "Tgl Lahir", "JK"])]
    assert find_header(rows).line == 3
    with pytest.raises(InvalidInput) as err:
        find_header([(1, ["NIK", "Nama"])])
    assert err.value.reason == "import_header" and err.value.params["missing"] == ["birth_date", "sex"]


@pytest.mark.parametrize(
    ("raw", "sex"),
    [
        ("L", "L"),
        ("p", "P"),
        ("Laki-laki", "L"),
        ("LAKI LAKI", "L"),
        ("Perempuan", "P"),
        ("M", "L"),
        ("F", "P"),
        ("Pria", "L"),
        ("Wanita", "P"),
        ("1", "L"),
        ("2", "P"),
        ("X", None),
        ("", None),
    ],
)
def test_parse_sex(raw: str, sex: str | None) -> None:
    assert parse_sex(raw) == sex


@pytest.mark.parametrize(
    ("raw", "category"),
    [
        ("", "nakes"),
        ("Nakes", "nakes"),
        ("Tenaga Kesehatan", "nakes"),
        ("Lanjut Usia", "lansia"),
        ("petugas publik", "petugas_publik"),
        ("umum", "umum"),
        ("komorbid", "komorbid"),
        ("astronot", None),
    ],
)
def test_parse_category(raw: str, category: str | None) -> None:
    assert parse_category(raw) == category


# --- tickets in bulk -----------------------------------------------------------------------


def test_bulk_tickets_are_valid_and_unbiased() -> None:
    tickets = generate_tickets(20_000)
    assert len(tickets) == 20_000 and generate_tickets(0) == []
    assert all(normalize_ticket(t) == t for t in tickets[:2000])
    assert len(set(tickets)) == len(tickets)
    counts = Counter("".join(t[:9] for t in tickets))
    assert set(counts) == set(TICKET_ALPHABET)
    expected = 20_000 * 9 / len(TICKET_ALPHABET)
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < 80  # 30 degrees of freedom: p < 1e-5 that a fair draw exceeds this


# --- report cells --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+62", "'+62"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("ok", "ok"),
        (None, ""),
        (12, "12"),
    ],
)
def test_neutralize_cell(value: object, cell: str) -> None:
    assert neutralize_cell(value) == cell


def test_bulk_check_symbols_are_ticket_check_symbol() -> None:
    from core.domain.identifiers import ticket_check_symbol

    tickets = generate_tickets(30_000)
    assert all(t[9] == ticket_check_symbol(t[:9]) for t in tickets)


# --- the validator's fast path gives what the canonical path gives -------------------------

_FASKES = {"3273P001": FaskesInfo("3273", True), "3204K001": FaskesInfo("3204", False)}
_ROW_HEADER = ["Nama", "NIK", "Tgl Lahir", "JK", "No HP", "Kategori", "Kode Faskes", "Tgl Jadwal"]

_cell_values = {
    "name": st.sampled_from(
        ["Siti Rahayu", "  Budi  Santoso ", "", "12345", "Ölaf", "A" * 121, "\u00e9x", "x\x00y", 7.0]
    ),
    "nik": st.sampled_from(
        [
            "3273015705900001",
            " 3273015705900001 ",
            "3273011705900001",
            "3273015705900000",
            "9973015705900001",
            "3273019913900001",
            "3273.0157.0590.0001",
            "327301570590001",
            "３２７３015705900001",
            3273015705900001.0,
            3273015705900001,
            "",
        ]
    ),
    "birth": st.sampled_from(
        ["17-05-1990", "1990-05-17", " 17/05/1990", "31-02-1990", "", "01-01-2030", date(1990, 5, 17), 32980.0, "x"]
    ),
    "sex": st.sampled_from(["P", "L", " perempuan", "Laki-laki", "X", "", "2", 1.0]),
    "phone": st.sampled_from(
        [
            "081234567890",
            "0812-3456-7890",
            "+62 812 3456 7890",
            "0812",
            "022-1234567",
            "-",
            "",
            "０８12345678",
            81234567890.0,
        ]
    ),
    "category": st.sampled_from(["nakes", " Lanjut Usia", "", "astronot", None]),
    "faskes": st.sampled_from(["3273P001", " 3273p001", "", "9999X999", "3204K001", None]),
    "sched": st.sampled_from(["27/11/2026", "", "besok", None, date(2026, 12, 1), "2026-11-27"]),
}


@settings(max_examples=3000, deadline=None)
@given(st.fixed_dictionaries(_cell_values), st.booleans(), st.integers(min_value=0, max_value=8))
def test_fast_path_agrees_with_the_canonical_path(cells: dict, limited: bool, width: int) -> None:
    from core.domain.imports import RowValidator

    columns = map_header(_ROW_HEADER, 1)
    row = list(cells.values())[: max(width, 4)] if width else list(cells.values())

    def validator() -> RowValidator:
        allowed = (lambda kabkota: kabkota.startswith("32")) if limited else None
        return RowValidator(columns, faskes=_FASKES, today=date(2026, 11, 26), allowed_kabkota=allowed)

    fast_v, slow_v = validator(), validator()
    for _ in range(2):  # the second time from the memos
        fast = fast_v.validate(row, 5)
        slow = slow_v._validate(row, 5)
        assert fast == slow
        assert fast_v.warnings == slow_v.warnings
