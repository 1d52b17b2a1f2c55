"""Identifiers typed at the front desk: NIK, our ticket code, phone numbers and dates.

Everything here is pure (no I/O, no clock except where ``today`` defaults to ``date.today()``).
Parsers raise :class:`~core.domain.errors.InvalidInput` subclasses whose ``reason`` is part of
the contract: the bot and the API map ``error.key`` (``invalid.nik.length``, ...) to text.

Separators accepted inside NIKs, tickets and lookup keys: any whitespace, ``.`` and dashes
(``-`` and its Unicode look-alikes, which phones and chat apps like to insert).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Literal

import phonenumbers

from core.domain.errors import InvalidInput, InvalidNik, InvalidPhone, InvalidTicket

__all__ = [
    "NIK_PROVINCE_CODES",
    "TICKET_ALPHABET",
    "LookupKey",
    "NikFacts",
    "Sex",
    "format_phone",
    "format_ticket",
    "generate_ticket",
    "is_ticket_like",
    "mask_nik",
    "mask_phone",
    "nik_mismatches",
    "normalize_nik",
    "normalize_phone",
    "normalize_ticket",
    "parse_date",
    "parse_lookup_key",
    "parse_nik",
    "ticket_check_symbol",
]

_ASCII_DIGITS = frozenset("0123456789")
_DASHES = frozenset("-\u2010\u2011\u2012\u2013\u2014\u2212")
_MAX_BAD_SHOWN = 10


def _is_separator(ch: str) -> bool:
    return ch.isspace() or ch == "." or ch in _DASHES


def _strip_separators(raw: str) -> str:
    return "".join(ch for ch in raw if not _is_separator(ch))


def _unique(chars: str) -> str:
    """The distinct characters of ``chars`` in order of first appearance (at most 10)."""
    return "".join(dict.fromkeys(chars))[:_MAX_BAD_SHOWN]


# --------------------------------------------------------------------------------------------
# NIK
# --------------------------------------------------------------------------------------------

# Province codes (kode wilayah, Kemendagri). A constant on purpose: stdnum.id.nik's data
# (stdnum/id/loc.dat) predates Kalimantan Utara (65, 2012) and the 2022 Papua provinces
# (92, 93, 95, 96), and stdnum.id.nik.validate() additionally requires a regency it knows, so it
# would reject real NIKs from those regions. Its birth-date helper is not used either: it reads
# the day modulo 40 (so day 81 passes as the 1st) and prefers 19YY over 20YY.
NIK_PROVINCE_CODES: frozenset[str] = frozenset(
    [str(code) for code in range(11, 20)]
    + ["21"]
    + [str(code) for code in range(31, 37)]
    + [str(code) for code in range(51, 54)]
    + [str(code) for code in range(61, 66)]
    + [str(code) for code in range(71, 77)]
    + ["81", "82"]
    + [str(code) for code in range(91, 97)]
)

_NIK_LENGTH = 16
_FEMALE_DAY_OFFSET = 40


class Sex(StrEnum):
    L = "L"  # laki-laki
    P = "P"  # perempuan


@dataclass(frozen=True, slots=True)
class NikFacts:
    nik: str
    province_code: str
    kabkota_code: str
    kecamatan_code: str
    birth_date: date
    sex: Sex


def _nik_day_month_year(nik: str) -> tuple[int, int, int, Sex]:
    """Day, month, two-digit year and sex from a 16-digit NIK, or raise ``InvalidNik("date")``."""
    day, month, yy = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    sex = Sex.L
    if day > _FEMALE_DAY_OFFSET:
        day -= _FEMALE_DAY_OFFSET
        sex = Sex.P
    try:
        # 2000 is a leap year, so a day/month that exists in 19YY also exists in 20YY (and
        # 29-02-00 exists in 2000 only): checking 20YY means "a real date in 19YY or 20YY".
        date(2000 + yy, month, day)
    except ValueError:
        raise InvalidNik("date", got=nik[6:12]) from None
    return day, month, yy, sex


def _check_nik(raw: str) -> str:
    nik = _strip_separators(raw)
    if not nik:
        raise InvalidNik("empty")
    bad = "".join(ch for ch in nik if ch not in _ASCII_DIGITS)
    if bad:
        raise InvalidNik("not_digits", bad=_unique(bad))
    if len(nik) != _NIK_LENGTH:
        raise InvalidNik("length", got=len(nik))
    if nik[:2] not in NIK_PROVINCE_CODES:
        raise InvalidNik("province", code=nik[:2])
    _nik_day_month_year(nik)
    if nik[12:] == "0000":
        raise InvalidNik("serial")
    return nik


def normalize_nik(raw: str) -> str:
    """The 16 digits of a NIK, checked offline.

    Reasons, in the order they are checked: ``empty``; ``not_digits`` (``bad``: the offending
    characters); ``length`` (``got``: the digit count); ``province`` (``code``: the first two
    digits); ``date`` (``got``: the DDMMYY part; women's days are 41-71); ``serial`` (0000).
    There is no check digit: a valid NIK may still be mistyped, so confirm name and birth date.
    """
    return _check_nik(raw)


def parse_nik(raw: str, today: date | None = None) -> NikFacts:
    """Validate like :func:`normalize_nik` and read the facts the NIK encodes.

    The two-digit year becomes 20YY when that date is not after ``today``, else 19YY. A person
    born 100+ years ago therefore comes out a century late: :func:`nik_mismatches` ignores the
    century for that reason.
    """
    nik = _check_nik(raw)
    day, month, yy, sex = _nik_day_month_year(nik)
    if today is None:
        today = date.today()
    birth: date | None = None
    for century in (2000, 1900):
        try:
            candidate = date(century + yy, month, day)
        except ValueError:  # only 29-02-1900
            continue
        if candidate <= today:
            birth = candidate
            break
    if birth is None:  # only 29-02-00 when today is before 29-02-2000
        raise InvalidNik("date", got=nik[6:12])
    return NikFacts(
        nik=nik,
        province_code=nik[:2],
        kabkota_code=nik[:4],
        kecamatan_code=nik[:6],
        birth_date=birth,
        sex=sex,
    )


def nik_mismatches(facts: NikFacts, birth_date: date | None, sex: Sex | None) -> list[str]:
    """Which of the record's fields disagree with the NIK: ``birth_date``, ``sex`` (a warning).

    ``None`` means the record does not know the value: no mismatch. The birth date is compared
    on day, month and the year's last two digits, as the NIK carries no century.
    """
    mismatches: list[str] = []
    if birth_date is not None:
        nik_birth = facts.birth_date
        if (birth_date.day, birth_date.month, birth_date.year % 100) != (
            nik_birth.day,
            nik_birth.month,
            nik_birth.year % 100,
        ):
            mismatches.append("birth_date")
    if sex is not None and sex != facts.sex:
        mismatches.append("sex")
    return mismatches


def mask_nik(nik: str) -> str:
    """The first 6 digits (the district) and 10 ``•``: the last four must never show.

    Never raises: anything that is not 16 digits is masked completely.
    """
    digits = _strip_separators(nik)
    if len(digits) != _NIK_LENGTH or not all(ch in _ASCII_DIGITS for ch in digits):
        return "•" * _NIK_LENGTH
    return digits[:6] + "•" * 10


# --------------------------------------------------------------------------------------------
# Tickets
# --------------------------------------------------------------------------------------------

# Crockford's base32 alphabet (digits, letters without I, L, O, U) minus V, giving 31 symbols,
# a prime. V goes because in Indonesian it is commonly spelt and said "fe", like F ("ef"), so
# the two collide when a ticket is read aloud, and a handwritten V is easily taken for the
# (already excluded) U or for Y.
TICKET_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTWXYZ"
_TICKET_MODULUS = len(TICKET_ALPHABET)  # 31, prime
_TICKET_VALUE = {symbol: value for value, symbol in enumerate(TICKET_ALPHABET)}
_TICKET_FOLD = {"O": "0", "I": "1", "L": "1"}
_TICKET_BODY_LENGTH = 9
_TICKET_LENGTH = _TICKET_BODY_LENGTH + 1
# Weight of body position i (0-based) is i + 1; the check symbol's weight is -1 (= 30).
_TICKET_BODY_WEIGHTS = tuple(range(1, _TICKET_BODY_LENGTH + 1))


def ticket_check_symbol(body: str) -> str:
    """The check symbol of a 9-symbol ticket body (uppercase, from ``TICKET_ALPHABET``).

    With symbol values ``v1 .. v9`` (their index in the 31-symbol alphabet) and check value
    ``c``, a ticket is valid when ``1*v1 + 2*v2 + ... + 9*v9 - c ≡ 0 (mod 31)``, that is
    ``c = Σ i*vi mod 31``. Seen over all ten positions, the weights are 1, 2, ..., 9 and
    -1 ≡ 30: distinct and non-zero modulo 31, and 31 is prime, so the integers modulo 31 form a
    field (no zero divisors). Hence:

    * one wrong symbol at a position of weight ``w`` changes the sum by ``w * (a - b)`` with
      ``w ≢ 0`` and ``a - b ≢ 0`` (two different values in 0..30): a non-zero product, so the
      sum is no longer 0 and the error is detected, check position included;
    * swapping two different symbols ``a ≠ b`` at positions of weights ``w ≠ w'`` changes the
      sum by ``(w - w') * (a - b)``, again a product of two non-zero factors: detected. This
      holds for neighbours (including the last body symbol and the check symbol, weights 9 and
      30) and in fact for any two positions.

    Raises ``ValueError`` for a body that is not 9 alphabet symbols (a programming error).
    """
    if len(body) != _TICKET_BODY_LENGTH or any(ch not in _TICKET_VALUE for ch in body):
        raise ValueError(f"a ticket body is {_TICKET_BODY_LENGTH} symbols of TICKET_ALPHABET")
    total = sum(w * _TICKET_VALUE[ch] for w, ch in zip(_TICKET_BODY_WEIGHTS, body, strict=True))
    return TICKET_ALPHABET[total % _TICKET_MODULUS]


def generate_ticket() -> str:
    """A new random ticket: 9 symbols from ``secrets`` (31**9 ≈ 2.6e13) plus the check symbol."""
    body = "".join(secrets.choice(TICKET_ALPHABET) for _ in range(_TICKET_BODY_LENGTH))
    return body + ticket_check_symbol(body)


def _fold_ticket(raw: str) -> tuple[str, str]:
    """(symbols, bad characters) after dropping separators, uppercasing and folding O, I, L."""
    symbols: list[str] = []
    bad: list[str] = []
    for ch in raw:
        if _is_separator(ch):
            continue
        upper = ch.upper() if ch.isascii() else ch
        upper = _TICKET_FOLD.get(upper, upper)
        if upper in _TICKET_VALUE:
            symbols.append(upper)
        else:
            bad.append(ch)
    return "".join(symbols), "".join(bad)


def normalize_ticket(raw: str) -> str:
    """The 10 uppercase symbols of a ticket, without separator.

    Case-insensitive; ignores whitespace, dots and dashes; reads O as 0 and I, L as 1.
    Reasons, in order: ``empty``; ``characters`` (``bad``: the offending characters as typed);
    ``length`` (``got``: the symbol count); ``check`` (the check symbol does not match).
    """
    symbols, bad = _fold_ticket(raw)
    if not symbols and not bad:
        raise InvalidTicket("empty")
    if bad:
        raise InvalidTicket("characters", bad=_unique(bad))
    if len(symbols) != _TICKET_LENGTH:
        raise InvalidTicket("length", got=len(symbols))
    if ticket_check_symbol(symbols[:_TICKET_BODY_LENGTH]) != symbols[_TICKET_BODY_LENGTH]:
        raise InvalidTicket("check")
    return symbols


def format_ticket(ticket: str) -> str:
    """``ABCDE-FGHIJ`` for display; normalises first (so raises ``InvalidTicket`` like it)."""
    symbols = normalize_ticket(ticket)
    return f"{symbols[:5]}-{symbols[5:]}"


def is_ticket_like(raw: str) -> bool:
    """Whether ``raw`` has the shape of a ticket: 10 alphabet symbols after separators/folding.

    The check symbol is not verified, so that a caller can route the text to
    :func:`normalize_ticket` and report a precise ``check`` error. Note that 10 digits are
    ticket-like too.
    """
    symbols, bad = _fold_ticket(raw)
    return not bad and len(symbols) == _TICKET_LENGTH


# --------------------------------------------------------------------------------------------
# Lookup keys
# --------------------------------------------------------------------------------------------

LookupKey = tuple[Literal["nik", "ticket"], str]


def parse_lookup_key(raw: str) -> LookupKey:
    """A NIK (16 characters) or a ticket (10), told apart by length after dropping separators.

    16 characters must be digits (else ``InvalidNik("not_digits")``) and a valid NIK; 10 must be
    a valid ticket; any other length raises ``InvalidInput("lookup_key", got=<length>)``.
    """
    compact = _strip_separators(raw)
    if len(compact) == _NIK_LENGTH:
        return ("nik", normalize_nik(compact))
    if len(compact) == _TICKET_LENGTH:
        return ("ticket", normalize_ticket(compact))
    raise InvalidInput("lookup_key", got=len(compact))


# --------------------------------------------------------------------------------------------
# Phones
# --------------------------------------------------------------------------------------------

_PHONE_ALLOWED = frozenset("0123456789+()") | _DASHES | {"."}
_ID_COUNTRY_CODE = 62
_MOBILE_NSN_MIN, _MOBILE_NSN_MAX = 9, 12  # "8" + 8..11 digits


def normalize_phone(raw: str) -> str:
    """An Indonesian mobile number as E.164 (``+628…``).

    Accepts ``08…``, ``8…``, ``62…``, ``+62 8…``, ``+62 (0)8…`` and ``0062…`` with spaces, dashes,
    dots and parentheses. Parsed with ``phonenumbers`` (region ID); checked by structure only,
    never by operator prefix (``is_valid_number`` is deliberately not used). Reasons, in order:
    ``empty``; ``format`` (unparseable, or a national number that is not 9-12 digits);
    ``country`` (not +62); ``not_mobile`` (the national number does not start with 8).
    """
    text = raw.strip()
    if not text:
        raise InvalidPhone("empty")
    if any(not (ch in _PHONE_ALLOWED or ch.isspace()) for ch in text):
        raise InvalidPhone("format")
    compact = "".join(ch for ch in text if ch in _ASCII_DIGITS or ch == "+")
    if not compact or compact == "+" or "+" in compact[1:]:
        raise InvalidPhone("format")
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    elif compact.startswith(str(_ID_COUNTRY_CODE)):
        compact = "+" + compact
    if compact.startswith("+") and not compact.startswith(f"+{_ID_COUNTRY_CODE}"):
        raise InvalidPhone("country")
    try:
        number = phonenumbers.parse(compact, "ID")
    except phonenumbers.NumberParseException:
        raise InvalidPhone("format") from None
    if number.country_code != _ID_COUNTRY_CODE:
        raise InvalidPhone("country")
    if number.extension:
        raise InvalidPhone("format")
    nsn = phonenumbers.national_significant_number(number)
    # Length before "mobile": phonenumbers keeps the trunk 0 (08123 -> "08123") when stripping
    # it would leave an impossible number, and that is a length problem, not a landline.
    if not _MOBILE_NSN_MIN <= len(nsn) <= _MOBILE_NSN_MAX:
        raise InvalidPhone("format")
    if not nsn.startswith("8"):
        raise InvalidPhone("not_mobile")
    return f"+{_ID_COUNTRY_CODE}{nsn}"


def _phone_groups(nsn: str) -> tuple[str, str, str]:
    return nsn[:3], nsn[3:7], nsn[7:]


def mask_phone(e164: str) -> str:
    """``+62 812-••••-•78``: the country code, the first 3 and the last 2 national digits.

    Never raises: anything :func:`normalize_phone` refuses is masked completely.
    """
    try:
        nsn = normalize_phone(e164)[3:]
    except InvalidInput:
        return "•" * 8
    head, middle, tail = _phone_groups(nsn)
    masked_tail = "•" * (len(tail) - 2) + tail[-2:]
    return f"+{_ID_COUNTRY_CODE} {head}-{'•' * len(middle)}-{masked_tail}"


def format_phone(e164: str) -> str:
    """National display form ``0812-3456-7890``; normalises first (raises ``InvalidPhone``)."""
    head, middle, tail = _phone_groups(normalize_phone(e164)[3:])
    return f"0{head}-{middle}-{tail}"


# --------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------

_DMY = re.compile(r"([0-9]{1,2})([-/. ])([0-9]{1,2})\2([0-9]{4})")
_YMD = re.compile(r"([0-9]{4})([-/.])([0-9]{1,2})\2([0-9]{1,2})")
_DMY_COMPACT = re.compile(r"([0-9]{2})([0-9]{2})([0-9]{4})")
_MIN_YEAR, _MAX_YEAR = 1900, 2099
_MAX_GOT = 20


def parse_date(raw: str) -> date:
    """A date typed day first (``17-08-1990``, ``17/08/1990``, ``17.08.1990``, ``17 08 1990``,
    ``17081990``, one-digit day/month allowed with a separator) or ISO (``1990-08-17``).

    Years 1900-2099 only; two-digit years are refused (ambiguous). Anything else, or a day that
    does not exist, raises ``InvalidInput("date", got=<raw stripped, at most 20 chars>)``.
    """
    text = " ".join(raw.split())
    parts: tuple[str, str, str] | None = None  # (year, month, day)
    if match := _DMY.fullmatch(text):
        parts = (match[4], match[3], match[1])
    elif match := _YMD.fullmatch(text):
        parts = (match[1], match[3], match[4])
    elif match := _DMY_COMPACT.fullmatch(text):
        parts = (match[3], match[2], match[1])
    if parts is not None:
        year, month, day = (int(part) for part in parts)
        if _MIN_YEAR <= year <= _MAX_YEAR:
            try:
                return date(year, month, day)
            except ValueError:
                pass
    raise InvalidInput("date", got=raw.strip()[:_MAX_GOT])
