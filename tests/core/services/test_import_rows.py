"""Reading an import file in a second process (core.services.import_rows): the same rows, issues and
errors as reading it here, the work really done over there, and a reading process that dies ends the
import with nothing written."""

from __future__ import annotations

import asyncio
import pickle
import random
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from core.db import models
from core.db.engine import create_sessionmaker
from core.domain.errors import InvalidInput, InvalidNik, NotFound
from core.domain.imports import FaskesInfo, RowValidator
from core.services import import_rows
from core.services.context import CoreContext, NullNotifier
from core.services.import_rows import ReadJob, Rows, read_apart, read_here
from core.services.imports import ImportService
from tests.core.services.test_imports import make_nik, person, write_csv, write_xlsx

FASKES = {
    "3273P001": FaskesInfo("3273", True),
    "7371P001": FaskesInfo("7371", True),
    "3204K001": FaskesInfo("3204", False),
}


def _job(path: Path, chunk_rows: int = 3, allowed: frozenset[str] | None = None) -> ReadJob:
    return ReadJob(
        path=str(path),
        faskes=FASKES,
        today=date(2026, 11, 27),
        allowed_kabkota=None if allowed is None else allowed.__contains__,
        chunk_rows=chunk_rows,
    )


def _mixed_rows() -> list[list[Any]]:
    """Valid rows in two districts, rejected ones, a NIK twice, a row with warnings, a blank row."""
    rng = random.Random(11)
    rows: list[list[Any]] = [person(i, rng) for i in range(9)]
    rows += [person(i, rng, faskes="7371P001") for i in range(9, 12)]
    rows.append([*rows[2][:1], rows[2][1], *rows[2][2:]])  # a NIK the file already had
    bad = person(12, rng)
    bad[1] = bad[1][:-1]  # a digit missing
    rows.append(bad)
    warned = person(13, rng)
    warned[1] = make_nik("3273", date(1990, 5, 17), "P", 77)
    warned[2], warned[3] = "18-05-1990", "Laki-laki"  # the NIK says 17 May, a woman
    rows.append(warned)
    rows.append([""] * 8)
    rows.append(person(14, rng, faskes="3204K001"))  # a faskes that does not vaccinate
    return rows


async def _drain(rows: Rows) -> dict[str, Any]:
    try:
        chunks = [chunk async for chunk in rows]
        return {
            "format": rows.format,
            "total": rows.total,
            "columns": rows.columns,
            "chunks": chunks,
            "rows": rows.rows,
            "issues": rows.issues,
            "warnings": rows.warnings,
        }
    finally:
        await rows.aclose()


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
async def test_reading_apart_gives_what_reading_here_gives(tmp_path: Path, kind: str) -> None:
    rows = _mixed_rows()
    path = write_csv(tmp_path / "l.csv", rows) if kind == "csv" else write_xlsx(tmp_path / "l.xlsx", rows)
    for allowed in (None, frozenset({"3273"})):
        here = await _drain(await read_here(_job(path, allowed=allowed)))
        apart = await _drain(await read_apart(_job(path, allowed=allowed)))
        assert apart == here
        assert here["format"] == kind and here["rows"] == len(rows) - 1  # the blank row is not counted
        chunks = here["chunks"]
        assert all(len(c) <= 3 for c in chunks) and sum(map(len, chunks)) == (13 if allowed is None else 10)
        assert all([r.nik for r in c] == sorted(r.nik for r in c) for c in chunks)
        reasons = sorted(i.reason for i in here["issues"])
        expected = ["faskes.not_vaccinator", "nik.duplicate_in_file", "nik.length"]
        assert reasons == sorted(expected + (["faskes.out_of_region"] * 3 if allowed else []))
        assert sorted(w.reason for w in here["warnings"]) == ["nik.birth_date_mismatch", "nik.sex_mismatch"]


async def test_the_rows_are_validated_in_the_other_process(tmp_path: Path, monkeypatch) -> None:
    """Validation broken here: reading here fails, reading apart does not (it validates over there)."""
    path = write_csv(tmp_path / "l.csv", _mixed_rows())

    def broken(self: RowValidator, cells: Any, line: int) -> Any:
        raise AssertionError("validated in the parent process")

    monkeypatch.setattr(RowValidator, "check", broken)
    apart = await _drain(await read_apart(_job(path)))
    assert sum(map(len, apart["chunks"])) == 13
    with pytest.raises(AssertionError, match="parent process"):
        await _drain(await read_here(_job(path)))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "import_empty"),
        (b"Nomor,Alamat\n1,Jalan\n", "import_header"),
        (b"PK\x03\x04 not really a workbook", "import_format"),
    ],
)
async def test_a_file_that_is_not_a_list_fails_alike_apart(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(InvalidInput) as here:
        await read_here(_job(path))
    with pytest.raises(InvalidInput) as apart:
        await read_apart(_job(path))
    assert type(apart.value) is type(here.value) and apart.value.reason == reason
    assert apart.value.params == here.value.params


def test_core_errors_cross_processes_whole() -> None:
    for error in (InvalidInput("import_header", missing=["nik", "name"]), InvalidNik("length", got=15), NotFound()):
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error)
        assert (again.reason, again.params, again.key) == (error.reason, error.params, error.key)


@pytest.fixture
def ctx(engine, clock) -> CoreContext:
    return CoreContext(sessions=create_sessionmaker(engine), clock=clock, notifier=NullNotifier())


async def _targets(ctx: CoreContext) -> int:
    async with ctx.uow() as uow:
        return int((await uow.session.execute(select(func.count()).select_from(models.Target))).scalar_one())


async def test_a_reading_process_that_dies_ends_the_import_with_nothing_written(
    ctx: CoreContext, tmp_path: Path, monkeypatch
) -> None:
    rng = random.Random(5)
    path = write_csv(tmp_path / "l.csv", [person(i, rng) for i in range(2_000)])
    # This side reads at most ~2 KB ahead: the child, with ~180 KB to send, is still alive after one chunk.
    monkeypatch.setattr(import_rows, "_PIPE_LIMIT", 1024)
    started: list[asyncio.subprocess.Process] = []
    spawn = asyncio.create_subprocess_exec

    async def recorded(*args: Any, **kw: Any) -> asyncio.subprocess.Process:
        started.append(await spawn(*args, **kw))
        return started[-1]

    monkeypatch.setattr(import_rows.asyncio, "create_subprocess_exec", recorded)
    before = await _targets(ctx)

    killed: list[int] = []

    def kill_after_the_first_chunk(done: int, total: int | None) -> None:
        if not killed:
            started[0].kill()
            killed.append(done)

    with pytest.raises(RuntimeError, match="reading process ended early"):
        await ImportService(ctx, read_apart_bytes=0).run(path, chunk_rows=5, progress=kill_after_the_first_chunk)
    assert len(started) == 1 and started[0].returncode is not None and killed == [5]
    assert await _targets(ctx) == before


async def test_files_from_the_threshold_are_read_apart(ctx: CoreContext, tmp_path: Path, monkeypatch) -> None:
    rng = random.Random(6)
    path = write_csv(tmp_path / "l.csv", [person(i, rng) for i in range(4)])
    size = path.stat().st_size
    ways: list[str] = []
    for name in ("read_here", "read_apart"):
        real = getattr(import_rows, name)

        async def spy(job: ReadJob, _real: Any = real, _name: str = name) -> Rows:
            ways.append(_name)
            return await _real(job)

        monkeypatch.setattr(f"core.services.imports.{name}", spy)
    for threshold in (size + 1, size, None):
        await ImportService(ctx, read_apart_bytes=threshold).run(path)
    assert ways == ["read_here", "read_apart", "read_here"]
