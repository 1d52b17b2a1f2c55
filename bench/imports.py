"""Import speed: the health-worker list (1.47 million rows) as CSV and as xlsx, into an empty PL.

The files look like a Dinkes/SISDMK export: a title line, a header with the usual Indonesian
names ("Nama", "NIK", "Tanggal Lahir", "Jenis Kelamin", "No HP", ...), a running number, dates as
``dd-mm-yyyy`` text in the CSV and as real dates in the workbook, phones as ``08…``. About 1 % of
the rows are wrong the way real lists are (a NIK with a digit missing, a NIK twice), so the
import's reject path is part of the figure.

The xlsx is written with openpyxl's write-only mode. Both files are kept in the bench cache
(``bench.common.cache_dir``) and reused while the row count and generator are the same.

The import itself is ``core.services.imports.ImportService.run`` on a freshly migrated PL holding
the bench regions and faskes and no targets: one transaction, tickets generated, audit event and
all. The figure is rows read per second of the service's own measured time.
"""

from __future__ import annotations

import csv
import itertools
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import cache_dir
from bench.seed import Spec, target_rows

HEADER = ("No", "Nama", "NIK", "Tanggal Lahir", "Jenis Kelamin", "No HP", "Kategori", "Kode Faskes",
          "Tanggal Jadwal")
TITLE = "DAFTAR SASARAN VAKSINASI COVID-19 TENAGA KESEHATAN (bench)"
GENERATOR_VERSION = 2
BAD_NIK_EVERY = 211  # a digit missing
DUPLICATE_EVERY = 997  # the NIK of the row before


def _rows(rows: int, spec: Spec) -> Any:
    previous_nik = None
    for i, (nik, _ticket, name, birth, sex, phone, category, faskes, day) in enumerate(
        target_rows(Spec(targets=rows, faskes=spec.faskes, teams=0, seed=spec.seed + 17))
    ):
        shown = nik
        if i % BAD_NIK_EVERY == BAD_NIK_EVERY - 1:
            shown = nik[:-1]
        elif i % DUPLICATE_EVERY == DUPLICATE_EVERY - 1 and previous_nik:
            shown = previous_nik
        previous_nik = nik
        yield i + 1, name, shown, birth, sex, "0" + phone[3:], category, faskes, day


def _stem(rows: int, spec: Spec) -> str:
    return f"import-v{GENERATOR_VERSION}-{rows}-f{spec.faskes}-s{spec.seed}"


def csv_file(rows: int, spec: Spec, *, log: Any = print) -> Path:
    path = cache_dir() / f"{_stem(rows, spec)}.csv"
    if path.exists():
        return path
    started = time.perf_counter()
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([TITLE])
        w.writerow(HEADER)
        w.writerows(
            (no, name, nik, birth.strftime("%d-%m-%Y"), sex, phone, cat, fk, day.strftime("%d-%m-%Y"))
            for no, name, nik, birth, sex, phone, cat, fk, day in _rows(rows, spec)
        )
    tmp.replace(path)
    log(f"  import: wrote {rows:,}-row CSV in {time.perf_counter() - started:.1f} s")
    return path


def xlsx_file(rows: int, spec: Spec, *, log: Any = print) -> Path:
    from openpyxl import Workbook

    path = cache_dir() / f"{_stem(rows, spec)}.xlsx"
    if path.exists():
        return path
    started = time.perf_counter()
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Sasaran")
    ws.append([TITLE])
    ws.append(list(HEADER))
    for row in _rows(rows, spec):
        ws.append(list(row))
    tmp = path.with_suffix(".tmp.xlsx")
    wb.save(tmp)
    tmp.replace(path)
    log(f"  import: wrote {rows:,}-row xlsx in {time.perf_counter() - started:.1f} s")
    return path


async def import_floor(path: Path, database_url: str, *, limit: int = 10_000_000) -> dict[str, float]:
    """Rows per second of each part of an import alone (the whole file): reading the file
    (the csv module / python-calamine), reading and validating (``RowValidator``), drawing tickets,
    and writing pre-validated rows through the driver alone (sqlite3 ``executemany`` / asyncpg
    ``COPY``) into a scratch copy of the table. What the service could reach, and where it spends."""
    from itertools import islice

    from sqlalchemy.engine import make_url

    from core.domain.imports import FaskesInfo, RowValidator, ValidRow, find_header, generate_tickets
    from core.domain.timeutil import WIT, local_date
    from core.services.imports import HEADER_SEARCH_ROWS, open_rows

    out: dict[str, float] = {}
    # read (opening included: python-calamine parses the sheet when it is opened)
    started = time.perf_counter()
    source = open_rows(path)
    n = sum(1 for _ in islice(source.rows, limit))
    out["read_rows_per_s"] = n / (time.perf_counter() - started)
    source.close()
    # read + validate (opening included, as above)
    started = time.perf_counter()
    source = open_rows(path)
    head = list(islice(source.rows, HEADER_SEARCH_ROWS))
    columns = find_header(head)
    from bench.seed import faskes_codes

    faskes = {code: FaskesInfo(kk, True) for code, kk in faskes_codes(Spec(targets=0, faskes=_faskes_in(path)))}
    validator = RowValidator(columns, faskes=faskes, today=local_date(datetime.now(UTC), WIT))
    rows = [r for r in head if r[0] > columns.line]
    valid: list[ValidRow] = []
    seen: set[int] = set()
    for line, cells in itertools.chain(rows, islice(source.rows, limit - len(rows))):
        result = validator.validate(cells, line)
        if isinstance(result, ValidRow) and int(result.nik) not in seen:  # the service's in-file duplicates
            seen.add(int(result.nik))
            valid.append(result)
    elapsed = time.perf_counter() - started
    out["read_validate_rows_per_s"] = (len(rows) + (n - len(rows))) / elapsed if elapsed else 0.0
    source.close()
    # tickets
    started = time.perf_counter()
    tickets = list(dict.fromkeys(generate_tickets(len(valid))))  # a draw may repeat (about n² / 5e13)
    while len(tickets) < len(valid):
        tickets = list(dict.fromkeys(tickets + generate_tickets(len(valid) - len(tickets))))
    out["tickets_per_s"] = len(valid) / (time.perf_counter() - started)
    # write through the driver alone
    now = datetime.now(UTC)
    url = make_url(database_url)
    started = time.perf_counter()
    if url.get_backend_name() == "sqlite":
        import sqlite3

        con = sqlite3.connect(url.database)
        try:
            con.execute("CREATE TEMP TABLE t AS SELECT * FROM targets WHERE 0")
            con.execute("CREATE UNIQUE INDEX temp.t_nik ON t (nik)")
            con.execute("CREATE UNIQUE INDEX temp.t_ticket ON t (ticket)")
            stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f")
            con.executemany(
                "INSERT INTO t (nik, ticket, name, birth_date, sex, phone, category, assigned_faskes_code, "
                "scheduled_date, source, version, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(r.nik, tk, r.name, r.birth_date.isoformat(), r.sex, r.phone, r.category, r.faskes_code,
                  r.scheduled_date.isoformat() if r.scheduled_date else None, "excel", 1, stamp, stamp)
                 for r, tk in zip(valid, tickets, strict=True)],
            )
            con.commit()
        finally:
            con.close()
    else:
        import asyncpg

        con = await asyncpg.connect(str(url.set(drivername="postgresql")))
        try:
            await con.execute("CREATE TEMP TABLE t (LIKE targets INCLUDING DEFAULTS INCLUDING INDEXES)")
            await con.copy_records_to_table(
                "t",
                records=[(r.nik, tk, r.name, r.birth_date, r.sex, r.phone, r.category, r.faskes_code,
                          r.scheduled_date, "excel", 1, now, now) for r, tk in zip(valid, tickets, strict=True)],
                columns=["nik", "ticket", "name", "birth_date", "sex", "phone", "category", "assigned_faskes_code",
                         "scheduled_date", "source", "version", "created_at", "updated_at"],
            )
        finally:
            await con.close()
    out["driver_write_rows_per_s"] = len(valid) / (time.perf_counter() - started)
    out["floor_rows"] = n
    return out


def _faskes_in(path: Path) -> int:
    """The faskes count the file was generated for (it is in the cached file's name)."""
    for part in path.stem.split("-"):
        if part.startswith("f") and part[1:].isdigit():
            return int(part[1:])
    return 500


async def run_import(cfg: dict[str, Any]) -> dict[str, Any]:
    """Import one file into the (empty) PL at ``database_url``; rows per second."""
    from core.db.engine import create_engine
    from core.services.imports import ImportService
    from core.services.registry import build_services

    floor = await import_floor(Path(cfg["path"]), cfg["database_url"]) if cfg.get("floor") else {}
    engine = create_engine(cfg["database_url"])
    try:
        services = build_services(engine)
        started = time.perf_counter()
        report = await ImportService(services.ctx).run(Path(cfg["path"]), requested_by="bench")
        wall = time.perf_counter() - started
    finally:
        await engine.dispose()
    return {
        "floor": floor,
        "format": report.format,
        "rows": report.rows,
        "created": report.created,
        "rejected": report.rejected,
        "warnings": report.warnings,
        "seconds": report.seconds,
        "wall_seconds": wall,
        "rows_per_s": report.rows / report.seconds if report.seconds else 0.0,
    }
