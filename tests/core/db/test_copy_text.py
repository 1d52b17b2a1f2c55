"""core.db.copy_text: chunks of new targets as PostgreSQL COPY text lines, and back."""

from __future__ import annotations

import pickle
from datetime import UTC, date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from core.db.copy_text import LINE_COLUMNS, TAIL_COLUMNS, TextChunk
from core.domain.imports import ValidRow

NOW = datetime(2026, 11, 27, 3, 4, 5, 678901, tzinfo=UTC)


def row(
    line: int = 2,
    *,
    name: str = "Dewi Sartika",
    phone: str | None = "+6281234567890",
    faskes: str | None = "3273P001",
    scheduled: date | None = date(2026, 11, 27),
) -> ValidRow:
    return ValidRow(line, "3273015302780001", name, date(1978, 2, 13), "P", phone, "nakes", faskes, scheduled)


def test_a_line_holds_the_row_in_the_column_order_copy_is_given() -> None:
    chunk = TextChunk.of([row()])
    assert chunk.lines == [
        b"3273015302780001\tDewi Sartika\t1978-02-13\tP\t+6281234567890\tnakes\t3273P001\t2026-11-27"
    ]
    payload = chunk.payload(["ABCDEFGHJK"], "sisdmk", NOW)
    fields = payload.decode().removesuffix("\n").split("\t")
    assert len(fields) == len(LINE_COLUMNS) + len(TAIL_COLUMNS)
    assert dict(zip(LINE_COLUMNS + TAIL_COLUMNS, fields, strict=True)) == {
        "nik": "3273015302780001",
        "name": "Dewi Sartika",
        "birth_date": "1978-02-13",
        "sex": "P",
        "phone": "+6281234567890",
        "category": "nakes",
        "assigned_faskes_code": "3273P001",
        "scheduled_date": "2026-11-27",
        "ticket": "ABCDEFGHJK",
        "source": "sisdmk",
        "version": "1",
        "created_at": "2026-11-27T03:04:05.678901+00:00",
        "updated_at": "2026-11-27T03:04:05.678901+00:00",
    }


def test_missing_values_are_copy_nulls_and_come_back_as_none() -> None:
    chunk = TextChunk.of([row(phone=None, faskes=None, scheduled=None)])
    assert chunk.lines[0].split(b"\t")[4::2] == [b"\\N", b"\\N"]
    assert chunk.lines[0].endswith(b"\t\\N\t\\N")
    assert list(TextChunk(chunk.lines, chunk.numbers)) == [row(phone=None, faskes=None, scheduled=None)]


def test_copy_s_own_characters_are_escaped() -> None:
    """A backslash is printable and a valid name may hold one; COPY would read it as an escape."""
    name = "Dewi \\N \\t Sartika\tx\ny\rz"
    chunk = TextChunk.of([row(name=name)])
    line = chunk.lines[0]
    assert line.count(b"\t") == len(LINE_COLUMNS) - 1 and b"\n" not in line and b"\r" not in line
    assert line.split(b"\t")[1] == b"Dewi \\\\N \\\\t Sartika\\tx\\ny\\rz"
    assert TextChunk(chunk.lines, chunk.numbers)[0].name == name


def test_the_payload_needs_one_ticket_per_row() -> None:
    chunk = TextChunk.of([row(2), row(3)])
    try:
        chunk.payload(["ABCDEFGHJK"], "excel", NOW)
    except ValueError:
        pass
    else:
        raise AssertionError("a missing ticket went unnoticed")
    assert chunk.payload(["ABCDEFGHJK", "BCDEFGHJKL"], "excel", NOW).count(b"\n") == 2


def test_a_chunk_pickles_as_its_lines() -> None:
    chunk = TextChunk.of([row(2), row(7, name="Siti")])
    again = pickle.loads(pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL))
    assert again.lines == chunk.lines and list(again.numbers) == [2, 7]
    assert again._rows is None  # decoded only when asked
    assert list(again) == [row(2), row(7, name="Siti")] and len(again) == 2 and again[-1].line == 7


_names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.builds(
            row,
            st.integers(1, 2**32 - 1),
            name=_names,
            phone=st.none() | st.just("+628123456789"),
            faskes=st.none() | st.text(min_size=1, max_size=12),
            scheduled=st.none() | st.dates(date(2021, 1, 1), date(2030, 12, 31)),
        ),
        max_size=20,
    )
)
def test_lines_decode_to_the_rows_they_were_made_of(rows: list[ValidRow]) -> None:
    chunk = TextChunk.of(rows)
    assert all(line.count(b"\t") == len(LINE_COLUMNS) - 1 and b"\n" not in line for line in chunk.lines)
    assert list(pickle.loads(pickle.dumps(chunk))) == rows
