"""The deterministic synthetic demo data set: regions, faskes, targets, reference sources, accounts.

``seed_demo`` writes, in one transaction and with bulk ``INSERT`` statements (chunks of
:data:`CHUNK_ROWS` rows), into a migrated, empty PL database:

* 3 provinces, one per time zone (32 Jawa Barat WIB, 73 Sulawesi Selatan WITA, 94 Papua WIT),
  2 kabupaten/kota each, 3 vaccinating faskes per kabupaten/kota (a puskesmas, a clinic and a
  hospital; codes ``<kabkota><P|K|R><nnn>`` like PCare's). ``3273P001`` Puskesmas Garuda (Kota
  Bandung) is the demo faskes.
* ``targets`` synthetic people: NIKs consistent with birth date, sex and the region of their
  assigned faskes; Indonesian names, some with titles; ages 19-75 on ``today``; E.164 phones
  (about 90 %); category ``nakes`` (``lansia`` from 60, a few ``petugas_publik``); scheduled from
  ``today - 2`` to ``today + 5``; at least :data:`DEMO_TODAY_TARGETS` at the demo faskes today.
* The reference sources' stand-ins (``ref_jkn``, ``ref_dukcapil``, see
  :mod:`core.references.tables`), mostly agreeing with PL, with deliberate discrepancies
  (:data:`DISCREPANCY_KINDS`): misspelt names and wrong birth dates in PL, people missing from one
  source, and people in the sources who are missing from PL (for the verifier to add).
* The demo accounts (:data:`DEMO_ACCOUNTS`), all active.

No visits and no audit events. Everything comes from ``random.Random(seed)``: the same arguments
(``targets``, ``today``, ``seed``, and ``now`` for the timestamps) give byte-identical rows,
tickets included.

A wrong birth date in PL is a data-entry error of the target list: the NIK (issued by Dukcapil)
still encodes the true date, so :func:`core.domain.identifiers.nik_mismatches` flags exactly the
``wrong_birth_date`` cases (``["birth_date"]``) and no other target.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from typing import Any, Final

from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.db import models
from core.domain.accounts import AccountKind, AccountState, Role, format_roles
from core.domain.identifiers import TICKET_ALPHABET, Sex, ticket_check_symbol
from core.domain.timeutil import WIB, WIT, WITA, age_on, local_date
from core.references.tables import create_reference_tables, ref_dukcapil, ref_jkn

__all__ = [
    "CHUNK_ROWS",
    "DEMO_ACCOUNTS",
    "DEMO_FASKES_CODE",
    "DEMO_KABKOTA_CODE",
    "DEMO_TODAY_TARGETS",
    "DISCREPANCY_KINDS",
    "MISSING_DUKCAPIL",
    "MISSING_JKN",
    "MISSPELT_NAME",
    "NOT_IN_PL",
    "WRONG_BIRTH_DATE",
    "DemoAccount",
    "SeedError",
    "SeedSummary",
    "is_empty",
    "seed_demo",
]

CHUNK_ROWS: Final = 5_000
DEMO_FASKES_CODE: Final = "3273P001"
DEMO_KABKOTA_CODE: Final = "3273"
#: Targets placed at the demo faskes for ``today`` before the rest are spread over all faskes
#: and days (which adds more there too).
DEMO_TODAY_TARGETS: Final = 60
SOURCE: Final = "demo"

# --- discrepancies between PL and the reference sources ---------------------------------------

MISSPELT_NAME: Final = "misspelt_name"  # PL misspells the name; both sources hold it right
WRONG_BIRTH_DATE: Final = "wrong_birth_date"  # PL's birth date is wrong; sources and NIK agree
MISSING_JKN: Final = "missing_jkn"  # in PL and Dukcapil, not in the JKN master file
MISSING_DUKCAPIL: Final = "missing_dukcapil"  # in PL and JKN, not in Dukcapil
NOT_IN_PL: Final = "not_in_pl"  # in both sources, missing from PL: a verifier adds them
DISCREPANCY_KINDS: Final = (MISSPELT_NAME, WRONG_BIRTH_DATE, MISSING_JKN, MISSING_DUKCAPIL, NOT_IN_PL)

#: Share of ``targets`` per kind (disjoint sets of targets; NOT_IN_PL people are extra).
DISCREPANCY_RATES: Final[dict[str, float]] = {
    MISSPELT_NAME: 0.03,
    WRONG_BIRTH_DATE: 0.01,
    MISSING_JKN: 0.02,
    MISSING_DUKCAPIL: 0.02,
    NOT_IN_PL: 0.01,
}
#: Of each PL-side kind, this many are taken from the demo faskes' targets of today, so the
#: sandbox has every case at hand.
DEMO_CASES_PER_KIND: Final = 2
#: NOT_IN_PL people registered in the demo kabkota (the rest anywhere).
NOT_IN_PL_DEMO_SHARE: Final = 0.8
EXAMPLES_PER_KIND: Final = 5

PHONE_SHARE: Final = 0.9
FEMALE_SHARE: Final = 0.62
PETUGAS_PUBLIK_SHARE: Final = 0.04
LANSIA_AGE: Final = 60
MIN_AGE, MAX_AGE = 19, 75


_PL: Final = models.Base.metadata.tables


class SeedError(RuntimeError):
    """The database is not empty (or not migrated): the demo data set goes into an empty PL."""


# --------------------------------------------------------------------------------------------
# Regions and facilities
# --------------------------------------------------------------------------------------------

PROVINCES: Final = (
    ("32", "Jawa Barat", WIB),
    ("73", "Sulawesi Selatan", WITA),
    ("94", "Papua", WIT),
)

KABKOTA: Final = (  # code, name (the province is the first two digits)
    ("3273", "Kota Bandung"),
    ("3204", "Kab. Bandung"),
    ("7371", "Kota Makassar"),
    ("7302", "Kab. Bulukumba"),
    ("9471", "Kota Jayapura"),
    ("9403", "Kab. Jayapura"),
)

FASKES_KINDS: Final = {"P": "puskesmas", "K": "klinik", "R": "rumah_sakit"}
#: Relative share of targets per kind of faskes.
FASKES_KIND_WEIGHTS: Final = {"puskesmas": 3, "klinik": 1, "rumah_sakit": 2}

FASKES: Final = (  # code, name; the first of 3273 is the demo faskes
    ("3273P001", "Puskesmas Garuda"),
    ("3273K001", "Klinik Pratama Dago"),
    ("3273R001", "RSUD Kota Bandung"),
    ("3204P001", "Puskesmas Soreang"),
    ("3204K001", "Klinik Pratama Baleendah"),
    ("3204R001", "RSUD Al-Ihsan"),
    ("7371P001", "Puskesmas Kassi-Kassi"),
    ("7371K001", "Klinik Pratama Panakkukang"),
    ("7371R001", "RSUD Daya"),
    ("7302P001", "Puskesmas Caile"),
    ("7302K001", "Klinik Pratama Bulukumba"),
    ("7302R001", "RSUD H. Andi Sulthan Daeng Radja"),
    ("9471P001", "Puskesmas Hamadi"),
    ("9471K001", "Klinik Pratama Abepura"),
    ("9471R001", "RSUD Abepura"),
    ("9403P001", "Puskesmas Sentani"),
    ("9403K001", "Klinik Pratama Doyo"),
    ("9403R001", "RSUD Yowari"),
)


# --------------------------------------------------------------------------------------------
# Demo accounts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoAccount:
    """A demo persona: one active account with a fixed Telegram id."""

    telegram_id: int
    name: str
    kind: AccountKind
    roles: frozenset[Role]
    faskes_code: str | None
    kabkota_code: str | None
    label_key: str  # locale key of the persona's description in the sandbox

    @property
    def phone(self) -> str:
        return f"+62812{self.telegram_id:07d}"


_DESKS = frozenset({Role.MEJA1, Role.MEJA2, Role.MEJA4})

DEMO_ACCOUNTS: Final[tuple[DemoAccount, ...]] = (
    DemoAccount(
        910001,
        "Rina (meja 1)",
        AccountKind.FASKES,
        frozenset({Role.MEJA1}),
        DEMO_FASKES_CODE,
        DEMO_KABKOTA_CODE,
        "persona.meja1",
    ),
    DemoAccount(
        910002,
        "Budi (meja 2)",
        AccountKind.FASKES,
        frozenset({Role.MEJA2}),
        DEMO_FASKES_CODE,
        DEMO_KABKOTA_CODE,
        "persona.meja2",
    ),
    DemoAccount(
        910004,
        "Sari (meja 4)",
        AccountKind.FASKES,
        frozenset({Role.MEJA4}),
        DEMO_FASKES_CODE,
        DEMO_KABKOTA_CODE,
        "persona.meja4",
    ),
    DemoAccount(
        910005,
        "Dewi (verifikator)",
        AccountKind.FASKES,
        frozenset({Role.VERIFIKASI}),
        DEMO_FASKES_CODE,
        DEMO_KABKOTA_CODE,
        "persona.verifikasi",
    ),
    DemoAccount(
        910006,
        "Andi (semua meja)",
        AccountKind.FASKES,
        _DESKS,
        DEMO_FASKES_CODE,
        DEMO_KABKOTA_CODE,
        "persona.all_desks",
    ),
    DemoAccount(
        910010, "Dinkes Kota Bandung", AccountKind.DINKES, frozenset(), None, DEMO_KABKOTA_CODE, "persona.dinkes"
    ),
    DemoAccount(910011, "Dinkes Kota Makassar", AccountKind.DINKES, frozenset(), None, "7371", "persona.dinkes_other"),
    DemoAccount(
        910020,
        "Fajar (meja 1, Makassar)",
        AccountKind.FASKES,
        frozenset({Role.MEJA1}),
        "7371P001",
        "7371",
        "persona.meja1_other",
    ),
    DemoAccount(910099, "Admin Pusat", AccountKind.CENTRAL, frozenset(), None, None, "persona.central"),
)


# --------------------------------------------------------------------------------------------
# The summary
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeedSummary:
    """What was written: counts, and the NIKs of the deliberate discrepancies."""

    today: date
    demo_faskes_code: str
    provinces: int
    kabkota: int
    faskes: int
    accounts: int
    targets: int
    demo_today: int  # targets at the demo faskes scheduled for ``today``
    ref_jkn: int
    ref_dukcapil: int
    misspelt_names: int
    wrong_birth_dates: int
    missing_jkn: int
    missing_dukcapil: int
    not_in_pl: int
    #: Up to 5 NIKs per kind of :data:`DISCREPANCY_KINDS`, those at the demo faskes today first.
    examples: dict[str, list[str]]
    #: Every NIK per kind, in insertion order.
    cases: dict[str, tuple[str, ...]] = field(repr=False)

    def __str__(self) -> str:
        return (
            f"{self.targets} targets at {self.faskes} faskes ({self.demo_today} at "
            f"{self.demo_faskes_code} on {self.today.isoformat()}), {self.accounts} accounts; "
            f"references: {self.ref_jkn} JKN, {self.ref_dukcapil} Dukcapil; discrepancies: "
            f"{self.misspelt_names} misspelt names, {self.wrong_birth_dates} wrong birth dates, "
            f"{self.missing_jkn} missing from JKN, {self.missing_dukcapil} missing from Dukcapil, "
            f"{self.not_in_pl} missing from PL"
        )


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------

# (male given names, female given names, male/neutral family names, female family names)
_NATIONAL = (
    "Muhammad Ahmad Budi Agus Eko Hendra Rizky Fajar Dimas Bayu Adi Joko Bambang Wahyu Irfan "
    "Teguh Hasan Ilham Reza Taufik Yoga Gilang Aditya Andika Rahmat Firman Arif Yusuf Fikri Dani",
    "Siti Sri Dewi Rina Ani Nur Fitri Putri Indah Ratna Wulan Ayu Yuni Ika Nurul Dian Novi Maria "
    "Kartika Mega Eka Lina Aisyah Fatimah Nadia Anisa Rahmi Desi Yulia Intan",
    "Santoso Wijaya Saputra Pratama Hidayat Kurniawan Setiawan Gunawan Nugroho Susanto Wibowo "
    "Hakim Syahputra Siregar Nasution Harahap Lubis Simanjuntak Firmansyah Ramadhan Prasetyo "
    "Purnomo Hartono Sulistyo Hutapea Sitompul",
    "Lestari Rahmawati Saputri Permatasari Wulandari Anggraini Puspitasari Handayani Susanti "
    "Kusumawati Safitri Maharani Oktaviani Purwanti Utami Rahayu Nurhayati Siregar Nasution "
    "Harahap Lubis",
)
_REGIONAL = {
    "32": (
        "Asep Ujang Dadang Cecep Yayan Deden Ridwan Iwan Dedi Rudi Hendra Agus",
        "Euis Neng Iis Siti Yanti Rina Dewi Nenden Lilis Wulan Tati Ai",
        "Permana Sutisna Hidayat Kusnadi Suryana Mulyana Nugraha Setiawan Gunawan Sumarna Supriatna Ruhimat",
        "Rahayu Kurniasih Nurjanah Rosmiati Sumiati Komalasari Herawati Nurlaela Lestari",
    ),
    "73": (
        "Andi Muhammad Syamsul Baharuddin Nurdin Hasanuddin Amiruddin Irwan Arman Rusli Ismail Syahrir",
        "Sitti Nurhayati Hasnah Rosmini Hasmawati Nurhaedah Fatmawati Rahmawati Hartati Andi Nurul Sulfiani",
        "Rahman Tahir Latief Hamzah Syam Arief Mustari Rauf Djalil Ramli Saleh Karim",
        "Rahman Tahir Latief Hamzah Syam Arief Mustari Rauf Djalil Ramli Saleh Karim",
    ),
    "94": (
        "Yohanes Markus Yakob Petrus Frans Agustinus Yulius Daniel Paulus Lukas Matius Obed",
        "Maria Yosina Ruth Elisabeth Martha Yuliana Sara Naomi Ester Debora Agustina Helena",
        "Wenda Kogoya Wanimbo Rumbiak Mandacan Kambu Yoku Ohee Sawaki Rumbewas Wonda Tabuni "
        "Mebri Awoitauw Karubaba Korwa Sanggenafa",
        "Wenda Kogoya Wanimbo Rumbiak Mandacan Kambu Yoku Ohee Sawaki Rumbewas Wonda Tabuni "
        "Mebri Awoitauw Karubaba Korwa Sanggenafa",
    ),
}
REGIONAL_NAME_SHARE: Final = 0.6


def _name_lists(raw: tuple[str, str, str, str]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(part.split()) for part in raw)


_NATIONAL_LISTS = _name_lists(_NATIONAL)
_REGIONAL_LISTS = {code: _name_lists(raw) for code, raw in _REGIONAL.items()}

# (prefix title, suffix title, weight) for health workers; "" for none.
_TITLES_F: Final[tuple[tuple[str, str, int], ...]] = (
    ("", "", 45),
    ("dr.", "", 8),
    ("drg.", "", 2),
    ("Ns.", "S.Kep.", 12),
    ("Bd.", "A.Md.Keb.", 10),
    ("", "A.Md.Kep.", 10),
    ("apt.", "S.Farm.", 3),
    ("", "S.K.M.", 5),
    ("", "A.Md.Kes.", 5),
)
_TITLES_M: Final[tuple[tuple[str, str, int], ...]] = (
    ("", "", 50),
    ("dr.", "", 10),
    ("drg.", "", 2),
    ("Ns.", "S.Kep.", 14),
    ("", "A.Md.Kep.", 12),
    ("apt.", "S.Farm.", 3),
    ("", "S.K.M.", 5),
    ("", "A.Md.Kes.", 4),
)
_TITLE_CUM_F = tuple(accumulate(w for _, _, w in _TITLES_F))
_TITLE_CUM_M = tuple(accumulate(w for _, _, w in _TITLES_M))
HAJI_MIN_AGE: Final = 45
HAJI_SHARE: Final = 0.15
_NO_HAJI_PROVINCES: Final = frozenset({"94"})


@dataclass(frozen=True, slots=True)
class _Name:
    prefix: str  # titles before the name ("Hj. dr.")
    words: tuple[str, ...]  # the name itself
    suffix: str  # titles after a comma ("S.Kep.")

    @property
    def bare(self) -> str:
        return " ".join(self.words)

    @property
    def display(self) -> str:
        text = f"{self.prefix} {self.bare}" if self.prefix else self.bare
        return f"{text}, {self.suffix}" if self.suffix else text

    def with_words(self, words: tuple[str, ...]) -> _Name:
        return _Name(self.prefix, words, self.suffix)


def _make_name(rng: random.Random, province: str, sex: Sex, age: int, titled: bool) -> _Name:
    lists = _REGIONAL_LISTS[province] if rng.random() < REGIONAL_NAME_SHARE else _NATIONAL_LISTS
    female = sex is Sex.P
    given = lists[1] if female else lists[0]
    family = lists[3] if female else lists[2]
    shape = rng.random()
    if shape < 0.06:  # one word (common in Java): a long given or family-style name
        words: tuple[str, ...] = (rng.choice(family),)
    elif shape < 0.76:
        words = (rng.choice(given), rng.choice(family))
    else:
        first, second = rng.choice(given), rng.choice(given)
        words = (first, second, rng.choice(family)) if first != second else (first, rng.choice(family))
    prefix, suffix = "", ""
    if titled:
        titles, cum = (_TITLES_F, _TITLE_CUM_F) if female else (_TITLES_M, _TITLE_CUM_M)
        prefix, suffix, _ = rng.choices(titles, cum_weights=cum)[0]
    if age >= HAJI_MIN_AGE and province not in _NO_HAJI_PROVINCES and rng.random() < HAJI_SHARE:
        prefix = ("Hj. " if female else "H. ") + prefix
    return _Name(prefix.strip(), words, suffix)


_MUHAMMAD_MISSPELLINGS: Final = ("Muhamad", "Mohammad", "Muhamat", "Mochammad")
#: Variant and old (pre-1972) spellings of one sound, as they creep into target lists.
_VARIANT_SPELLINGS: Final = (
    (re.compile(r"(?<=[aeiou])h(?=[bcdfgjklmnpqrstvwxz])"), "ch"),  # Rahmawati -> Rachmawati
    (re.compile(r"(?i)u"), "oe"),  # Susanto -> Soesanto, Yusuf -> Yoesoef
    (re.compile(r"(?i)(?<!d)j"), "dj"),  # Wijaya -> Widjaya, Joko -> Djoko
    (re.compile(r"(?<=[^sh])i$"), "y"),  # Dewi -> Dewy
    (re.compile(r"y$"), "i"),  # Rizky -> Rizki
    (re.compile(r"dh"), "d"),  # Ramadhan -> Ramadan
)
_DOUBLED_LETTER: Final = re.compile(r"(.)\1")
_MIN_DOUBLE_LENGTH: Final = 4
#: A letter dropped from a long word ("Kurniawan" -> "Kurniawn") is a typo the matcher tolerates
#: (core.domain.names); in a short word it is how different names differ, so not done there.
_MIN_DROP_LENGTH: Final = 10


_VOWELS: Final = frozenset("aeiou")
#: Letters of the digraphs of the old and variant spellings (dj, tj, sj, sy, ch, kh, dh, th, ...):
#: doubling or dropping next to them would be a spelling change, not a typo.
_DIGRAPH_LETTERS: Final = frozenset("hjy")


def _plain_consonant(word: str, start: int) -> int | None:
    """The first position from ``start`` (not the first or last letter) holding a consonant that
    is neither part of a digraph nor between two equal letters, or None."""
    lower = word.lower()
    for at in range(max(start, 1), len(lower) - 1):
        before, letter, after = lower[at - 1], lower[at], lower[at + 1]
        if (
            letter not in _VOWELS
            and not {before, letter, after} & _DIGRAPH_LETTERS
            and letter not in (before, after)
            and before != after  # "Puspitasari" -> "Puspitaari" would read as two errors
        ):
            return at
    return None


def _capitalised(word: str) -> str:
    return word[:1].upper() + word[1:]


def _misspellings(word: str) -> list[tuple[int, str]]:
    """(weight, misspelt word) for the small, realistic errors that fit ``word``."""
    out: list[tuple[int, str]] = []
    if word == "Muhammad":
        out.extend((2, typo) for typo in _MUHAMMAD_MISSPELLINGS)
    for pattern, replacement in _VARIANT_SPELLINGS:
        typo = _capitalised(pattern.sub(replacement, word))
        if typo != word:
            out.append((2, typo))
    if (doubled := _DOUBLED_LETTER.search(word)) is not None:  # Hasanuddin -> Hasanudin
        out.append((3, word[: doubled.start()] + word[doubled.start() + 1 :]))
    if len(word) >= _MIN_DOUBLE_LENGTH and (at := _plain_consonant(word, len(word) // 2)) is not None:
        out.append((1, word[: at + 1] + word[at] + word[at + 1 :]))  # Rina -> Rinna
    if len(word) >= _MIN_DROP_LENGTH and (at := _plain_consonant(word, len(word) * 2 // 3)) is not None:
        out.append((3, word[:at] + word[at + 1 :]))  # Kurniawan -> Kurniawn
    return out


def _misspell(rng: random.Random, words: tuple[str, ...]) -> tuple[str, ...]:
    """One small, realistic error in one word: Muhammad spelt otherwise, an old or variant
    spelling (Rachmawati, Soesanto, Widjaya, Dewy, Rizki), a doubled letter dropped, a letter
    doubled, or (in a long word) a letter dropped. The result differs from ``words``."""
    options = [(weight, i, typo) for i, word in enumerate(words) for weight, typo in _misspellings(word)]
    if not options:  # "Eko Hidayat": the last letter typed twice
        return (*words[:-1], words[-1] + words[-1][-1])
    _, i, typo = rng.choices(options, weights=[weight for weight, _, _ in options])[0]
    return (*words[:i], typo, *words[i + 1 :])


# --------------------------------------------------------------------------------------------
# People
# --------------------------------------------------------------------------------------------

_AGES: Final = tuple(range(MIN_AGE, MAX_AGE + 1))
# Health workers: few under 22, most 22-59, about 12 % aged 60-75.
_AGE_CUM: Final = tuple(accumulate(1 if a < 22 else 3 if a < LANSIA_AGE else 1 for a in _AGES))
_WORKING_AGES: Final = tuple(range(22, LANSIA_AGE))

_MOBILE_PREFIXES: Final = (  # Telkomsel, Indosat, XL, Smartfren, Tri: realism only, never validated
    "811",
    "812",
    "813",
    "821",
    "822",
    "823",
    "851",
    "852",
    "853",
    "855",
    "856",
    "857",
    "858",
    "859",
    "877",
    "878",
    "881",
    "882",
    "883",
    "895",
    "896",
    "897",
    "898",
    "899",
)

_KECAMATAN_MAX: Final = 20
_SERIAL_MAX: Final = 9999
_FEMALE_DAY_OFFSET: Final = 40
_TICKET_BODY: Final = 9
_CARD_PREFIX: Final = "000"
_CARD_DIGITS: Final = 10


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _birth_date(rng: random.Random, age: int, today: date) -> date:
    """A birth date giving exactly ``age`` completed years on ``today``."""
    latest = _add_years(today, -age)
    earliest = _add_years(today, -(age + 1)) + timedelta(days=1)
    return earliest + timedelta(days=rng.randrange((latest - earliest).days + 1))


def _wrong_birth_date(rng: random.Random, true: date, today: date) -> date:
    """A plausible data-entry error: day and month swapped, year off by one, or day off by 1-3.

    The wrong date keeps the person 19-75 and on the same side of 60 (so the category holds).
    """
    options: list[date] = []
    if true.day <= 12 and true.day != true.month:
        options.append(date(true.year, true.day, true.month))
    options.extend(_add_years(true, d) for d in (-1, 1))
    options.extend(true + timedelta(days=d) for d in (-3, -2, -1, 1, 2, 3))
    rng.shuffle(options)
    lansia = age_on(true, today) >= LANSIA_AGE
    for wrong in options:
        age = age_on(wrong, today)
        if wrong != true and MIN_AGE <= age <= MAX_AGE and (age >= LANSIA_AGE) == lansia:
            return wrong
    # Unreachable: one day earlier or later always keeps the age.
    return true - timedelta(days=1)  # pragma: no cover


@dataclass(frozen=True, slots=True)
class _Person:
    nik: str
    name: _Name
    birth_date: date
    sex: Sex
    kabkota_code: str  # of the NIK (registration)


class _Generator:
    """Draws people from one ``random.Random``; keeps NIKs, tickets and card numbers unique."""

    def __init__(self, rng: random.Random, today: date) -> None:
        self.rng = rng
        self.today = today
        self.niks: set[str] = set()
        self.tickets: set[str] = set()
        self.cards: set[str] = set()

    def person(self, kabkota_code: str, age: int, sex: Sex, titled: bool) -> _Person:
        rng = self.rng
        birth = _birth_date(rng, age, self.today)
        name = _make_name(rng, kabkota_code[:2], sex, age, titled)
        return _Person(self.nik(kabkota_code, birth, sex), name, birth, sex, kabkota_code)

    def nik(self, kabkota_code: str, birth: date, sex: Sex) -> str:
        rng = self.rng
        day = birth.day + (_FEMALE_DAY_OFFSET if sex is Sex.P else 0)
        head = f"{kabkota_code}{rng.randint(1, _KECAMATAN_MAX):02d}{day:02d}{birth.month:02d}{birth.year % 100:02d}"
        while True:
            nik = f"{head}{rng.randint(1, _SERIAL_MAX):04d}"
            if nik not in self.niks:
                self.niks.add(nik)
                return nik

    def ticket(self) -> str:
        while True:
            body = "".join(self.rng.choices(TICKET_ALPHABET, k=_TICKET_BODY))
            ticket = body + ticket_check_symbol(body)
            if ticket not in self.tickets:
                self.tickets.add(ticket)
                return ticket

    def card_number(self) -> str:
        while True:
            card = f"{_CARD_PREFIX}{self.rng.randrange(10**_CARD_DIGITS):0{_CARD_DIGITS}d}"
            if card not in self.cards:
                self.cards.add(card)
                return card

    def phone(self) -> str | None:
        rng = self.rng
        if rng.random() >= PHONE_SHARE:
            return None
        rest = rng.choice((7, 8))
        return f"+62{rng.choice(_MOBILE_PREFIXES)}{rng.randrange(10**rest):0{rest}d}"

    def age(self) -> int:
        return self.rng.choices(_AGES, cum_weights=_AGE_CUM)[0]

    def sex(self) -> Sex:
        return Sex.P if self.rng.random() < FEMALE_SHARE else Sex.L


def _pick_cases(rng: random.Random, targets: int, demo_n: int) -> dict[int, str]:
    """Which target (by index) carries which PL-side discrepancy: disjoint sets."""
    counts = {
        kind: max(1, round(targets * DISCREPANCY_RATES[kind]))
        for kind in (MISSPELT_NAME, WRONG_BIRTH_DATE, MISSING_JKN, MISSING_DUKCAPIL)
    }
    demo_pool = rng.sample(range(demo_n), min(demo_n, DEMO_CASES_PER_KIND * len(counts)))
    rest_total = sum(counts.values())
    rest_pool = rng.sample(range(demo_n, targets), min(targets - demo_n, rest_total))
    cases: dict[int, str] = {}
    for kind, count in counts.items():
        taken = 0
        while taken < min(DEMO_CASES_PER_KIND, count) and demo_pool:
            cases[demo_pool.pop()] = kind
            taken += 1
        while taken < count and rest_pool:
            cases[rest_pool.pop()] = kind
            taken += 1
    return cases


def _chunks(rows: Sequence[dict[str, Any]]) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), CHUNK_ROWS):
        yield rows[start : start + CHUNK_ROWS]


# --------------------------------------------------------------------------------------------
# The API
# --------------------------------------------------------------------------------------------


async def is_empty(engine: AsyncEngine) -> bool:
    """Whether PL has no faskes yet (a fresh, migrated database)."""
    async with engine.connect() as conn:
        return await _is_empty(conn)


async def _is_empty(conn: AsyncConnection) -> bool:
    return (await conn.scalar(select(models.Faskes.code).limit(1))) is None


async def seed_demo(
    engine: AsyncEngine,
    *,
    targets: int = 3000,
    today: date | None = None,
    seed: int = 2021,
    now: datetime | None = None,
) -> SeedSummary:
    """Write the demo data set into an empty, migrated PL database, in one transaction.

    ``today`` (default: the date in WIB at ``now``) anchors ages and schedules; ``now`` (default:
    the current UTC time) stamps ``created_at``/``updated_at``. Raises :class:`SeedError` when
    the database already holds faskes, targets or reference rows.
    """
    if targets < 1:
        raise ValueError("targets must be at least 1")
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    today = today or local_date(now, WIB)
    rng = random.Random(seed)
    gen = _Generator(rng, today)
    writer = _Writer()

    async with engine.begin() as conn:
        if not await _is_empty(conn) or await conn.scalar(select(func.count()).select_from(models.Target)):
            raise SeedError("PL already holds data: the demo set is seeded into an empty database")
        await create_reference_tables(conn)
        for table in (ref_jkn, ref_dukcapil):
            if await conn.scalar(select(func.count()).select_from(table)):
                raise SeedError(f"{table.name} already holds data")

        await writer.insert(
            conn, _PL["provinces"], [{"code": code, "name": name, "timezone": tz} for code, name, tz in PROVINCES]
        )
        zones = {code: tz for code, _, tz in PROVINCES}
        await writer.insert(
            conn,
            _PL["kabkota"],
            [
                {"code": code, "province_code": code[:2], "name": name, "timezone": zones[code[:2]]}
                for code, name in KABKOTA
            ],
        )
        await writer.insert(
            conn,
            _PL["faskes"],
            [
                {
                    "code": code,
                    "name": name,
                    "kabkota_code": code[:4],
                    "kind": FASKES_KINDS[code[4]],
                    "is_vaccinator": True,
                }
                for code, name in FASKES
            ],
        )
        await writer.insert(
            conn,
            _PL["accounts"],
            [
                {
                    "telegram_id": a.telegram_id,
                    "name": a.name,
                    "phone": a.phone,
                    "kind": a.kind.value,
                    "roles": format_roles(a.roles),
                    "faskes_code": a.faskes_code,
                    "kabkota_code": a.kabkota_code,
                    "state": AccountState.ACTIVE.value,
                    "state_reason": None,
                    "state_changed_by": None,
                    "state_changed_at": now,
                    "locale": "id",
                    "version": 1,
                    "created_at": now,
                }
                for a in DEMO_ACCOUNTS
            ],
        )
        summary = await _seed_people(conn, writer, gen, targets=targets, today=today, now=now)
    return summary


class _Writer:
    """Bulk INSERTs in chunks; counts rows per table."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    async def insert(self, conn: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        for chunk in _chunks(rows):
            await conn.execute(insert(table), list(chunk))
        self.counts[table.name] = self.counts.get(table.name, 0) + len(rows)


async def _seed_people(
    conn: AsyncConnection, writer: _Writer, gen: _Generator, *, targets: int, today: date, now: datetime
) -> SeedSummary:
    rng = gen.rng
    demo_n = min(targets, DEMO_TODAY_TARGETS)
    cases_by_index = _pick_cases(rng, targets, demo_n)
    cases: dict[str, list[str]] = {kind: [] for kind in DISCREPANCY_KINDS}

    weights = [FASKES_KIND_WEIGHTS[FASKES_KINDS[code[4]]] for code, _ in FASKES]
    faskes_cum = tuple(accumulate(weights))
    faskes_codes = tuple(code for code, _ in FASKES)
    days = tuple(today + timedelta(days=d) for d in range(-2, 6))
    demo_today = 0

    pl_rows: list[dict[str, Any]] = []
    jkn_rows: list[dict[str, Any]] = []
    dukcapil_rows: list[dict[str, Any]] = []

    async def flush(final: bool = False) -> None:
        for table, rows in ((_PL["targets"], pl_rows), (ref_jkn, jkn_rows), (ref_dukcapil, dukcapil_rows)):
            if rows and (final or len(rows) >= CHUNK_ROWS):
                await writer.insert(conn, table, rows)
                rows.clear()

    for i in range(targets):
        if i < demo_n:
            faskes_code, day = DEMO_FASKES_CODE, today
        else:
            faskes_code = rng.choices(faskes_codes, cum_weights=faskes_cum)[0]
            day = rng.choice(days)
        demo_today += faskes_code == DEMO_FASKES_CODE and day == today
        age, sex = gen.age(), gen.sex()
        if age >= LANSIA_AGE:
            category = "lansia"
        else:
            category = "petugas_publik" if rng.random() < PETUGAS_PUBLIK_SHARE else "nakes"
        person = gen.person(faskes_code[:4], age, sex, titled=category != "petugas_publik")
        kind = cases_by_index.get(i)
        pl_name, pl_birth = person.name, person.birth_date
        if kind == MISSPELT_NAME:
            pl_name = person.name.with_words(_misspell(rng, person.name.words))
        elif kind == WRONG_BIRTH_DATE:
            pl_birth = _wrong_birth_date(rng, person.birth_date, today)
        if kind is not None:
            cases[kind].append(person.nik)
        pl_rows.append(
            {
                "nik": person.nik,
                "ticket": gen.ticket(),
                "name": pl_name.display,
                "birth_date": pl_birth,
                "sex": person.sex.value,
                "phone": gen.phone(),
                "category": category,
                "assigned_faskes_code": faskes_code,
                "scheduled_date": day,
                "source": SOURCE,
                "version": 1,
                "first_desk_at": None,
                "created_at": now,
                "updated_at": now,
            }
        )
        _reference_rows(
            gen,
            person,
            jkn=kind != MISSING_JKN,
            dukcapil=kind != MISSING_DUKCAPIL,
            jkn_rows=jkn_rows,
            dukcapil_rows=dukcapil_rows,
        )
        await flush()

    kabkota_codes = tuple(code for code, _ in KABKOTA)
    for _ in range(max(1, round(targets * DISCREPANCY_RATES[NOT_IN_PL]))):
        kabkota = DEMO_KABKOTA_CODE if rng.random() < NOT_IN_PL_DEMO_SHARE else rng.choice(kabkota_codes)
        person = gen.person(kabkota, rng.choice(_WORKING_AGES), gen.sex(), titled=False)
        cases[NOT_IN_PL].append(person.nik)
        _reference_rows(gen, person, jkn=True, dukcapil=True, jkn_rows=jkn_rows, dukcapil_rows=dukcapil_rows)
        await flush()
    await flush(final=True)

    counts = writer.counts
    return SeedSummary(
        today=today,
        demo_faskes_code=DEMO_FASKES_CODE,
        provinces=counts["provinces"],
        kabkota=counts["kabkota"],
        faskes=counts["faskes"],
        accounts=counts["accounts"],
        targets=counts["targets"],
        demo_today=demo_today,
        ref_jkn=counts.get("ref_jkn", 0),
        ref_dukcapil=counts.get("ref_dukcapil", 0),
        misspelt_names=len(cases[MISSPELT_NAME]),
        wrong_birth_dates=len(cases[WRONG_BIRTH_DATE]),
        missing_jkn=len(cases[MISSING_JKN]),
        missing_dukcapil=len(cases[MISSING_DUKCAPIL]),
        not_in_pl=len(cases[NOT_IN_PL]),
        examples={kind: niks[:EXAMPLES_PER_KIND] for kind, niks in cases.items()},
        cases={kind: tuple(niks) for kind, niks in cases.items()},
    )


def _reference_rows(
    gen: _Generator,
    person: _Person,
    *,
    jkn: bool,
    dukcapil: bool,
    jkn_rows: list[dict[str, Any]],
    dukcapil_rows: list[dict[str, Any]],
) -> None:
    """The sources' records of ``person``: the true name (upper case, no titles) and birth date."""
    name = person.name.bare.upper()
    if jkn:
        jkn_rows.append(
            {
                "nik": person.nik,
                "card_number": gen.card_number(),
                "name": name,
                "birth_date": person.birth_date,
                "sex": person.sex.value,
            }
        )
    if dukcapil:
        dukcapil_rows.append(
            {
                "nik": person.nik,
                "name": name,
                "birth_date": person.birth_date,
                "sex": person.sex.value,
                "kabkota_code": person.kabkota_code,
            }
        )
