"""The in-process reference cache (core/db/repositories.py ReferenceCache, one per CoreContext).

Faskes with their district, districts, vaccine products and intervals are read once and answered from
memory for 300 s (monotonic time), read again after that or after ``ctx.forget_references()``; the copies
are frozen values, never ORM objects. Runs on SQLite and PostgreSQL (the ``services`` fixture).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import event, insert, inspect, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import models, repositories
from core.db.repositories import DistrictRef, FaskesRef, ProductRef, VaccineTables
from core.domain.vaccines import IntervalRule
from core.services.registry import Services
from tests.core.services.test_registration import MEJA1, a_target, actor

FASKES = "3273P001"
REFERENCE_READ = re.compile(r"\bFROM (faskes|kabkota|vaccine_products|vaccine_intervals)\b")


class Statements:
    """The SQL an engine sends while the block runs (whitespace collapsed)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine.sync_engine
        self.seen: list[str] = []

    def _on(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.seen.append(" ".join(statement.split()))

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._on)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._on)

    def reference_reads(self) -> list[str]:
        return [s for s in self.seen if REFERENCE_READ.search(s)]


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """The cache's monotonic clock, by hand: ``monotonic[0] += 299``. Only the module's name ``time`` is
    replaced (the event loop keeps the real clock)."""
    now = [1_000.0]
    monkeypatch.setattr(repositories, "time", SimpleNamespace(monotonic=lambda: now[0]))
    yield now


async def place(services: Services, code: str = FASKES) -> tuple[FaskesRef, DistrictRef] | None:
    async with services.ctx.uow(read_only=True) as uow:
        return await uow.references.place(code)


async def district(services: Services, code: str) -> DistrictRef | None:
    async with services.ctx.uow(read_only=True) as uow:
        return await uow.references.district(code)


async def vaccines(services: Services) -> VaccineTables:
    async with services.ctx.uow(read_only=True) as uow:
        return await uow.references.vaccines()


async def test_reference_rows_are_answered_from_memory_within_the_ttl(
    services: Services, engine: AsyncEngine, monotonic: list[float]
) -> None:
    with Statements(engine) as sql:
        found = await place(services)
        tables = await vaccines(services)
    assert found is not None and tables.products and tables.intervals
    assert len(sql.reference_reads()) == 3  # faskes joined with kabkota; products; intervals

    monotonic[0] += 299.9
    with Statements(engine) as sql:
        assert await place(services) == found
        assert await district(services, found[1].code) == found[1]  # remembered with the place
        assert await vaccines(services) is tables
    assert sql.reference_reads() == []


async def test_a_lookup_reads_the_reference_tables_once(services: Services, engine: AsyncEngine) -> None:
    """The use cases read through the cache: the second card of a lookup reads no reference table."""
    target = await a_target(services)
    rina = await actor(services, MEJA1)
    with Statements(engine) as sql:
        first = await services.lookup.find(rina, target.ticket)
    assert sql.reference_reads(), "the first lookup reads the faskes (and its district)"
    with Statements(engine) as sql:
        again = await services.lookup.find(rina, target.ticket)
    assert sql.reference_reads() == [] and again == first


async def test_reference_rows_are_read_again_after_the_ttl(
    services: Services, engine: AsyncEngine, monotonic: list[float]
) -> None:
    found = await place(services)
    assert found is not None
    await vaccines(services)
    monotonic[0] += 300.1
    with Statements(engine) as sql:
        assert await place(services) == found
        await vaccines(services)
        await district(services, found[1].code)  # read again with the place just now: fresh
    assert len(sql.reference_reads()) == 3

    monotonic[0] += 300.1
    with Statements(engine) as sql:
        assert await district(services, found[1].code) == found[1]
    assert len(sql.reference_reads()) == 1


async def test_an_edit_reaches_the_cache_after_the_ttl_or_forget_references(
    services: Services, monotonic: list[float]
) -> None:
    before = await place(services)
    tables = await vaccines(services)
    assert before is not None
    async with services.ctx.sessions() as s:
        await s.execute(update(models.Faskes).where(models.Faskes.code == FASKES).values(name="Puskesmas Baru"))
        await s.execute(update(models.VaccineInterval).values(min_days=99))
        await s.commit()

    # Within the TTL the copy is trusted, as documented.
    assert await place(services) == before and await vaccines(services) == tables

    services.ctx.forget_references()
    after = await place(services)
    assert after is not None and after[0].name == "Puskesmas Baru" and after[1] == before[1]
    assert {rule.min_days for rule in (await vaccines(services)).intervals} == {99}

    async with services.ctx.sessions() as s:
        await s.execute(update(models.Faskes).where(models.Faskes.code == FASKES).values(name="Puskesmas Lagi"))
        await s.commit()
    monotonic[0] += 301
    again = await place(services)
    assert again is not None and again[0].name == "Puskesmas Lagi"


async def test_a_missing_row_is_not_remembered(services: Services, engine: AsyncEngine) -> None:
    assert await place(services, "9999X999") is None
    found = await place(services)
    assert found is not None
    async with services.ctx.sessions() as s:
        await s.execute(
            insert(models.Faskes).values(
                code="9999X999", name="Klinik Baru", kabkota_code=found[0].kabkota_code, kind=found[0].kind
            )
        )
        await s.commit()
    with Statements(engine) as sql:
        added = await place(services, "9999X999")
    assert added is not None and added[0].name == "Klinik Baru" and len(sql.reference_reads()) == 1


async def test_each_context_has_its_own_copy(services: Services, engine: AsyncEngine) -> None:
    from core.services.registry import build_services

    other = build_services(engine, clock=services.ctx.clock)
    assert other.ctx.reference_cache is not services.ctx.reference_cache
    await place(services)
    with Statements(engine) as sql:
        await place(other)
    assert len(sql.reference_reads()) == 1


def _values(cache: repositories.ReferenceCache) -> list[object]:
    out: list[object] = []
    for stamp, *refs in cache._places.values():
        assert isinstance(stamp, float)
        out += refs
    for _stamp, ref in cache._districts.values():
        out.append(ref)
    assert cache._vaccines is not None
    tables = cache._vaccines[1]
    out += [tables, *tables.products, *tables.intervals]
    return out


async def test_the_cache_keeps_frozen_values_not_orm_objects(services: Services) -> None:
    found = await place(services)
    tables = await vaccines(services)
    assert found is not None
    faskes, kabkota = found
    assert type(faskes) is FaskesRef and type(kabkota) is DistrictRef
    assert all(type(p) is ProductRef for p in tables.products)
    assert all(type(r) is IntervalRule for r in tables.intervals)
    assert isinstance(tables.products, tuple) and isinstance(tables.intervals, tuple)

    values = _values(services.ctx.reference_cache)
    assert len(values) >= 4
    for value in values:
        assert not isinstance(value, models.Base)
        assert inspect(value, raiseerr=False) is None  # nothing SQLAlchemy maps or tracks
        assert dataclasses.is_dataclass(value) and type(value).__dataclass_params__.frozen  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        faskes.name = "changed"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        tables.intervals[0].min_days = 1  # type: ignore[misc]
