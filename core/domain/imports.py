"""Target lists ("generate tiket"): the pure rules of an import.

A list (a SISDMK export, an Excel or CSV list from Dinkes) is one header row and one row per person.
This module maps the header (tolerant of the usual spellings), validates each row with the identifier
rules of :mod:`core.domain.identifiers`, and describes what went wrong with a stable reason code
(``nik.length``, ``phone.not_mobile``, ``faskes.unknown`` ...). It also draws tickets in bulk and
neutralises report cells against formula injection. No I/O: :mod:`core.services.imports` reads the
files and writes PL.

Speed matters (1.47 million rows at 100 k rows/s): the common, well-formed values go through fast
paths that give exactly what :func:`normalize_nik`, :func:`parse_date` and :func:`normalize_phone`
give (property-tested); anything unusual goes to those functions themselves, which also produce the
precise reason.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from operator import mul
from typing import Final, NamedTuple

from core.domain.errors import InvalidInput
from core.domain.identifiers import (
    NIK_PROVINCE_CODES,
    TICKET_ALPHABET,
    mask_nik,
    normalize_nik,
    normalize_phone,
    parse_date,
)
from core.domain.screening import CATEGORIES

__all__ = [
    "FIELDS",
    "HEADER_ALIASES",
    "REQUIRED_FIELDS",
    "ColumnMap",
    "FaskesInfo",
    "ImportCounts",
    "RowIssue",
    "RowValidator",
    "ValidRow",
    "find_header",
    "generate_tickets",
    "map_header",
    "neutralize_cell",
    "normalize_header",
    "parse_category",
    "parse_sex",
]

# --------------------------------------------------------------------------------------------
# Columns
# --------------------------------------------------------------------------------------------

FIELDS: Final = ("name", "nik", "birth_date", "sex", "phone", "category", "faskes_code", "scheduled_date")
REQUIRED_FIELDS: Final = frozenset({"name", "nik", "birth_date", "sex"})

#: Accepted header names per field, after :func:`normalize_header` (lower case, runs of anything
#: but letters and digits as one ``_``). A parenthesised note ("Jenis Kelamin (L/P)") is ignored.
HEADER_ALIASES: Final[Mapping[str, frozenset[str]]] = {
    "name": frozenset({"nama", "name", "nama_lengkap", "nama_sasaran", "nama_nakes", "nama_pegawai", "full_name"}),
    "nik": frozenset({"nik", "no_ktp", "nomor_ktp", "no_nik", "nomor_nik", "nik_ktp", "ktp"}),
    "birth_date": frozenset(
        {"tgl_lahir", "tanggal_lahir", "birth_date", "tgl_lhr", "date_of_birth", "dob", "birthdate"}
    ),
    "sex": frozenset({"jk", "jenis_kelamin", "sex", "gender", "kelamin", "l_p"}),
    "phone": frozenset(
        {
            "no_hp",
            "hp",
            "telepon",
            "phone",
            "no_telp",
            "no_telepon",
            "nomor_hp",
            "nomor_telepon",
            "handphone",
            "no_handphone",
            "telp",
            "phone_number",
            "no_wa",
            "nomor_wa",
        }
    ),
    "category": frozenset({"kategori", "category", "kategori_sasaran", "jenis_sasaran", "kelompok"}),
    "faskes_code": frozenset(
        {
            "kode_faskes",
            "faskes",
            "faskes_code",
            "kode_faskes_vaksinator",
            "faskes_vaksinator",
            "kode_pkm",
            "kode_puskesmas",
        }
    ),
    "scheduled_date": frozenset(
        {
            "tgl_jadwal",
            "jadwal",
            "scheduled_date",
            "tanggal_jadwal",
            "jadwal_vaksinasi",
            "tgl_vaksinasi",
            "tanggal_vaksinasi",
        }
    ),
}
_ALIAS_TO_FIELD: Final = {alias: name for name, aliases in HEADER_ALIASES.items() for alias in aliases}
#: Columns only SISDMK exports carry: a list with one of these is recorded with source ``sisdmk``.
SISDMK_MARKERS: Final = frozenset(
    {"jenis_sdmk", "rumpun_sdmk", "sub_rumpun_sdmk", "jenis_nakes", "nip", "no_str", "nomor_str", "id_sdmk"}
)
#: Rows searched for the header (lists often start with a title).
HEADER_SEARCH_ROWS: Final = 20

_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_PARENTHESES = re.compile(r"\([^)]*\)")


def normalize_header(cell: object) -> str:
    """``"Tgl. Lahir "`` -> ``tgl_lahir``; a byte-order mark and case are ignored."""
    text = str(cell if cell is not None else "").replace("\ufeff", "").strip().lower()
    return _NON_ALNUM.sub("_", text).strip("_")


def _header_field(cell: object) -> tuple[str | None, str]:
    """The field a header cell names (or None), and the normalised header."""
    norm = normalize_header(cell)
    found = _ALIAS_TO_FIELD.get(norm)
    if found is None and "(" in str(cell):
        found = _ALIAS_TO_FIELD.get(normalize_header(_PARENTHESES.sub(" ", str(cell))))
    return found, norm


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Where each field is in a row (0-based), and what the header says about the list."""

    line: int  # the header's line (1-based)
    columns: Mapping[str, int]
    source: str  # sisdmk | excel
    ignored: tuple[str, ...] = ()  # header cells that name no field

    def index(self, name: str) -> int | None:
        return self.columns.get(name)


def map_header(cells: Sequence[object], line: int) -> ColumnMap:
    """Map a header row; raises ``InvalidInput("import_header", missing=[...])`` or
    ``InvalidInput("import_header_duplicate", field=...)``."""
    columns: dict[str, int] = {}
    ignored: list[str] = []
    sisdmk = False
    for index, cell in enumerate(cells):
        name, norm = _header_field(cell)
        if name is None:
            if norm:
                ignored.append(norm)
                sisdmk = sisdmk or norm in SISDMK_MARKERS
            continue
        if name in columns:
            raise InvalidInput("import_header_duplicate", field=name, line=line)
        columns[name] = index
    missing = sorted(REQUIRED_FIELDS - columns.keys())
    if missing:
        raise InvalidInput("import_header", missing=missing, line=line)
    return ColumnMap(line=line, columns=columns, source="sisdmk" if sisdmk else "excel", ignored=tuple(ignored))


def find_header(rows: Sequence[tuple[int, Sequence[object]]]) -> ColumnMap:
    """The first of ``rows`` (line, cells) that is a header: one naming at least the NIK and the name.

    Raises ``InvalidInput("import_header", missing=[...])`` for the best candidate when none is.
    """
    best: tuple[int, int, Sequence[object]] | None = None  # (fields named, line, cells)
    for line, cells in rows:
        named = {f for f in (_header_field(c)[0] for c in cells) if f is not None}
        if {"nik", "name"} <= named:
            return map_header(cells, line)
        if best is None or len(named) > best[0]:
            best = (len(named), line, cells)
    if best is None:
        raise InvalidInput("import_empty")
    return map_header(best[2], best[1])


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------

_SEX: Final = {
    **dict.fromkeys(("l", "lk", "laki", "laki_laki", "lakilaki", "lelaki", "pria", "m", "male", "1"), "L"),
    **dict.fromkeys(("p", "pr", "perempuan", "wanita", "f", "female", "w", "2"), "P"),
}


def parse_sex(raw: str) -> str | None:
    """``L`` or ``P`` from L/P, Laki-laki/Perempuan, Pria/Wanita, M/F (and the codes 1/2), else None."""
    return _SEX.get(_NON_ALNUM.sub("_", raw.strip().lower()).strip("_"))


_CATEGORY_ALIASES: Final = {
    **{c: c for c in CATEGORIES},
    "tenaga_kesehatan": "nakes",
    "sdmk": "nakes",
    "nakes_dan_penunjang": "nakes",
    "lanjut_usia": "lansia",
    "pelayan_publik": "petugas_publik",
    "petugas_pelayanan_publik": "petugas_publik",
    "masyarakat_umum": "umum",
    "masyarakat": "umum",
    "komorbiditas": "komorbid",
}
DEFAULT_CATEGORY: Final = "nakes"  # the first phase's lists (SISDMK) are health workers


def parse_category(raw: str) -> str | None:
    """A category of :data:`CATEGORIES` ("" gives the default, ``nakes``), or None when unknown."""
    norm = _NON_ALNUM.sub("_", raw.strip().lower()).strip("_")
    if not norm:
        return DEFAULT_CATEGORY
    return _CATEGORY_ALIASES.get(norm)


_EXCEL_EPOCH: Final = date(1899, 12, 30)
_EXCEL_SERIAL_MAX: Final = 80_000  # 2119: larger numbers are digits typed without separators
_MAX_NAME: Final = 120
_FLOAT_EXACT: Final = 2**53
_MAX_DETAIL: Final = 40


def _text(value: object) -> str:
    """A cell as text: numbers without a trailing ``.0`` (a NIK or phone typed as a number)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat()
    return str(value).strip()


# Fast paths. Each is exact where it answers and returns None where the canonical function must
# decide (and name the reason).
_DIGITS16 = re.compile(r"[0-9]{16}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_FAST_PHONE = re.compile(r"(?:\+62|62|0)?(8[0-9]{8,11})")
_PHONE_SEPARATORS = str.maketrans("", "", " -.")


class _Caches:
    """Small memo tables: birth dates, NIK date parts and schedule dates repeat a lot in a list."""

    def __init__(self) -> None:
        self.nik_dates: dict[str, bool] = {}
        self.dates: dict[str, date | str] = {}


def _nik_date_ok(ddmmyy: str, cache: dict[str, bool]) -> bool:
    ok = cache.get(ddmmyy)
    if ok is None:
        day, month, yy = int(ddmmyy[:2]), int(ddmmyy[2:4]), int(ddmmyy[4:])
        if day > 40:
            day -= 40
        try:
            date(2000 + yy, month, day)
            ok = True
        except ValueError:
            ok = False
        if len(cache) < 100_000:
            cache[ddmmyy] = ok
    return ok


_MEMO_MAX: Final = 100_000


def _nik_date_parts(ddmmyy: str) -> tuple[int, int, int, str] | None:
    """(day, month, two-digit year, sex) that a NIK's date digits encode, or None when they are no date."""
    day, month, yy = int(ddmmyy[:2]), int(ddmmyy[2:4]), int(ddmmyy[4:])
    sex = "L"
    if day > 40:
        day -= 40
        sex = "P"
    try:
        date(2000 + yy, month, day)
    except ValueError:
        return None
    return day, month, yy, sex


def _fast_nik(raw: str, caches: _Caches) -> str | None:
    if (
        len(raw) == 16
        and _DIGITS16.fullmatch(raw)
        and raw[:2] in NIK_PROVINCE_CODES
        and raw[12:] != "0000"
        and _nik_date_ok(raw[6:12], caches.nik_dates)
    ):
        return raw
    return None


def _date_value(value: object, caches: _Caches) -> date:
    """A date cell (a date, an Excel serial number, or text) or ``InvalidInput("date")``."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < _EXCEL_SERIAL_MAX:
        return _EXCEL_EPOCH + timedelta(days=int(value))
    raw = _text(value)
    hit = caches.dates.get(raw)
    if hit is None:
        try:
            hit = parse_date(raw) if not _ISO_DATE.fullmatch(raw) else _iso_or_parse(raw)
        except InvalidInput as exc:
            hit = str(exc.params.get("got", ""))[:_MAX_DETAIL] or "-"
        if len(caches.dates) < 100_000:
            caches.dates[raw] = hit
    if isinstance(hit, str):
        raise InvalidInput("date", got=hit)
    return hit


def _iso_or_parse(raw: str) -> date:
    try:
        parsed = date.fromisoformat(raw)
    except ValueError:
        return parse_date(raw)  # raises with the canonical reason
    if 1900 <= parsed.year <= 2099:
        return parsed
    return parse_date(raw)


def fast_phone(raw: str) -> str:
    """:func:`normalize_phone`, with a fast path for the usual shapes (``0812…``, ``+62 812…``)."""
    match = _FAST_PHONE.fullmatch(raw.translate(_PHONE_SEPARATORS))
    if match is not None:
        return "+62" + match[1]
    return normalize_phone(raw)


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


class ValidRow(NamedTuple):
    line: int
    nik: str
    name: str
    birth_date: date
    sex: str
    phone: str | None
    category: str
    faskes_code: str | None
    scheduled_date: date | None


@dataclass(frozen=True, slots=True)
class RowIssue:
    """A rejected row (``outcome`` ``rejected``), a warning on an imported row (``warning``), or an
    existing target left alone (``skipped``). ``nik`` is masked; ``detail`` never holds a whole NIK or
    phone number."""

    line: int
    outcome: str  # rejected | warning | skipped
    reason: str  # nik.length, phone.not_mobile, nik.duplicate_in_file, ...
    field: str
    detail: str = ""
    nik: str = ""


@dataclass(frozen=True, slots=True)
class FaskesInfo:
    kabkota_code: str
    is_vaccinator: bool


@dataclass
class ImportCounts:
    rows: int = 0  # data rows read (blank rows not counted)
    created: int = 0  # new targets, each with a new ticket
    updated: int = 0  # existing targets updated (only with update_existing)
    unchanged: int = 0  # existing targets left as they were
    locked: int = 0  # existing targets not updated because they have a desk entry
    rejected: int = 0
    warnings: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class RowValidator:
    """Validates data rows against a :class:`ColumnMap`.

    ``faskes`` are PL's facilities; ``allowed_kabkota`` (when given) says which district codes the
    importer may assign targets to (a token limited to some regions), and then a faskes is required.
    ``today`` bounds birth dates. ``validate`` returns a :class:`ValidRow` or the :class:`RowIssue`
    that rejects the row; warnings go to ``warnings``. Duplicates within the file are the caller's
    (it knows which rows it accepted).
    """

    def __init__(
        self,
        columns: ColumnMap,
        *,
        faskes: Mapping[str, FaskesInfo],
        today: date,
        allowed_kabkota: Callable[[str], bool] | None = None,
    ) -> None:
        self.columns = columns
        self.faskes = faskes
        self.today = today
        self.allowed_kabkota = allowed_kabkota
        self.warnings: list[RowIssue] = []
        self._caches = _Caches()
        idx = columns.columns
        self._i_name, self._i_nik = idx["name"], idx["nik"]
        self._i_birth, self._i_sex = idx["birth_date"], idx["sex"]
        self._i_phone = idx.get("phone")
        self._i_category = idx.get("category")
        self._i_faskes = idx.get("faskes_code")
        self._i_sched = idx.get("scheduled_date")
        self._width = max(idx.values()) + 1
        # The fast path's memos, keyed by the raw text cell (whitespace and all): values that parsed.
        self._nik_dates: dict[str, tuple[int, int, int, str] | None] = {}
        self._dates: dict[str, date] = {}
        self._sexes: dict[str, str] = {}
        self._categories: dict[str, str] = {}
        self._faskes_codes: dict[str, str | None] = {}

    @staticmethod
    def is_blank(cells: Sequence[object]) -> bool:
        return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)

    def validate(self, cells: Sequence[object], line: int) -> ValidRow | RowIssue:
        """The row's :class:`ValidRow`, or the :class:`RowIssue` that rejects it (warnings to ``warnings``)."""
        if len(cells) >= self._width:
            row = self._fast(cells, line)
            if row is not None:
                return row
        return self._validate(cells, line)

    def check(self, cells: Sequence[object], line: int) -> ValidRow | RowIssue | None:
        """:meth:`validate`, or None for a blank row (what an import skips without counting it)."""
        if len(cells) >= self._width:
            row = self._fast(cells, line)
            if row is not None:
                return row
        if self.is_blank(cells):
            return None
        return self._validate(cells, line)

    def _fast(self, cells: Sequence[object], line: int) -> ValidRow | None:
        """The common, well-formed row (text cells, or date cells for dates) in a few dictionary look-ups.

        Gives exactly what :meth:`_validate` gives for the rows it accepts (warnings included), and None
        for anything else, which :meth:`_validate` then decides (and names the reason). Parsed values are
        memoised per raw cell: birth dates, sexes, categories, faskes and schedule dates repeat a lot.
        """
        raw = cells[self._i_nik]
        if type(raw) is not str:
            return None  # a numeric NIK cell has its own warning: the canonical path
        nik = raw.strip()
        if len(nik) != 16 or not nik.isdigit() or not nik.isascii():
            return None
        key = nik[6:12]
        if key in self._nik_dates:
            parts = self._nik_dates[key]
        else:
            parts = _nik_date_parts(key)
            if len(self._nik_dates) < _MEMO_MAX:
                self._nik_dates[key] = parts
        if parts is None or nik[:2] not in NIK_PROVINCE_CODES or nik[12:] == "0000":
            return None

        raw = cells[self._i_name]
        if type(raw) is not str:
            return None
        name = " ".join(raw.split())
        if not name or len(name) > _MAX_NAME or not name[0].isalpha() or not name.isprintable():
            return None

        birth = self._date(cells[self._i_birth])
        if birth is None or birth > self.today:
            return None

        raw = cells[self._i_sex]
        if type(raw) is not str:
            return None
        sex = self._sexes.get(raw)
        if sex is None:
            sex = parse_sex(raw) if raw.strip() else None
            if sex is None:
                return None
            if len(self._sexes) < _MEMO_MAX:
                self._sexes[raw] = sex

        phone: str | None = None
        if self._i_phone is not None:
            raw = cells[self._i_phone]
            if type(raw) is str and 10 <= len(raw) <= 13 and raw[:2] == "08" and raw.isdigit() and raw.isascii():
                phone = "+62" + raw[1:]  # what fast_phone gives for 08 and 8 to 11 digits
            else:
                text = _text(raw)
                if text and text != "-":
                    try:
                        phone = fast_phone(text)
                    except InvalidInput:
                        return None

        category = DEFAULT_CATEGORY
        if self._i_category is not None:
            raw = cells[self._i_category]
            if type(raw) is not str:
                return None
            found = self._categories.get(raw)
            if found is None:
                found = parse_category(raw)
                if found is None:
                    return None
                if len(self._categories) < _MEMO_MAX:
                    self._categories[raw] = found
            category = found

        faskes_code: str | None = None
        if self._i_faskes is not None:
            raw = cells[self._i_faskes]
            if type(raw) is not str:
                return None
            if raw in self._faskes_codes:
                faskes_code = self._faskes_codes[raw]
            else:
                code = raw.strip().upper()
                if code:
                    info = self.faskes.get(code)
                    if info is None or not info.is_vaccinator:
                        return None
                    if self.allowed_kabkota is not None and not self.allowed_kabkota(info.kabkota_code):
                        return None
                    faskes_code = code
                if len(self._faskes_codes) < _MEMO_MAX:
                    self._faskes_codes[raw] = faskes_code
        if faskes_code is None and self.allowed_kabkota is not None:
            return None

        scheduled: date | None = None
        if self._i_sched is not None:
            raw = cells[self._i_sched]
            if raw is not None and (type(raw) is not str or raw.strip()):
                scheduled = self._date(raw)
                if scheduled is None:
                    return None

        day, month, yy, nik_sex = parts
        if birth.day != day or birth.month != month or birth.year % 100 != yy:
            masked = nik[:6] + "••••••••••"
            self.warnings.append(RowIssue(line, "warning", "nik.birth_date_mismatch", "birth_date", "", masked))
        if sex != nik_sex:
            masked = nik[:6] + "••••••••••"
            self.warnings.append(RowIssue(line, "warning", "nik.sex_mismatch", "sex", "", masked))
        return ValidRow(line, nik, name, birth, sex, phone, category, faskes_code, scheduled)

    def _date(self, raw: object) -> date | None:
        """A date cell for the fast path: a date, or text that parses (memoised); None for anything else."""
        if isinstance(raw, datetime):
            return raw.date()
        if isinstance(raw, date):
            return raw
        if not isinstance(raw, str):
            return None
        found = self._dates.get(raw)
        if found is None:
            if not raw.strip():
                return None
            try:
                found = _date_value(raw, self._caches)
            except InvalidInput:
                return None
            if len(self._dates) < _MEMO_MAX:
                self._dates[raw] = found
        return found

    def _validate(self, cells: Sequence[object], line: int) -> ValidRow | RowIssue:
        """The canonical path: every row, any cell types, the precise reason for a rejected row."""
        if len(cells) < self._width:
            cells = [*cells, *([None] * (self._width - len(cells)))]
        caches = self._caches

        nik_cell = cells[self._i_nik]
        raw_nik = _text(nik_cell)
        numeric = isinstance(nik_cell, int | float) and not isinstance(nik_cell, bool)
        if isinstance(nik_cell, float) and abs(nik_cell) > _FLOAT_EXACT:
            # A spreadsheet number this large is not exact (Excel keeps 15 significant digits).
            return RowIssue(line, "rejected", "nik.numeric_cell", "nik", "", mask_nik(raw_nik))
        nik = _fast_nik(raw_nik, caches)
        if nik is None:
            try:
                nik = normalize_nik(raw_nik)
            except InvalidInput as exc:
                detail = _detail(exc.params)
                return RowIssue(line, "rejected", f"nik.{exc.reason}", "nik", detail, mask_nik(raw_nik))
        masked = nik[:6] + "••••••••••"
        if numeric and nik.endswith("0"):  # typed into Excel as a number, the last digit may have become 0
            self.warnings.append(RowIssue(line, "warning", "nik.numeric_cell", "nik", "", masked))

        name = " ".join(_text(cells[self._i_name]).split())
        if not name:
            return RowIssue(line, "rejected", "name.empty", "name", "", masked)
        if len(name) > _MAX_NAME:
            return RowIssue(line, "rejected", "name.too_long", "name", str(len(name)), masked)
        if not name.isprintable() or not any(ch.isalpha() for ch in name):
            return RowIssue(line, "rejected", "name.invalid", "name", "", masked)

        raw_birth = cells[self._i_birth]
        if _text(raw_birth) == "":
            return RowIssue(line, "rejected", "birth_date.empty", "birth_date", "", masked)
        try:
            birth = _date_value(raw_birth, caches)
        except InvalidInput as exc:
            return RowIssue(line, "rejected", "birth_date.invalid", "birth_date", _detail(exc.params), masked)
        if birth > self.today:
            return RowIssue(line, "rejected", "birth_date.future", "birth_date", birth.isoformat(), masked)

        raw_sex = _text(cells[self._i_sex])
        if not raw_sex:
            return RowIssue(line, "rejected", "sex.empty", "sex", "", masked)
        sex = parse_sex(raw_sex)
        if sex is None:
            return RowIssue(line, "rejected", "sex.invalid", "sex", raw_sex[:_MAX_DETAIL], masked)

        phone: str | None = None
        if self._i_phone is not None:
            raw_phone = _text(cells[self._i_phone])
            if raw_phone and raw_phone != "-":
                try:
                    phone = fast_phone(raw_phone)
                except InvalidInput as exc:
                    return RowIssue(line, "rejected", f"phone.{exc.reason}", "phone", "", masked)

        category = DEFAULT_CATEGORY
        if self._i_category is not None:
            raw_category = _text(cells[self._i_category])
            parsed = parse_category(raw_category)
            if parsed is None:
                return RowIssue(line, "rejected", "category.unknown", "category", raw_category[:_MAX_DETAIL], masked)
            category = parsed

        faskes_code: str | None = None
        if self._i_faskes is not None:
            raw_faskes = _text(cells[self._i_faskes]).upper()
            if raw_faskes:
                info = self.faskes.get(raw_faskes)
                if info is None:
                    return RowIssue(line, "rejected", "faskes.unknown", "faskes_code", raw_faskes[:_MAX_DETAIL], masked)
                if not info.is_vaccinator:
                    return RowIssue(line, "rejected", "faskes.not_vaccinator", "faskes_code", raw_faskes, masked)
                if self.allowed_kabkota is not None and not self.allowed_kabkota(info.kabkota_code):
                    return RowIssue(line, "rejected", "faskes.out_of_region", "faskes_code", raw_faskes, masked)
                faskes_code = raw_faskes
        if faskes_code is None and self.allowed_kabkota is not None:
            return RowIssue(line, "rejected", "faskes.missing", "faskes_code", "", masked)

        scheduled: date | None = None
        if self._i_sched is not None:
            raw_sched = cells[self._i_sched]
            if _text(raw_sched):
                try:
                    scheduled = _date_value(raw_sched, caches)
                except InvalidInput as exc:
                    return RowIssue(
                        line, "rejected", "scheduled_date.invalid", "scheduled_date", _detail(exc.params), masked
                    )

        # The NIK encodes birth date and sex: a difference is a warning (the list may be right).
        day, month = int(nik[6:8]), int(nik[8:10])
        nik_sex = "P" if day > 40 else "L"
        if day > 40:
            day -= 40
        if (birth.day, birth.month, birth.year % 100) != (day, month, int(nik[10:12])):
            self.warnings.append(RowIssue(line, "warning", "nik.birth_date_mismatch", "birth_date", "", masked))
        if sex != nik_sex:
            self.warnings.append(RowIssue(line, "warning", "nik.sex_mismatch", "sex", "", masked))
        return ValidRow(line, nik, name, birth, sex, phone, category, faskes_code, scheduled)


def _detail(params: Mapping[str, object]) -> str:
    """An error's parameters as a short text (``got=15``): never a whole identifier."""
    parts = []
    for key, value in params.items():
        text = "".join(value) if isinstance(value, list | tuple) else str(value)
        parts.append(f"{key}={text[:_MAX_DETAIL]}")
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------
# Tickets in bulk
# --------------------------------------------------------------------------------------------

_ALPHABET_SIZE: Final = len(TICKET_ALPHABET)  # 31
_ACCEPT_BELOW: Final = 256 - 256 % _ALPHABET_SIZE  # 248: bytes from 248 up would bias the draw
_BYTE_TO_VALUE: Final = bytes(b % _ALPHABET_SIZE if b < _ACCEPT_BELOW else 0 for b in range(256))
_VALUE_TO_SYMBOL: Final = bytes(ord(TICKET_ALPHABET[v % _ALPHABET_SIZE]) for v in range(256))
_REJECTED_BYTES: Final = bytes(range(_ACCEPT_BELOW, 256))
_BODY: Final = 9
_BODY_WEIGHTS: Final = tuple(range(1, _BODY + 1))  # as in ticket_check_symbol: c = Σ i·v_i mod 31


def generate_tickets(count: int) -> list[str]:
    """``count`` new random tickets, drawn like :func:`core.domain.identifiers.generate_ticket`
    (each body symbol uniform over the 31-symbol alphabet, from ``secrets``) but in bulk.

    Bytes are mapped to symbol values by ``b % 31`` for ``b < 248`` (248 = 8 × 31) and dropped
    otherwise (rejection sampling, so no symbol is favoured). The check symbol is
    :func:`~core.domain.identifiers.ticket_check_symbol`'s, computed on the values at once (a test
    compares the two). Tickets within one call may repeat (about ``count² / 5e13``); PL's unique
    index decides anyway.
    """
    if count <= 0:
        return []
    need = count * _BODY
    values = b""
    while len(values) < need:
        raw = secrets.token_bytes(need - len(values) + (need - len(values)) // 16 + 16)
        values += raw.translate(_BYTE_TO_VALUE, _REJECTED_BYTES)
    values = values[:need]
    text = values.translate(_VALUE_TO_SYMBOL).decode("ascii")
    alphabet, weights, size = TICKET_ALPHABET, _BODY_WEIGHTS, _ALPHABET_SIZE
    return [
        text[start : start + _BODY] + alphabet[sum(map(mul, weights, values[start : start + _BODY])) % size]
        for start in range(0, need, _BODY)
    ]


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------

_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def neutralize_cell(value: object) -> str:
    """A report cell that a spreadsheet will not run: text starting with ``=``, ``+``, ``-``, ``@``
    (or a tab or carriage return) gets a leading apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text
