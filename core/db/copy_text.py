"""New targets as lines of PostgreSQL's ``COPY … FROM STDIN`` text format, made where the rows are read.

An import's chunk of valid rows travels from the reading process to the writing one, and from there to
PostgreSQL. As Python objects it cost the writer 4.0 µs of CPU a row (measured at 1.47 M rows: unpickling
nine fields a row, then asyncpg's binary encoding), on cores it shares with the reader and PostgreSQL (9-10
µs a row). As text lines made by the reader, the writer only puts each line's ticket and the run's constant
columns after it and hands the bytes to ``COPY`` (PostgreSQL parses text and binary at the same cost,
measured). :class:`TextChunk` is such a chunk; its rows are decoded again only when the writer needs them (a
NIK PL holds already, a ticket drawn again, the ``INSERT`` way).

No SQLAlchemy here: the reading process imports this module.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Final, overload

from core.domain.imports import ValidRow

__all__ = ["LINE_COLUMNS", "TAIL_COLUMNS", "TextChunk"]

#: The columns of a line as :class:`TextChunk` holds it, in order; the writer appends :data:`TAIL_COLUMNS`.
LINE_COLUMNS: Final = (
    "nik",
    "name",
    "birth_date",
    "sex",
    "phone",
    "category",
    "assigned_faskes_code",
    "scheduled_date",
)
TAIL_COLUMNS: Final = ("ticket", "source", "version", "created_at", "updated_at")

_NULL: Final = "\\N"
# COPY's text format gives a backslash, a tab, a newline and a carriage return a meaning of their own.
_ESCAPES: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_UNESCAPES: Final = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}


def _escape(text: str) -> str:
    return text.translate(_ESCAPES) if ("\\" in text or not text.isprintable()) else text


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        pair = text[i : i + 2]
        if pair in _UNESCAPES:
            out.append(_UNESCAPES[pair])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _day(text: str) -> date | None:
    return None if text == _NULL else date.fromisoformat(text)


def _optional(text: str) -> str | None:
    return None if text == _NULL else _unescape(text)


class TextChunk(Sequence[ValidRow]):
    """A chunk of valid rows as ``COPY`` text lines (no line ending, no ticket), with their file lines.

    A ``Sequence[ValidRow]`` like the list it stands for: the rows are decoded from the lines the first time
    one is asked for."""

    __slots__ = ("_rows", "lines", "numbers")

    def __init__(self, lines: list[bytes], numbers: array[int]) -> None:
        self.lines = lines
        self.numbers = numbers
        self._rows: list[ValidRow] | None = None

    @classmethod
    def of(cls, rows: Sequence[ValidRow]) -> TextChunk:
        """``rows`` (valid: a name is printable, a faskes code is PL's) as lines, in the same order."""
        null, escape = _NULL, _escape
        lines = [
            "\t".join(
                (
                    nik,
                    escape(name),
                    birth.isoformat(),
                    sex,
                    phone or null,
                    escape(category),
                    null if faskes is None else escape(faskes),
                    null if scheduled is None else scheduled.isoformat(),
                )
            ).encode()
            for _, nik, name, birth, sex, phone, category, faskes, scheduled in rows
        ]
        return cls(lines, array("I", [r[0] for r in rows]))

    def payload(self, tickets: Sequence[str], source: str, now: datetime) -> bytes:
        """The ``COPY`` data: each line, its ticket and the constant columns (version 1, created and
        updated at ``now``), in the order :data:`LINE_COLUMNS` + :data:`TAIL_COLUMNS`. One ticket per line,
        else ``ValueError``."""
        stamp = now.isoformat()
        tail = f"\t{_escape(source)}\t1\t{stamp}\t{stamp}\n"
        ends = [f"\t{_escape(ticket)}{tail}".encode() for ticket in tickets]
        return b"".join([line + end for line, end in zip(self.lines, ends, strict=True)])

    def rows(self) -> list[ValidRow]:
        if self._rows is None:
            self._rows = [self._decode(line, number) for line, number in zip(self.lines, self.numbers, strict=True)]
        return self._rows

    @staticmethod
    def _decode(line: bytes, number: int) -> ValidRow:
        nik, name, birth, sex, phone, category, faskes, scheduled = line.decode().split("\t")
        born = _day(birth)
        assert born is not None
        return ValidRow(
            number,
            nik,
            _unescape(name),
            born,
            sex,
            _optional(phone),
            _unescape(category),
            _optional(faskes),
            _day(scheduled),
        )

    def __len__(self) -> int:
        return len(self.lines)

    @overload
    def __getitem__(self, index: int) -> ValidRow: ...
    @overload
    def __getitem__(self, index: slice) -> list[ValidRow]: ...
    def __getitem__(self, index: int | slice) -> ValidRow | list[ValidRow]:
        return self.rows()[index]

    def __iter__(self) -> Iterator[ValidRow]:
        return iter(self.rows())

    def __reduce__(self) -> tuple[type[TextChunk], tuple[list[bytes], array[int]]]:
        return (TextChunk, (self.lines, self.numbers))
