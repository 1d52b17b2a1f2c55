"""Import target lists and generate their tickets ("generate tiket").

``ImportService.run`` reads a SISDMK export or an Excel/CSV list (python-calamine for spreadsheets, the csv
module for text), validates every row (:mod:`core.domain.imports`), and writes the valid new targets, each
with a fresh ticket, in **one transaction**: a file that cannot be read to its end, or a database failure
half-way, leaves nothing behind. Rows are written in chunks straight through the driver on the unit of work's
connection (:mod:`core.db.bulk`: sqlite3 ``executemany``, PostgreSQL ``COPY`` of text lines the reader made),
skipping NIKs PL holds. A file of :data:`READ_APART_BYTES` or more is read and validated in a second process
(:mod:`core.services.import_rows`) while this one writes; on PostgreSQL a chunk is also written while the next
one is received or validated. Only when fewer rows went in than were sent does the chunk look at PL: a NIK PL
holds is left alone (or, with ``update_existing``, updated while the target has no desk entry); a ticket PL
holds is drawn again. A second run of the same file changes no target. The run ends with an
:class:`ImportReport` (counts, and every rejected row with its line and reason), downloadable as CSV or xlsx,
and one ``import.run`` audit event with the counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gc
import io
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Table, bindparam, select, text, update
from sqlalchemy.exc import IntegrityError

from core.db import models
from core.db.bulk import TargetInserter
from core.db.uow import SqlUnitOfWork
from core.domain.audit import AuditDraft
from core.domain.errors import Conflict, InvalidInput
from core.domain.imports import (
    HEADER_SEARCH_ROWS,
    ColumnMap,
    FaskesInfo,
    ImportCounts,
    RowIssue,
    ValidRow,
    generate_tickets,
    neutralize_cell,
)
from core.domain.timeutil import WIT, local_date
from core.services.context import CoreContext
from core.services.import_rows import ReadJob, Rows, RowSource, open_rows, read_apart, read_here
from core.services.tokens import ALL_REGIONS, RegionScope

__all__ = [
    "CHUNK_ROWS",
    "CHUNK_ROWS_POSTGRES",
    "HEADER_SEARCH_ROWS",
    "READ_APART_BYTES",
    "ImportReport",
    "ImportService",
    "Progress",
    "RowSource",
    "open_rows",
    "report_csv",
    "report_xlsx",
]

log = logging.getLogger(__name__)

#: SQLite: larger chunks, each written in NIK order, keep the index writes close together (1.47 M rows:
#: 74-81 k rows/s in 10,000-row chunks, 84-87 k in 40,000; docs/performance.md).
CHUNK_ROWS: Final = 40_000
#: PostgreSQL takes chunks by COPY, each in a savepoint, up to 60 of them: 3 M rows in 50,000-row chunks
#: (1.47 M rows, two runs each: 64 k rows/s in 25,000-row chunks, 68 k in 50,000).
CHUNK_ROWS_POSTGRES: Final = 50_000
#: A file from 8 MiB (about 80,000 CSV rows) is read and validated in a second process while this one writes:
#: 1.47 M CSV rows, interleaved runs, 83-85 k -> 130-134 k rows/s on SQLite and 63-65 k -> 84-89 k on
#: PostgreSQL (docs/performance.md). Below that size a second interpreter's start (~0.2 s) is not worth it.
READ_APART_BYTES: Final = 8 << 20
_LOOKUP_ROWS: Final = 5_000  # NIKs per IN (...) look-up
_RETRIES: Final = 3
_TARGETS: Final[Table] = models.Base.metadata.tables["targets"]

#: ``progress(rows_read, total)``; ``total`` is an estimate (lines or sheet rows), None if unknown.
Progress = Callable[[int, int | None], None]


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportReport:
    """What one run did. ``issues`` holds rejected rows, warnings and existing targets left alone
    because they have a desk entry, ordered by line. NIKs in it are masked."""

    id: str
    filename: str
    format: str
    source: str
    requested_by: str
    update_existing: bool
    dry_run: bool
    started_at: datetime
    seconds: float  # measured (perf_counter), whatever the clock says
    header_line: int
    ignored_columns: tuple[str, ...]
    rows: int
    created: int
    updated: int
    unchanged: int
    locked: int
    rejected: int
    warnings: int
    by_reason: dict[str, int] = field(default_factory=dict)
    issues: tuple[RowIssue, ...] = ()

    @property
    def finished_at(self) -> datetime:
        return self.started_at + timedelta(seconds=self.seconds)

    def summary(self) -> dict[str, Any]:
        """The counts, as JSON primitives (what the audit event records)."""
        return {
            "report_id": self.id,
            "filename": self.filename[:120],
            "format": self.format,
            "source": self.source,
            "requested_by": self.requested_by,
            "update_existing": self.update_existing,
            "dry_run": self.dry_run,
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "locked": self.locked,
            "rejected": self.rejected,
            "warnings": self.warnings,
        }


REPORT_COLUMNS: Final = ("line", "outcome", "reason", "field", "detail", "nik")


def report_csv(report: ImportReport) -> str:
    """The report's rows as CSV (UTF-8 text), each cell neutralised against formula injection."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(REPORT_COLUMNS)
    for issue in report.issues:
        writer.writerow(_issue_cells(issue))
    return out.getvalue()


def _issue_cells(issue: RowIssue) -> list[object]:
    cells = (issue.outcome, issue.reason, issue.field, issue.detail, issue.nik)
    return [issue.line, *(neutralize_cell(v) for v in cells)]


def report_xlsx(report: ImportReport) -> bytes:
    """The report as an Excel workbook: a summary sheet and one row per issue (openpyxl)."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    summary = wb.create_sheet("ringkasan")
    for key, value in report.summary().items():
        summary.append([key, neutralize_cell(value) if isinstance(value, str) else value])
    summary.append(["started_at", report.started_at.isoformat()])
    summary.append(["seconds", round(report.seconds, 3)])
    for reason, count in sorted(report.by_reason.items()):
        summary.append([f"reason:{reason}", count])
    rows = wb.create_sheet("baris")
    rows.append(list(REPORT_COLUMNS))
    for issue in report.issues:
        rows.append(_issue_cells(issue))
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


@dataclass
class _Run:
    columns: ColumnMap
    update_existing: bool
    source: str
    now: datetime
    inserter: TargetInserter
    counts: ImportCounts = field(default_factory=ImportCounts)
    issues: list[RowIssue] = field(default_factory=list)

    def issue(self, issue: RowIssue) -> None:
        self.issues.append(issue)
        by = self.counts.by_reason
        by[issue.reason] = by.get(issue.reason, 0) + 1
        if issue.outcome == "rejected":
            self.counts.rejected += 1


def _at_least(path: Path, size: int | None) -> bool:
    """Whether the file holds ``size`` bytes or more (None: never). Opens it: a file that is missing or
    unreadable raises its own ``OSError`` here, not inside the unit of work (which takes an ``OSError``
    for an unreachable database)."""
    with path.open("rb") as fh:
        return size is not None and os.fstat(fh.fileno()).st_size >= size


_GC_YOUNG_THRESHOLD: Final = 100_000
_gc_holders: list[tuple[int, int, int]] = []  # the thresholds to restore, one per import running


@contextlib.contextmanager
def _rare_gc() -> Iterator[None]:
    """Collect the youngest generation every 100,000 allocations instead of 700 while an import runs.

    An import allocates millions of short-lived tuples (rows, cells, records), none in a cycle; at the
    default threshold the collector kept visiting them and took a fifth of the import's CPU. The
    threshold is process-wide: raised once by the first import running, restored by the last one.
    Nothing is switched off: cycles are still collected, only less often.
    """
    if not _gc_holders:
        current = gc.get_threshold()
        if current[0] < _GC_YOUNG_THRESHOLD:
            gc.set_threshold(_GC_YOUNG_THRESHOLD, *current[1:])
        _gc_holders.append(current)
    else:
        _gc_holders.append(_gc_holders[0])
    try:
        yield
    finally:
        saved = _gc_holders.pop()
        if not _gc_holders:
            gc.set_threshold(*saved)


class ImportService:
    """Imports target lists. A file of ``read_apart_bytes`` or more (None: never) is read and validated in a
    second process (:func:`~core.services.import_rows.read_apart`) while this one writes."""

    def __init__(self, ctx: CoreContext, *, read_apart_bytes: int | None = READ_APART_BYTES) -> None:
        self.ctx = ctx
        self.read_apart_bytes = read_apart_bytes

    async def run(
        self,
        path: Path,
        *,
        filename: str | None = None,
        update_existing: bool = False,
        dry_run: bool = False,
        source: str | None = None,
        regions: RegionScope = ALL_REGIONS,
        requested_by: str = "cli",
        progress: Progress | None = None,
        chunk_rows: int | None = None,
    ) -> ImportReport:
        """Import one file. Raises ``InvalidInput`` (``import_header``, ``import_format``,
        ``import_empty``) for a file that is not a target list, ``Conflict`` when PL keeps refusing a
        chunk, ``Unavailable`` when PL cannot be reached: in every such case nothing is written.

        ``regions`` limits the faskes rows may be assigned to (a regional token must name one);
        ``dry_run`` validates and counts, then rolls back. ``chunk_rows`` defaults to
        :data:`CHUNK_ROWS` (SQLite) or :data:`CHUNK_ROWS_POSTGRES`.
        """
        if source is not None and source not in ("sisdmk", "excel"):
            raise InvalidInput("import_source", got=source[:20])
        started, perf_start = self.ctx.clock.now(), time.perf_counter()
        apart = _at_least(path, self.read_apart_bytes)  # a file that cannot be opened fails here, before PL
        async with self.ctx.uow() as uow:
            sqlite = uow.session.get_bind().dialect.name == "sqlite"
            if sqlite:
                await uow.session.execute(text("PRAGMA cache_size = -65536"))
            default_chunk = CHUNK_ROWS if sqlite else CHUNK_ROWS_POSTGRES
            job = await self._job(uow, path, regions, started, chunk_rows or default_chunk, copy_text=not sqlite)
            rows = await (read_apart(job) if apart else read_here(job))
            try:
                inserter = await TargetInserter.open(uow.session)
                run = _Run(rows.columns, update_existing, source or rows.columns.source, started, inserter)
                with _rare_gc():
                    await self._read_and_write(uow, run, rows, progress)
                report = self._report(run, rows, path, filename, requested_by, dry_run, started, perf_start)
            finally:
                await rows.aclose()
            if dry_run:
                return report
            uow.audit(AuditDraft(action="import.run", entity="import", entity_id=report.id, after=report.summary()))
            await uow.commit()
        log.info(
            "import %s (%s, %s): %d rows, %d created, %d updated, %d unchanged, %d locked, %d rejected in %.1f s",
            report.id,
            report.format,
            report.source,
            report.rows,
            report.created,
            report.updated,
            report.unchanged,
            report.locked,
            report.rejected,
            report.seconds,
        )
        return report

    @staticmethod
    async def _job(
        uow: SqlUnitOfWork, path: Path, regions: RegionScope, now: datetime, chunk_rows: int, *, copy_text: bool
    ) -> ReadJob:
        """What reading the file needs from PL: its faskes, and the districts ``regions`` allows among them."""
        faskes = {
            code: FaskesInfo(kabkota, bool(vaccinator))
            for code, kabkota, vaccinator in (
                await uow.session.execute(
                    select(models.Faskes.code, models.Faskes.kabkota_code, models.Faskes.is_vaccinator)
                )
            ).all()
        }
        allowed = None
        if not regions.everything:
            # A set's own look-up: it goes to a second process as it is (pickled), without this module.
            allowed = frozenset(f.kabkota_code for f in faskes.values() if regions.allows_kabkota(f.kabkota_code))
        return ReadJob(
            path=str(path),
            faskes=faskes,
            today=local_date(now, WIT),  # the latest calendar date anywhere in Indonesia
            allowed_kabkota=None if allowed is None else allowed.__contains__,
            chunk_rows=chunk_rows,
            copy_text=copy_text,
        )

    async def _read_and_write(self, uow: SqlUnitOfWork, run: _Run, rows: Rows, progress: Progress | None) -> None:
        """Write each chunk of ``rows``: while the next one is read when the inserter allows it (PostgreSQL:
        one write in flight), else before reading on (SQLite; a second reading process reads on anyway)."""
        writing: asyncio.Task[None] | None = None
        reported = -1
        try:
            async for chunk in rows:
                tickets = self._fresh_tickets(len(chunk))  # while PostgreSQL writes the last chunk
                if writing is not None:
                    await writing
                    writing = None
                if run.inserter.overlaps:
                    writing = await self._start_write(uow, run, chunk, tickets)
                else:
                    await self._write(uow, run, chunk, tickets)
                if progress is not None and rows.rows != reported:
                    reported = rows.rows
                    progress(reported, rows.total)
            if writing is not None:
                await writing
            writing = None
            run.counts.rows = rows.rows
            for issue in rows.issues:
                run.issue(issue)
            if progress is not None and rows.rows != reported:
                progress(rows.rows, rows.total)
        finally:
            if writing is not None and not writing.done():
                # Reading failed while a chunk was being written: let the write end before the rollback.
                await asyncio.wait([writing])
            if writing is not None and not writing.cancelled():
                writing.exception()  # retrieved: the error that ends the run is the reader's

    async def _start_write(
        self, uow: SqlUnitOfWork, run: _Run, chunk: Sequence[ValidRow], tickets: list[str]
    ) -> asyncio.Task[None]:
        """Start writing ``chunk`` and return once its statement is on its way (the driver's thread or
        PostgreSQL does the work while the caller reads on)."""
        task = asyncio.ensure_future(self._write(uow, run, chunk, tickets))
        await asyncio.sleep(0)
        return task

    async def _write(self, uow: SqlUnitOfWork, run: _Run, chunk: Sequence[ValidRow], tickets: list[str]) -> None:
        """Write one chunk with ``tickets`` (one each) and count what it did. An integrity error that
        ``ON CONFLICT`` does not absorb (a faskes removed meanwhile) ends the run: nothing is written."""
        try:
            created, updated, unchanged, locked = await self._write_chunk(uow, run, chunk, tickets)
        except IntegrityError:
            raise Conflict("import_concurrent_change") from None
        counts = run.counts
        counts.created += created
        counts.updated += updated
        counts.unchanged += unchanged
        counts.locked += len(locked)
        for issue in locked:
            run.issue(issue)

    async def _write_chunk(
        self, uow: SqlUnitOfWork, run: _Run, chunk: Sequence[ValidRow], tickets: list[str]
    ) -> tuple[int, int, int, list[RowIssue]]:
        """Insert the chunk's rows with ``tickets`` (fresh, sorted). When some did not go in, look them up:
        a NIK PL holds is an existing target; a ticket PL holds (rare: 31⁹ tickets) is drawn again, up to
        ``_RETRIES`` draws, then ``Conflict``.

        The rows go in NIK order and the tickets in their own order: both unique indexes then take the
        chunk as one walk from left to right instead of jumps to random pages (1.47 M rows, with the larger
        chunks: +20 % on SQLite and on PostgreSQL). Which new ticket a row gets is random either way."""
        todo, created = chunk, 0  # in NIK order already (see core.services.import_rows)
        existing: dict[str, Any] = {}
        for attempt in range(_RETRIES):
            if attempt:
                tickets = self._fresh_tickets(len(todo))
            inserted = await run.inserter.insert(todo, tickets, source=run.source, now=run.now)
            created += inserted
            if inserted == len(todo):
                break
            held = await self._held(uow, [r.nik for r in todo])
            again = []
            for r, ticket in zip(todo, tickets, strict=True):
                old = held.get(r.nik)
                if old is None:
                    again.append(r)  # its ticket was taken
                elif old.ticket != ticket:
                    existing[r.nik] = old
            todo = again
            if not todo:
                break
            log.warning("import: %d tickets already taken; drawing again (%d)", len(todo), attempt + 1)
        else:
            raise Conflict("import_concurrent_change")
        if not existing:
            return created, 0, 0, []
        if not run.update_existing:
            return created, 0, len(existing), []
        return (created, *await self._update_existing(uow, run, chunk, existing))

    @staticmethod
    async def _held(uow: SqlUnitOfWork, niks: list[str]) -> dict[str, Any]:
        """The targets PL holds for ``niks``: what an update compares and needs."""
        t = _TARGETS
        cols = [
            t.c.nik,
            t.c.ticket,
            t.c.id,
            t.c.first_desk_at,
            t.c.name,
            t.c.birth_date,
            t.c.sex,
            t.c.phone,
            t.c.category,
            t.c.assigned_faskes_code,
            t.c.scheduled_date,
        ]
        held: dict[str, Any] = {}
        for start in range(0, len(niks), _LOOKUP_ROWS):
            part = niks[start : start + _LOOKUP_ROWS]
            for row in (await uow.session.execute(select(*cols).where(t.c.nik.in_(part)))).all():
                held[row.nik] = row
        return held

    async def _update_existing(
        self, uow: SqlUnitOfWork, run: _Run, chunk: Sequence[ValidRow], existing: dict[str, Any]
    ) -> tuple[int, int, list[RowIssue]]:
        """Update existing targets whose data differ, only while they have no desk entry."""
        t = _TARGETS
        idx = run.columns.columns
        has_phone, has_category = "phone" in idx, "category" in idx
        has_faskes, has_sched = "faskes_code" in idx, "scheduled_date" in idx
        locked: list[RowIssue] = []
        candidates: dict[int, dict[str, Any]] = {}
        unchanged = 0
        for r in chunk:
            old = existing.get(r.nik)
            if old is None:
                continue
            if old.first_desk_at is not None:
                locked.append(RowIssue(r.line, "skipped", "existing.has_desk_entry", "nik", "", r.nik[:6] + "•" * 10))
                continue
            # Empty cells never erase what PL holds; absent columns change nothing.
            values = {
                "name": r.name,
                "birth_date": r.birth_date,
                "sex": r.sex,
                "phone": r.phone if has_phone and r.phone is not None else old.phone,
                "category": r.category if has_category else old.category,
                "assigned_faskes_code": (
                    r.faskes_code if has_faskes and r.faskes_code is not None else old.assigned_faskes_code
                ),
                "scheduled_date": (
                    r.scheduled_date if has_sched and r.scheduled_date is not None else old.scheduled_date
                ),
            }
            if all(values[k] == getattr(old, k) for k in values):
                unchanged += 1
            else:
                candidates[old.id] = values
        if candidates:
            # Lock the rows that will change, re-checking "no desk entry": a registration that got there
            # first wins, one that comes later waits for this import to commit.
            free = set(
                (
                    await uow.session.execute(
                        select(t.c.id)
                        .where(t.c.id.in_(list(candidates)), t.c.first_desk_at.is_(None))
                        .with_for_update()
                    )
                ).scalars()
            )
            for target_id in [i for i in candidates if i not in free]:
                del candidates[target_id]
                nik = next(n for n, row in existing.items() if row is not None and row.id == target_id)
                line = next(r.line for r in chunk if r.nik == nik)
                locked.append(RowIssue(line, "skipped", "existing.has_desk_entry", "nik", "", nik[:6] + "•" * 10))
            if candidates:
                stmt = (
                    update(t)
                    .where(t.c.id == bindparam("b_id"), t.c.first_desk_at.is_(None))
                    .values(
                        {name: bindparam(f"b_{name}") for name in next(iter(candidates.values()))}
                        | {"version": t.c.version + 1, "updated_at": bindparam("b_now")}
                    )
                )
                await uow.session.execute(
                    stmt,
                    [
                        {"b_id": target_id, "b_now": run.now, **{f"b_{k}": v for k, v in values.items()}}
                        for target_id, values in candidates.items()
                    ],
                )
        return len(candidates), unchanged, locked

    @staticmethod
    def _fresh_tickets(count: int) -> list[str]:
        """``count`` distinct new tickets, sorted. Whether PL holds one already is the unique index's to
        say: the insert skips such a row, and the row gets another draw."""
        out = list(dict.fromkeys(generate_tickets(count)))
        while len(out) < count:
            out = list(dict.fromkeys(out + generate_tickets(count - len(out))))
        out.sort()
        return out

    @staticmethod
    def _report(
        run: _Run,
        rows: Rows,
        path: Path,
        filename: str | None,
        requested_by: str,
        dry_run: bool,
        started: datetime,
        perf_start: float,
    ) -> ImportReport:
        issues = sorted([*run.issues, *rows.warnings], key=lambda i: (i.line, i.outcome != "rejected"))
        by_reason = dict(run.counts.by_reason)
        for warning in rows.warnings:
            by_reason[warning.reason] = by_reason.get(warning.reason, 0) + 1
        c = run.counts
        return ImportReport(
            id=uuid.uuid4().hex,
            filename=filename or path.name,
            format=rows.format,
            source=run.source,
            requested_by=requested_by,
            update_existing=run.update_existing,
            dry_run=dry_run,
            started_at=started,
            seconds=time.perf_counter() - perf_start,
            header_line=run.columns.line,
            ignored_columns=run.columns.ignored,
            rows=c.rows,
            created=c.created,
            updated=c.updated,
            unchanged=c.unchanged,
            locked=c.locked,
            rejected=c.rejected,
            warnings=len(rows.warnings),
            by_reason=by_reason,
            issues=tuple(issues),
        )
