"""Reading an import file and validating its rows: in this process, or in a second one beside the writer.

:func:`open_rows` reads CSV (the csv module) and spreadsheets (python-calamine). :class:`Rows` gives an
import's valid new rows in chunks, each sorted by NIK, with the file's rejected rows, in-file
duplicates and warnings beside them. :func:`read_here` validates in this process, between the
writes; :func:`read_apart` runs the same loop in a second Python process
(``python -m core.services.import_rows``) so that validation and the database's write go on at once
where the write itself holds this process (SQLite's ``executemany`` takes the GIL back for every row,
so a thread cannot overlap it). The second process imports no SQLAlchemy and writes nothing: it reads
the file and sends chunks back as pickled frames on its standard output: row tuples for SQLite, COPY text
lines for PostgreSQL (:mod:`core.db.copy_text`, so that the writer only adds each ticket).

No database here: the faskes the rows may name come in the :class:`ReadJob`.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import gc
import operator
import os
import pickle
import struct
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import chain, islice
from pathlib import Path
from typing import Any, Final, Protocol

from core.db.copy_text import TextChunk
from core.domain.errors import InvalidInput
from core.domain.imports import (
    HEADER_SEARCH_ROWS,
    ColumnMap,
    FaskesInfo,
    RowIssue,
    RowValidator,
    ValidRow,
    find_header,
)

__all__ = ["ReadJob", "RowSource", "Rows", "open_rows", "read_apart", "read_here"]

# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------

_ZIP_MAGIC: Final = b"PK\x03\x04"
_OLE_MAGIC: Final = b"\xd0\xcf\x11\xe0"
_DELIMITERS: Final = (",", ";", "\t", "|")
_SNIFF_BYTES: Final = 1 << 16
_READ_BLOCK: Final = 1 << 20


@dataclass
class RowSource:
    """The rows of one file: ``(line, cells)`` with 1-based lines as a spreadsheet shows them."""

    format: str  # csv | xlsx | xls | ods
    rows: Iterator[tuple[int, Sequence[object]]]
    total: int | None  # lines or sheet rows, for a progress bar
    close: Callable[[], None] = lambda: None


_UNICODE_BOMS = (
    # UTF-32 first: its little-endian mark begins with UTF-16's.
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _detect_encoding(path: Path) -> str:
    """UTF-16/32 by their byte-order mark (Excel's "Unicode text" export); UTF-8 (with or without BOM) when
    the whole file decodes so; else Windows-1252 (Excel's CSV)."""
    with path.open("rb") as fh:
        head = fh.read(4)
    for bom, encoding in _UNICODE_BOMS:
        if head.startswith(bom):
            return encoding
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as fh:
            while block := fh.read(_READ_BLOCK):
                decoder.decode(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8-sig"


def _count_lines(path: Path) -> int:
    lines, last = 0, b"\n"
    with path.open("rb") as fh:
        while block := fh.read(_READ_BLOCK):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def _sniff_delimiter(sample: str) -> str:
    for line in sample.splitlines():
        if line.strip():
            counts = {d: line.count(d) for d in _DELIMITERS}
            best = max(counts, key=lambda d: counts[d])
            return best if counts[best] else ","
    return ","


def _csv_rows(path: Path) -> RowSource:
    encoding = _detect_encoding(path)
    fh = path.open("r", encoding=encoding, errors="replace", newline="")
    delimiter = _sniff_delimiter(fh.read(_SNIFF_BYTES))
    fh.seek(0)
    reader = csv.reader(fh, delimiter=delimiter)

    def rows() -> Iterator[tuple[int, Sequence[object]]]:
        start = 1
        try:
            for cells in reader:
                yield start, cells
                start = reader.line_num + 1
        except csv.Error as exc:
            raise InvalidInput("import_format", line=reader.line_num + 1, problem=str(exc)[:80]) from None

    return RowSource("csv", rows(), _count_lines(path), fh.close)


def _sheet_rows(path: Path, fmt: str) -> RowSource:
    from python_calamine import CalamineWorkbook

    try:
        workbook = CalamineWorkbook.from_path(str(path))
        names = list(workbook.sheet_names)
        first_error: InvalidInput | None = None
        for index in range(len(names)):
            sheet = workbook.get_sheet_by_index(index)
            iterator = iter(sheet.iter_rows())
            head = list(islice(iterator, HEADER_SEARCH_ROWS))
            try:
                find_header(list(enumerate(head, start=1)))
            except InvalidInput as exc:
                first_error = first_error or exc
                continue
            rows = chain(enumerate(head, start=1), enumerate(iterator, start=len(head) + 1))
            return RowSource(fmt, rows, int(sheet.total_height), workbook.close)
    except InvalidInput:
        raise
    except Exception as exc:  # noqa: BLE001 - calamine raises its own error types for broken files
        raise InvalidInput("import_format", problem=type(exc).__name__) from None
    workbook.close()
    raise first_error or InvalidInput("import_empty")


def open_rows(path: Path) -> RowSource:
    """Rows of a CSV (any of , ; tab |, UTF-8 or Windows-1252), xlsx, xls or ods file, told by content."""
    with path.open("rb") as fh:
        magic = fh.read(8)
    if not magic:
        raise InvalidInput("import_empty")
    if magic.startswith(_ZIP_MAGIC):
        fmt = "ods" if _is_ods(path) else "xlsx"
        return _sheet_rows(path, fmt)
    if magic.startswith(_OLE_MAGIC):
        return _sheet_rows(path, "xls")
    return _csv_rows(path)


def _is_ods(path: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return "content.xml" in zf.namelist() and "xl/workbook.xml" not in zf.namelist()
    except zipfile.BadZipFile:
        return False


# --------------------------------------------------------------------------------------------
# Validating, in chunks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadJob:
    """What reading needs besides the file: PL's faskes, the day that bounds birth dates, the districts
    the importer may assign targets to (None: any), how many new rows make a chunk, and whether a chunk
    comes as COPY text lines for PostgreSQL (encoded by the reader, in the second process when there is one)."""

    path: str
    faskes: Mapping[str, FaskesInfo]
    today: date
    allowed_kabkota: Callable[[str], bool] | None
    chunk_rows: int
    copy_text: bool = False  # chunks as PostgreSQL COPY lines (core.db.copy_text.TextChunk)


class Rows(Protocol):
    """A file's valid new rows, chunk by chunk; every chunk sorted by NIK, a NIK seen earlier in the file
    left out (the row is in ``issues`` as ``nik.duplicate_in_file``).

    ``format``, ``total`` (an estimate of the rows, for a progress bar) and ``columns`` are known once
    opened; ``rows`` counts the data rows read so far (blank ones not counted); ``issues`` (rejected
    rows) and ``warnings`` are whole once the chunks have run out.
    """

    format: str
    total: int | None
    columns: ColumnMap
    issues: list[RowIssue]
    warnings: list[RowIssue]

    @property
    def rows(self) -> int: ...

    def __aiter__(self) -> AsyncIterator[Sequence[ValidRow]]: ...

    async def aclose(self) -> None: ...


_BY_NIK: Final = operator.itemgetter(1)  # ValidRow.nik


class _Reading:
    """The validation loop itself, the same in either process; in this one, it is :class:`Rows` itself."""

    def __init__(self, job: ReadJob) -> None:
        self.source = open_rows(Path(job.path))
        try:
            head = list(islice(self.source.rows, HEADER_SEARCH_ROWS))
            self.columns = find_header(head)
            self.validator = RowValidator(
                self.columns, faskes=job.faskes, today=job.today, allowed_kabkota=job.allowed_kabkota
            )
        except BaseException:
            self.source.close()
            raise
        # The rows after the header, then the rest of the file.
        rest = chain((r for r in head if r[0] > self.columns.line), self.source.rows)
        self.format, self.total = self.source.format, self.source.total
        self.rows = 0
        self.issues: list[RowIssue] = []
        self.warnings = self.validator.warnings
        chunks = self._chunks(rest, job.chunk_rows)
        self.chunks: Iterator[Sequence[ValidRow]] = map(TextChunk.of, chunks) if job.copy_text else chunks

    def close(self) -> None:
        self.source.close()

    async def __aiter__(self) -> AsyncIterator[Sequence[ValidRow]]:
        for chunk in self.chunks:  # validated here, as the caller asks for the next one
            yield chunk

    async def aclose(self) -> None:
        self.close()

    def _chunks(self, rows: Iterator[tuple[int, Sequence[object]]], chunk_rows: int) -> Iterator[list[ValidRow]]:
        check, issues = self.validator.check, self.issues
        seen: dict[int, int] = {}  # NIK (as an int, to save memory) -> first line
        chunk: list[ValidRow] = []
        for line, cells in rows:
            result = check(cells, line)
            if result is None:  # a blank row
                continue
            self.rows += 1
            if isinstance(result, ValidRow):
                key = int(result[1])
                first = seen.get(key)
                if first is None:
                    seen[key] = line
                    chunk.append(result)
                    if len(chunk) >= chunk_rows:
                        chunk.sort(key=_BY_NIK)
                        yield chunk
                        chunk = []
                else:
                    self._duplicate(result, first)
            else:
                issues.append(result)
        if chunk:
            chunk.sort(key=_BY_NIK)
            yield chunk

    def _duplicate(self, result: ValidRow, first: int) -> None:
        """A NIK seen earlier in the file: the row is rejected and its warnings dropped."""
        warnings, line = self.warnings, result.line
        while warnings and warnings[-1].line == line:
            warnings.pop()
        self.issues.append(
            RowIssue(line, "rejected", "nik.duplicate_in_file", "nik", f"line={first}", result.nik[:6] + "•" * 10)
        )


async def read_here(job: ReadJob) -> Rows:
    """Open the file and find its header here; validate here, chunk by chunk."""
    return _Reading(job)


# --------------------------------------------------------------------------------------------
# In a second process
# --------------------------------------------------------------------------------------------

_MODULE: Final = "core.services.import_rows"
_ROOT: Final = str(Path(__file__).resolve().parents[2])  # where ``core`` is, for the child's imports
_LENGTH: Final = struct.Struct("<Q")
_PIPE_LIMIT: Final = 1 << 22
# The second process collects its youngest generation every 100,000 allocations (see _rare_gc in
# core.services.imports): it allocates millions of short-lived rows and cells, none in a cycle.
_GC_YOUNG_THRESHOLD: Final = 100_000


class _Apart:
    """:class:`Rows` read and validated by a child process, which works on the next chunk while the
    caller writes this one. Messages (pickled, length-prefixed) on the child's standard output:
    ``("header", format, total, columns)``, then ``("chunk", rows, chunk)`` each (row tuples, or for
    PostgreSQL a :class:`~core.db.copy_text.TextChunk` of COPY lines), then
    ``("end", rows, issues, warnings)``; or ``("error", exception)`` at any point."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self.format = ""
        self.total: int | None = None
        self.columns: ColumnMap
        self.rows = 0
        self.issues: list[RowIssue] = []
        self.warnings: list[RowIssue] = []

    async def _receive(self) -> tuple[Any, ...]:
        out = self._process.stdout
        assert out is not None
        try:
            (size,) = _LENGTH.unpack(await out.readexactly(_LENGTH.size))
            message: tuple[Any, ...] = pickle.loads(await out.readexactly(size))  # noqa: S301 - our own child
        except asyncio.IncompleteReadError:
            code = await self._process.wait()
            raise RuntimeError(f"the import's reading process ended early (exit {code})") from None
        if message[0] == "error":
            raise message[1]
        return message

    async def _open(self) -> None:
        _, self.format, self.total, self.columns = await self._receive()

    async def __aiter__(self) -> AsyncIterator[Sequence[ValidRow]]:
        make = ValidRow._make
        while True:
            message = await self._receive()
            if message[0] == "end":
                _, self.rows, self.issues, self.warnings = message
                return
            _, self.rows, rows = message
            yield rows if isinstance(rows, TextChunk) else list(map(make, rows))

    async def aclose(self) -> None:
        process = self._process
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        await process.wait()


async def read_apart(job: ReadJob) -> Rows:
    """Start a child process that opens the file, finds its header and validates its rows; return once
    the header is known (``InvalidInput`` for a file that is not a target list, as :func:`read_here`)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p))
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            _MODULE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            limit=_PIPE_LIMIT,
        )
    except OSError as exc:  # not PL's failure: the unit of work must not take it for one
        raise RuntimeError(f"the import's reading process did not start: {exc}") from None
    rows = _Apart(process)
    try:
        assert process.stdin is not None
        process.stdin.write(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
        await process.stdin.drain()
        process.stdin.close()
        await rows._open()
    except BaseException:
        await rows.aclose()
        raise
    return rows


def _serve() -> None:
    """The child: read the job from standard input, send the messages of :class:`_Apart`."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to standard error, never between the frames
    gc.set_threshold(_GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])

    def send(*message: object) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_LENGTH.pack(len(data)))
        out.write(data)
        out.flush()

    job: ReadJob = pickle.load(sys.stdin.buffer)  # noqa: S301 - from the parent process
    try:
        reading = _Reading(job)
    except Exception as exc:  # noqa: BLE001 - every failure goes to the parent, which raises it
        send("error", _sendable(exc))
        return
    try:
        send("header", reading.format, reading.total, reading.columns)
        for chunk in reading.chunks:
            send("chunk", reading.rows, chunk if isinstance(chunk, TextChunk) else list(map(tuple, chunk)))
        send("end", reading.rows, reading.issues, reading.warnings)
    except BrokenPipeError:
        pass  # the parent stopped listening: its run has ended
    except Exception as exc:  # noqa: BLE001 - as above
        send("error", _sendable(exc))
    finally:
        reading.close()


def _sendable(exc: Exception) -> Exception:
    """``exc`` if it survives pickling, else a RuntimeError naming it."""
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(exc).__name__}: {exc}"[:300])
    return exc


if __name__ == "__main__":
    _serve()
