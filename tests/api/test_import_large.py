"""100,000-row target lists (CSV and xlsx) with a few hundred bad rows: the right rows imported, the report
right, a second run a no-op. Slow: ``pytest -m slow tests/api/test_import_large.py -s`` prints the rates."""

from __future__ import annotations

import os
import random
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from core.db import models
from core.db.engine import create_engine, create_sessionmaker
from core.services.context import CoreContext, NullNotifier
from core.services.imports import ImportService, report_csv
from tests.core.services.test_imports import person, write_csv, write_xlsx

ROWS = 100_000
BAD_EVERY = 333
FASKES = ("3273P001", "3204R001", "7371K001", "7302P001", "9471R001", "9403P001")
BAD_KINDS = (
    "nik.length",
    "phone.not_mobile",
    "faskes.unknown",
    "birth_date.future",
    "nik.duplicate_in_file",
    "sex.invalid",
)

# SQLite is enough; FRONTDESK_LARGE_IMPORT_PG=1 adds PostgreSQL (for measuring).
BACKENDS = (
    ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
    if os.environ.get("FRONTDESK_LARGE_IMPORT_PG")
    else ["sqlite"]
)
pytestmark = [pytest.mark.slow, pytest.mark.parametrize("demo_db_url", BACKENDS, indirect=True)]


def synthetic(rows: int = ROWS, seed: int = 2021) -> tuple[list[list[Any]], dict[int, str]]:
    """Rows (line 2 onwards) and the reason expected for each bad line."""
    rng = random.Random(seed)
    used: set[str] = set()
    out: list[list[Any]] = []
    expected: dict[int, str] = {}
    for i in range(rows):
        r = person(i, rng, FASKES[i % len(FASKES)], used)
        if i % BAD_EVERY == BAD_EVERY - 1:
            kind = BAD_KINDS[(i // BAD_EVERY) % len(BAD_KINDS)]
            if kind == "nik.length":
                r[1] = r[1][:15]
            elif kind == "phone.not_mobile":
                r[4] = "022-1234567"
            elif kind == "faskes.unknown":
                r[6] = "XX000"
            elif kind == "birth_date.future":
                r[2] = "01-01-2031"
            elif kind == "nik.duplicate_in_file":
                r[1] = out[-1][1]
            else:
                r[3] = "?"
            expected[i + 2] = kind
        out.append(r)
    return out, expected


async def _state(ctx: CoreContext) -> tuple[int, int, int]:
    t = models.Target
    async with ctx.uow() as uow:
        row = (await uow.session.execute(select(func.count(), func.max(t.id), func.sum(t.version)))).one()
        return int(row[0]), int(row[1]), int(row[2])


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
async def test_a_hundred_thousand_rows(demo_db_url: str, clock, tmp_path: Path, fmt: str) -> None:
    rows, expected = synthetic()
    started = time.perf_counter()
    if fmt == "csv":
        path = write_csv(tmp_path / "sasaran.csv", rows)
    else:
        for r in rows:  # real date cells where the date is valid, as Excel lists have them
            if r[2] != "01-01-2031":
                r[2] = datetime.strptime(r[2], "%d-%m-%Y").date()
        path = write_xlsx(tmp_path / "sasaran.xlsx", rows, title="Daftar sasaran vaksinasi")
    written = time.perf_counter() - started

    engine = create_engine(demo_db_url)
    try:
        ctx = CoreContext(sessions=create_sessionmaker(engine), clock=clock, notifier=NullNotifier())
        service = ImportService(ctx)
        before = await _state(ctx)
        first = await service.run(path)
        after = await _state(ctx)
        second = await service.run(path)
        again = await _state(ctx)

        bad = len(expected)
        assert 250 <= bad <= 400
        assert (first.rows, first.created, first.rejected, first.unchanged) == (ROWS, ROWS - bad, bad, 0)
        shift = first.header_line - 1  # the xlsx list has a title and a blank row above its header
        assert {i.line: i.reason for i in first.issues if i.outcome == "rejected"} == {
            line + shift: reason for line, reason in expected.items()
        }
        assert after[0] == before[0] + ROWS - bad
        assert (second.created, second.updated, second.unchanged, second.rejected) == (0, 0, ROWS - bad, bad)
        assert again == after  # a second run changes nothing
        assert report_csv(first).count("\r\n") == len(first.issues) + 1

        sample = rows[12_345]
        async with ctx.uow() as uow:
            target = await uow.targets.by_nik(sample[1])
            assert target is not None
            assert (target.name, target.assigned_faskes_code, target.scheduled_date) == (
                sample[0],
                sample[6],
                date(2026, 11, 27),
            )
            tickets = await uow.session.scalar(select(func.count(func.distinct(models.Target.ticket))))
            assert tickets == after[0]
    finally:
        await engine.dispose()
    print(
        f"\n{fmt}: {ROWS} rows ({bad} bad) written in {written:.1f} s; import {first.seconds:.2f} s "
        f"= {ROWS / first.seconds:,.0f} rows/s; second run {second.seconds:.2f} s = {ROWS / second.seconds:,.0f} rows/s"
    )
