"""Importing target lists ("generate tiket"): validation, reasons, duplicates, re-runs, all-or-nothing."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.exc import OperationalError

from core.db import models
from core.db.engine import create_sessionmaker
from core.domain.errors import Conflict, InvalidInput, Unavailable
from core.domain.identifiers import normalize_ticket
from core.services.context import CoreContext, NullNotifier
from core.services.imports import ImportReport, ImportService, report_csv, report_xlsx
from core.services.tokens import RegionScope

HEADER = ["Nama", "NIK", "Tgl Lahir", "JK", "No HP", "Kategori", "Kode Faskes", "Tgl Jadwal"]


# --------------------------------------------------------------------------------------------
# Synthetic lists (also used by tests/api/test_import_large.py)
# --------------------------------------------------------------------------------------------


def make_nik(kabkota: str, birth: date, sex: str, serial: int, kecamatan: int = 91) -> str:
    """A valid NIK. Kecamatan 90-99: the demo data set uses 01-20, so these are never in PL."""
    day = birth.day + (40 if sex == "P" else 0)
    return f"{kabkota}{kecamatan:02d}{day:02d}{birth.month:02d}{birth.year % 100:02d}{serial:04d}"


def person(i: int, rng: random.Random, faskes: str = "3273P001", used: set[str] | None = None) -> list[str]:
    sex = "L" if rng.random() < 0.4 else "P"
    birth = date(1962, 1, 1) + timedelta(days=rng.randrange(14000))
    while True:
        nik = make_nik(faskes[:4], birth, sex, rng.randint(1, 9999), rng.randint(90, 99))
        if used is None or nik not in used:
            break
    if used is not None:
        used.add(nik)
    return [
        f"Nakes Sintetis {i}",
        nik,
        birth.strftime("%d-%m-%Y"),
        "Laki-laki" if sex == "L" else "Perempuan",
        f"0812{rng.randrange(10**8):08d}",
        "nakes",
        faskes,
        "2026-11-27",
    ]


def write_csv(path: Path, rows: Sequence[Sequence[Any]], header: Sequence[str] = HEADER, **kw: Any) -> Path:
    encoding = kw.pop("encoding", "utf-8")
    with path.open("w", newline="", encoding=encoding) as fh:
        writer = csv.writer(fh, **kw)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_xlsx(
    path: Path, rows: Sequence[Sequence[Any]], header: Sequence[str] = HEADER, title: str | None = None
) -> Path:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Sasaran")
    if title:
        ws.append([title])
        ws.append([])
    ws.append(list(header))
    for row in rows:
        ws.append(list(row))
    wb.save(path)
    return path


# --------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture
def ctx(engine, clock) -> CoreContext:
    return CoreContext(sessions=create_sessionmaker(engine), clock=clock, notifier=NullNotifier())


@pytest.fixture(params=["read-here", "read-apart"])
def imports(ctx: CoreContext, request: pytest.FixtureRequest) -> ImportService:
    """Every import test runs twice: rows validated in this process, and in a second one (any file size)."""
    return ImportService(ctx, read_apart_bytes=0 if request.param == "read-apart" else None)


async def _scalar(ctx: CoreContext, stmt: Any) -> Any:
    async with ctx.uow() as uow:
        return await uow.session.scalar(stmt)


async def _target_count(ctx: CoreContext) -> int:
    return int(await _scalar(ctx, select(func.count()).select_from(models.Target)))


async def _targets_snapshot(ctx: CoreContext) -> list[tuple[Any, ...]]:
    async with ctx.uow() as uow:
        rows = (await uow.session.execute(text("SELECT * FROM targets ORDER BY id"))).all()
        return [tuple(r) for r in rows]


async def _existing(ctx: CoreContext, n: int = 1) -> list[models.Target]:
    async with ctx.uow() as uow:
        rows = list((await uow.session.execute(select(models.Target).order_by(models.Target.id).limit(n))).scalars())
        uow.session.expunge_all()
        return rows


async def _import_events(ctx: CoreContext) -> list[dict[str, Any]]:
    async with ctx.uow() as uow:
        stmt = select(models.AuditEvent.after).where(models.AuditEvent.action == "import.run")
        return list((await uow.session.execute(stmt)).scalars())


def _reasons(report: ImportReport) -> dict[int, str]:
    return {i.line: i.reason for i in report.issues if i.outcome == "rejected"}


GOOD = [
    "Siti Rahayu",
    make_nik("3273", date(1990, 5, 17), "P", 1),
    "17-05-1990",
    "P",
    "0812-3456-7890",
    "nakes",
    "3273P001",
    "27/11/2026",
]


def row(**changes: str) -> list[str]:
    fields = dict(zip(["name", "nik", "birth", "sex", "phone", "category", "faskes", "sched"], GOOD, strict=True))
    fields.update(changes)
    return list(fields.values())


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


async def test_valid_rows_become_targets_with_tickets(imports: ImportService, ctx: CoreContext, tmp_path) -> None:
    rng = random.Random(1)
    rows = [person(i, rng) for i in range(7)]
    before = await _target_count(ctx)
    report = await imports.run(write_csv(tmp_path / "list.csv", rows))
    assert (report.rows, report.created, report.rejected, report.unchanged) == (7, 7, 0, 0)
    assert report.format == "csv" and report.source == "excel" and report.header_line == 1
    assert await _target_count(ctx) == before + 7
    async with ctx.uow() as uow:
        target = await uow.targets.by_nik(rows[0][1])
        assert target is not None
        assert target.name == rows[0][0] and target.source == "excel" and target.version == 1
        assert target.phone == "+62" + rows[0][4][1:] and target.category == "nakes"
        assert target.assigned_faskes_code == "3273P001" and target.scheduled_date == date(2026, 11, 27)
        assert target.first_desk_at is None
        assert normalize_ticket(target.ticket) == target.ticket
        tickets = (await uow.session.execute(select(models.Target.ticket))).scalars().all()
        assert len(set(tickets)) == len(tickets)


async def test_every_reason_is_reported_with_its_line(imports: ImportService, ctx: CoreContext, tmp_path) -> None:
    async with ctx.uow() as uow:  # one faskes that does not vaccinate
        stmt = update(models.Faskes).where(models.Faskes.code == "3204K001").values(is_vaccinator=False)
        await uow.session.execute(stmt)
        await uow.commit()
    n = iter(range(2, 1000))
    cases = {
        "nik.empty": row(nik=""),
        "nik.not_digits": row(nik="32730A5705900001"),
        "nik.length": row(nik="327301570590001"),
        "nik.province": row(nik="9973015705900001"),
        "nik.date": row(nik="3273019913900001"),
        "nik.serial": row(nik="3273015705900000"),
        "name.empty": row(name="  "),
        "name.too_long": row(name="A" * 121),
        "name.invalid": row(name="12345"),
        "birth_date.empty": row(birth=""),
        "birth_date.invalid": row(birth="31-02-1990"),
        "birth_date.future": row(birth="01-01-2030"),
        "sex.empty": row(sex=""),
        "sex.invalid": row(sex="X"),
        "phone.format": row(phone="0812"),
        "phone.country": row(phone="+1 415 555 0100"),
        "phone.not_mobile": row(phone="022-1234567"),
        "category.unknown": row(category="astronot"),
        "faskes.unknown": row(faskes="9999X999"),
        "faskes.not_vaccinator": row(faskes="3204K001"),
        "scheduled_date.invalid": row(sched="besok"),
    }
    lines = {}
    rows = []
    for i, (reason, r) in enumerate(cases.items()):
        # Distinct valid NIKs where the NIK is not what is being tested.
        if not reason.startswith("nik."):
            r[1] = make_nik("3273", date(1990, 5, 17), "P", 100 + i)
        rows.append(r)
        lines[next(n)] = reason
    report = await imports.run(write_csv(tmp_path / "bad.csv", rows))
    assert _reasons(report) == lines
    assert report.created == 0 and report.rejected == len(cases) == report.rows
    assert all(count == 1 for reason, count in report.by_reason.items() if reason in cases)
    for issue in report.issues:
        assert "57059" not in issue.detail  # never a whole NIK (nor most of one) in a detail
        assert issue.nik == "" or "•" in issue.nik


async def test_region_limited_imports(imports: ImportService, tmp_path) -> None:
    rows = [
        row(nik=make_nik("3273", date(1990, 5, 17), "P", 1)),
        row(nik=make_nik("7371", date(1990, 5, 17), "P", 2), faskes="7371P001"),
        row(nik=make_nik("3273", date(1990, 5, 17), "P", 3), faskes=""),
    ]
    report = await imports.run(write_csv(tmp_path / "r.csv", rows), regions=RegionScope.parse("32"))
    assert _reasons(report) == {3: "faskes.out_of_region", 4: "faskes.missing"}
    assert report.created == 1


async def test_warnings_for_a_nik_that_disagrees(imports: ImportService, tmp_path) -> None:
    rows = [row(birth="18-05-1990", sex="L")]  # the NIK says 17 May 1990, a woman
    report = await imports.run(write_csv(tmp_path / "w.csv", rows))
    assert report.created == 1 and report.warnings == 2
    assert sorted(i.reason for i in report.issues) == ["nik.birth_date_mismatch", "nik.sex_mismatch"]
    assert {i.outcome for i in report.issues} == {"warning"}


async def test_duplicates_in_the_file_keep_the_first(imports: ImportService, ctx: CoreContext, tmp_path) -> None:
    spaced = f"{GOOD[1][:4]}.{GOOD[1][4:8]}-{GOOD[1][8:12]} {GOOD[1][12:]}"
    rows = [row(), row(name="Siti Duplikat"), row(nik=spaced, name="Siti Lagi")]
    report = await imports.run(write_csv(tmp_path / "d.csv", rows))
    assert report.created == 1
    assert _reasons(report) == {3: "nik.duplicate_in_file", 4: "nik.duplicate_in_file"}
    assert [i.detail for i in report.issues] == ["line=2", "line=2"]
    async with ctx.uow() as uow:
        target = await uow.targets.by_nik(GOOD[1])
        assert target is not None and target.name == "Siti Rahayu"


async def test_a_second_run_changes_nothing(imports: ImportService, ctx: CoreContext, tmp_path) -> None:
    rng = random.Random(2)
    rows = [person(i, rng) for i in range(30)] + [row(nik="1")]
    path = write_csv(tmp_path / "again.csv", rows)
    first = await imports.run(path)
    assert (first.created, first.rejected) == (30, 1)
    snapshot = await _targets_snapshot(ctx)
    second = await imports.run(path)
    assert (second.created, second.updated, second.unchanged, second.rejected) == (0, 0, 30, 1)
    assert await _targets_snapshot(ctx) == snapshot
    third = await imports.run(path, update_existing=True)  # same data: nothing to update either
    assert (third.created, third.updated, third.unchanged) == (0, 0, 30)
    assert await _targets_snapshot(ctx) == snapshot


async def test_existing_targets_are_updated_only_when_asked_and_only_before_any_desk_entry(
    imports: ImportService, ctx: CoreContext, tmp_path, clock
) -> None:
    free, registered = await _existing(ctx, 2)
    async with ctx.uow() as uow:
        await uow.session.execute(
            update(models.Target).where(models.Target.id == registered.id).values(first_desk_at=clock.now())
        )
        await uow.commit()

    def listed(t: models.Target, name: str) -> list[str]:
        return [name, t.nik, t.birth_date.isoformat(), t.sex, "", t.category, "", ""]

    path = write_csv(tmp_path / "u.csv", [listed(free, "Nama Baru"), listed(registered, "Nama Lain")])
    plain = await imports.run(path)
    assert (plain.created, plain.updated, plain.unchanged, plain.locked) == (0, 0, 2, 0)
    asked = await imports.run(path, update_existing=True)
    assert (asked.created, asked.updated, asked.unchanged, asked.locked) == (0, 1, 0, 1)
    assert [(i.line, i.outcome, i.reason) for i in asked.issues] == [(3, "skipped", "existing.has_desk_entry")]
    async with ctx.uow() as uow:
        updated = await uow.targets.get(free.id)
        untouched = await uow.targets.get(registered.id)
        assert updated is not None and untouched is not None
        assert (updated.name, updated.version, updated.phone) == ("Nama Baru", free.version + 1, free.phone)
        assert updated.assigned_faskes_code == free.assigned_faskes_code  # an empty cell erases nothing
        assert updated.ticket == free.ticket
        assert (untouched.name, untouched.version) == (registered.name, registered.version)


async def test_one_audit_event_per_run_with_counts_only(imports: ImportService, ctx: CoreContext, tmp_path) -> None:
    report = await imports.run(write_csv(tmp_path / "a.csv", [row(), row(nik="x")]), requested_by="token:1:t")
    [event] = await _import_events(ctx)
    assert event["report_id"] == report.id
    assert (event["rows"], event["created"], event["rejected"], event["requested_by"]) == (2, 1, 1, "token:1:t")
    assert GOOD[1] not in str(event) and "Siti" not in str(event)


async def test_a_dry_run_writes_nothing(imports: ImportService, ctx: CoreContext, tmp_path) -> None:
    before = await _target_count(ctx)
    report = await imports.run(write_csv(tmp_path / "dry.csv", [row()]), dry_run=True)
    assert report.created == 1 and report.dry_run
    assert await _target_count(ctx) == before
    assert await _import_events(ctx) == []


async def test_a_database_failure_half_way_leaves_nothing(
    imports: ImportService, ctx: CoreContext, tmp_path, monkeypatch
) -> None:
    rng = random.Random(3)
    path = write_csv(tmp_path / "half.csv", [person(i, rng) for i in range(10)])
    [existing] = await _existing(ctx)
    real = ImportService._fresh_tickets
    draws: list[int] = []

    def colliding(count):  # the second chunk's tickets collide with a target in PL
        draws.append(count)
        if len(draws) == 1:
            return real(count)
        return [existing.ticket] * count

    monkeypatch.setattr(ImportService, "_fresh_tickets", staticmethod(colliding))
    before = await _targets_snapshot(ctx)
    with pytest.raises(Conflict):
        await imports.run(path, chunk_rows=4)
    # The first chunk, then three tries of the second; PostgreSQL writes while the third chunk's
    # tickets (2) are drawn, SQLite before the third chunk is read.
    assert draws.count(4) == 4 and draws.count(2) <= 1 and len(draws) <= 5
    assert await _targets_snapshot(ctx) == before
    assert await _import_events(ctx) == []


async def test_a_collision_found_by_the_database_is_retried(
    imports: ImportService, ctx: CoreContext, tmp_path, monkeypatch
) -> None:
    rng = random.Random(4)
    path = write_csv(tmp_path / "retry.csv", [person(i, rng) for i in range(5)])
    [existing] = await _existing(ctx)
    real = ImportService._fresh_tickets
    calls = {"n": 0}

    def once_colliding(count):
        calls["n"] += 1
        tickets = real(count)
        return [existing.ticket, *tickets[1:]] if calls["n"] == 1 else tickets

    monkeypatch.setattr(ImportService, "_fresh_tickets", staticmethod(once_colliding))
    report = await imports.run(path)
    assert report.created == 5 and calls["n"] == 2


async def test_an_unexpected_failure_rolls_back_everything(
    imports: ImportService, ctx: CoreContext, tmp_path, monkeypatch
) -> None:
    rng = random.Random(5)
    path = write_csv(tmp_path / "boom.csv", [person(i, rng) for i in range(9)])
    real = ImportService._write_chunk
    calls = {"n": 0}

    async def failing(self, uow, run, chunk, tickets):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OperationalError("INSERT INTO targets", {}, Exception("disk I/O error"))
        return await real(self, uow, run, chunk, tickets)

    monkeypatch.setattr(ImportService, "_write_chunk", failing)
    before = await _target_count(ctx)
    with pytest.raises(Unavailable):  # how the unit of work reports a failing database
        await imports.run(path, chunk_rows=3)
    assert await _target_count(ctx) == before
    assert await _import_events(ctx) == []


async def test_a_file_broken_half_way_leaves_nothing(imports: ImportService, ctx: CoreContext, tmp_path) -> None:
    rng = random.Random(6)
    path = write_csv(tmp_path / "broken.csv", [person(i, rng) for i in range(6)])
    with path.open("a", encoding="utf-8") as fh:
        fh.write('"an unterminated quote,' + "x" * 200_000 + "\n")  # beyond the csv field limit
    before = await _target_count(ctx)
    with pytest.raises(InvalidInput) as err:
        await imports.run(path, chunk_rows=2)
    assert err.value.reason == "import_format"
    assert await _target_count(ctx) == before


async def test_tolerant_headers_encodings_and_delimiters(imports: ImportService, ctx: CoreContext, tmp_path) -> None:
    header = ["NAMA LENGKAP", "No. KTP", "Tanggal Lahir", "Jenis Kelamin (L/P)", "Telepon", "NIP", "Jabatan"]
    rows = [
        [
            "José Müller",
            make_nik("3204", date(1985, 1, 2), "L", 7),
            "1985-01-02",
            "L",
            "+62 813 1111 2222",
            "19850102",
            "Perawat",
        ]
    ]
    path = write_csv(tmp_path / "sisdmk.csv", rows, header=header, delimiter=";", encoding="cp1252")
    report = await imports.run(path)
    assert report.created == 1 and report.source == "sisdmk" and report.ignored_columns == ("nip", "jabatan")
    async with ctx.uow() as uow:
        target = await uow.targets.by_nik(rows[0][1])
        assert target is not None
        assert (target.name, target.category, target.assigned_faskes_code) == ("José Müller", "nakes", None)
        assert target.source == "sisdmk" and target.phone == "+6281311112222"


async def test_xlsx_with_a_title_row_date_cells_and_numeric_cells(
    imports: ImportService, ctx: CoreContext, tmp_path
) -> None:
    nik = make_nik("7371", date(1979, 3, 9), "P", 12)
    rows = [
        ["Andi Hasnah", nik, date(1979, 3, 9), "Perempuan", 81234567890, "lansia", "7371P001", datetime(2026, 12, 1)],
        ["Angka NIK", float(make_nik("7371", date(1979, 3, 9), "P", 13)), date(1979, 3, 9), "P", "", "", "", ""],
    ]
    rows += [
        ["Angka Besar", float(make_nik("9471", date(1979, 3, 9), "L", 14)), date(1979, 3, 9), "L", "", "", "", ""],
        ["Angka Nol", float(make_nik("7371", date(1979, 3, 9), "L", 20)), date(1979, 3, 9), "L", "", "", "", ""],
    ]
    report = await imports.run(write_xlsx(tmp_path / "list.xlsx", rows, title="Daftar Sasaran Kota Makassar"))
    assert (report.format, report.header_line, report.created, report.rejected) == ("xlsx", 3, 3, 1)
    assert [(i.line, i.outcome, i.reason) for i in report.issues] == [
        (6, "rejected", "nik.numeric_cell"),
        (7, "warning", "nik.numeric_cell"),
    ]
    async with ctx.uow() as uow:
        target = await uow.targets.by_nik(nik)
        assert target is not None
        assert (target.birth_date, target.phone, target.category) == (date(1979, 3, 9), "+6281234567890", "lansia")
        assert target.scheduled_date == date(2026, 12, 1)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "import_empty"),
        (b"Nama,Tgl Lahir\nBudi,01-01-1990\n", "import_header"),
        (b"Nama,NIK,NIK,Tgl Lahir,JK\n", "import_header_duplicate"),
        (b"PK\x03\x04 not really a workbook", "import_format"),
    ],
)
async def test_files_that_are_not_target_lists(imports: ImportService, tmp_path, content: bytes, reason: str) -> None:
    path = tmp_path / "x"
    path.write_bytes(content)
    with pytest.raises(InvalidInput) as err:
        await imports.run(path)
    assert err.value.reason == reason


async def test_report_cells_cannot_run_formulas(imports: ImportService, tmp_path) -> None:
    rows = [row(sex='=HYPERLINK("http://x")'), row(nik=make_nik("3273", date(1990, 5, 17), "P", 9), category="+cmd")]
    report = await imports.run(write_csv(tmp_path / "f.csv", rows))
    parsed = list(csv.reader(io.StringIO(report_csv(report))))
    assert parsed[0] == ["line", "outcome", "reason", "field", "detail", "nik"]
    assert parsed[1][:4] == ["2", "rejected", "sex.invalid", "sex"] and parsed[1][4].startswith("'=HYPERLINK")
    assert parsed[2][4] == "'+cmd"
    from openpyxl import load_workbook

    (tmp_path / "r.xlsx").write_bytes(report_xlsx(report))
    wb = load_workbook(tmp_path / "r.xlsx")
    cells = [c.value for c in wb["baris"][2]]
    assert cells[4].startswith("'=") and wb["baris"][2][4].data_type == "s"


async def test_progress_is_reported(imports: ImportService, tmp_path) -> None:
    rng = random.Random(7)
    seen: list[tuple[int, int | None]] = []
    await imports.run(
        write_csv(tmp_path / "p.csv", [person(i, rng) for i in range(10)]),
        chunk_rows=4,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert [d for d, _ in seen] == [4, 8, 10] and all(t == 11 for _, t in seen)


async def test_started_at_comes_from_the_clock(imports: ImportService, tmp_path, clock) -> None:
    report = await imports.run(write_csv(tmp_path / "c.csv", [row()]))
    assert report.started_at == clock.now() == datetime(2026, 11, 26, 3, tzinfo=UTC)
    assert report.seconds >= 0


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-16-be"])
async def test_excel_unicode_text_exports_are_read(imports: ImportService, tmp_path: Path, encoding: str) -> None:
    """Excel's "Unicode text" export is UTF-16 with a byte-order mark: it reads like any CSV."""
    import csv
    import io
    import random

    rng = random.Random(3)
    rows = [person(i, rng) for i in range(3)]
    buf = io.StringIO()
    csv.writer(buf).writerows([HEADER, *rows])
    data = buf.getvalue()
    path = tmp_path / f"list-{encoding}.csv"
    path.write_bytes(("\ufeff" + data).encode(encoding) if encoding.endswith("-be") else data.encode(encoding))
    report = await imports.run(path)
    assert report.created == 3 and report.rejected == 0


# --------------------------------------------------------------------------------------------
# The driver path (core.db.bulk)
# --------------------------------------------------------------------------------------------


async def _stored(ctx: CoreContext, niks: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    """The rows as the database returns them to raw SQL (stored representation), without id and ticket."""
    async with ctx.uow() as uow:
        stmt = text(
            "SELECT nik, name, birth_date, sex, phone, category, assigned_faskes_code, scheduled_date, source, "
            "version, first_desk_at, created_at, updated_at FROM targets WHERE nik IN :niks"
        ).bindparams(bindparam("niks", expanding=True))
        rows = (await uow.session.execute(stmt, {"niks": list(niks)})).all()
        return {r[0]: tuple(r[1:]) for r in rows}


@pytest.mark.parametrize("other_way", [False, True], ids=["executemany-or-copy", "executemany-or-insert"])
async def test_the_driver_writes_what_sqlalchemy_writes(
    imports: ImportService, ctx: CoreContext, tmp_path, clock, monkeypatch, other_way: bool
) -> None:
    """Rows written through the driver are stored exactly as SQLAlchemy's ORM stores the same values."""
    from core.db import bulk

    if other_way:  # PostgreSQL by INSERT … unnest, not COPY (SQLite has one way)
        real_init = bulk.TargetInserter.__init__

        def init(self, dialect, driver, **kw):
            real_init(self, dialect, driver, copy=False)

        monkeypatch.setattr(bulk.TargetInserter, "__init__", init)
    rng = random.Random(11)
    rows = [person(i, rng) for i in range(3)]
    rows[1][4] = ""  # no phone
    rows[1][6] = ""  # no faskes
    rows[2][7] = ""  # no schedule
    rows[2][0] = "José Müller-Ñandú"
    rows[0][0] = "Dewi \\N Sartika\\"  # backslashes mean something to COPY's text format
    report = await imports.run(write_csv(tmp_path / "d.csv", rows), chunk_rows=2)
    assert report.created == 3
    driver = await _stored(ctx, [r[1] for r in rows])
    # The same values through the ORM, under other NIKs.
    async with ctx.uow() as uow:
        for r in rows:
            target = await uow.targets.by_nik(r[1])
            assert target is not None
            uow.session.add(
                models.Target(
                    nik=r[1][:12] + "9" + r[1][13:],
                    ticket=target.ticket[::-1],  # unique, and the check symbol does not matter here
                    name=target.name,
                    birth_date=target.birth_date,
                    sex=target.sex,
                    phone=target.phone,
                    category=target.category,
                    assigned_faskes_code=target.assigned_faskes_code,
                    scheduled_date=target.scheduled_date,
                    source=target.source,
                    version=1,
                    first_desk_at=None,
                    created_at=clock.now(),
                    updated_at=clock.now(),
                )
            )
        await uow.commit()
    orm = await _stored(ctx, [r[1][:12] + "9" + r[1][13:] for r in rows])
    for r in rows:
        assert driver[r[1]] == orm[r[1][:12] + "9" + r[1][13:]]
    assert driver[rows[1][1]][3] is None and driver[rows[1][1]][5] is None and driver[rows[2][1]][6] is None
    assert driver[rows[0][1]][0] == "Dewi \\N Sartika\\"


async def test_new_and_existing_niks_in_one_chunk(imports: ImportService, ctx: CoreContext, tmp_path) -> None:
    rng = random.Random(12)
    old = [person(i, rng) for i in range(4)]
    await imports.run(write_csv(tmp_path / "old.csv", old))
    snapshot = await _targets_snapshot(ctx)
    new = [person(i, rng) for i in range(10, 16)]
    mixed = [new[0], old[0], new[1], new[2], old[1], old[2], new[3], new[4], old[3], new[5]]
    report = await imports.run(write_csv(tmp_path / "mixed.csv", mixed), chunk_rows=4)
    assert (report.rows, report.created, report.unchanged, report.updated) == (10, 6, 4, 0)
    after = await _targets_snapshot(ctx)
    assert after[: len(snapshot)] == snapshot and len(after) == len(snapshot) + 6


async def test_a_driver_failure_in_a_later_chunk_leaves_nothing(
    imports: ImportService, ctx: CoreContext, tmp_path, monkeypatch
) -> None:
    """The driver's own error (not SQLAlchemy's) half-way: the chunks already written are rolled back."""
    import sqlite3

    import asyncpg

    from core.db import bulk

    rng = random.Random(13)
    path = write_csv(tmp_path / "late.csv", [person(i, rng) for i in range(12)])
    real_sqlite, real_postgres = bulk.TargetInserter._sqlite, bulk.TargetInserter._postgres
    calls = {"n": 0}

    async def sqlite_failing(self, rows, tickets, source, now):
        calls["n"] += 1
        if calls["n"] == 3:
            raise sqlite3.OperationalError("disk I/O error")
        return await real_sqlite(self, rows, tickets, source, now)

    async def postgres_failing(self, rows, tickets, source, now):
        calls["n"] += 1
        if calls["n"] == 3:
            raise asyncpg.DiskFullError("could not extend file")
        return await real_postgres(self, rows, tickets, source, now)

    monkeypatch.setattr(bulk.TargetInserter, "_sqlite", sqlite_failing)
    monkeypatch.setattr(bulk.TargetInserter, "_postgres", postgres_failing)
    before = await _targets_snapshot(ctx)
    with pytest.raises(Unavailable):  # the unit of work's word for "PL failed"
        await imports.run(path, chunk_rows=4)
    assert calls["n"] == 3
    assert await _targets_snapshot(ctx) == before
    assert await _import_events(ctx) == []


async def test_collection_thresholds_come_back(imports: ImportService, tmp_path) -> None:
    import gc

    before = gc.get_threshold()
    await imports.run(write_csv(tmp_path / "gc.csv", [row()]))
    assert gc.get_threshold() == before


async def test_a_chunk_goes_in_by_nik_with_its_tickets_in_order(
    imports: ImportService, ctx: CoreContext, tmp_path
) -> None:
    """Rows are written in NIK order and the drawn tickets in theirs, so that both unique indexes take a
    chunk as one walk (the import's speed depends on it; docs/performance.md). The file's order is not."""
    rng = random.Random(9)
    rows = [person(i, rng) for i in range(40)]
    rng.shuffle(rows)
    assert [r[1] for r in rows] != sorted(r[1] for r in rows)
    report = await imports.run(write_csv(tmp_path / "shuffled.csv", rows))
    assert report.created == 40
    async with ctx.uow() as uow:
        stored = (
            await uow.session.execute(
                select(models.Target.nik, models.Target.ticket)
                .where(models.Target.nik.in_([r[1] for r in rows]))
                .order_by(models.Target.id)
            )
        ).all()
    assert [s.nik for s in stored] == sorted(r[1] for r in rows)
    assert [s.ticket for s in stored] == sorted(s.ticket for s in stored)
