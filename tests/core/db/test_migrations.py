"""The same migrations build the PL database on SQLite and PostgreSQL, and its constraints hold."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from core.db import models
from core.db.engine import create_engine
from core.db.migrate import alembic_config, current_revision

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


async def test_upgrade_creates_every_table_and_reference_data(db_url: str) -> None:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None and head >= "0004"
    assert await current_revision(db_url) == head
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            assert set(models.Base.metadata.tables) <= tables
            intervals = (await conn.execute(text("SELECT count(*) FROM vaccine_intervals"))).scalar_one()
            assert intervals == 11
            head = (await conn.execute(select(models.AuditHead.seq, models.AuditHead.hash))).one()
            assert head == (0, "0" * 64)
    finally:
        await engine.dispose()


async def _minimal_target(conn, nik: str = "3273014508900001") -> int:  # type: ignore[no-untyped-def]
    await conn.execute(insert(models.Province).values(code="32", name="Jawa Barat", timezone="Asia/Jakarta"))
    await conn.execute(
        insert(models.KabKota).values(code="3273", province_code="32", name="Kota Bandung", timezone="Asia/Jakarta")
    )
    await conn.execute(
        insert(models.Faskes).values(
            code="3273P001", name="Puskesmas Garuda", kabkota_code="3273", kind="puskesmas", is_vaccinator=True
        )
    )
    await conn.execute(
        insert(models.Account).values(
            telegram_id=1,
            name="A",
            kind="faskes",
            roles="meja1",
            faskes_code="3273P001",
            state="active",
            locale="id",
            version=1,
            created_at=NOW,
        )
    )
    result = await conn.execute(
        insert(models.Target).values(
            nik=nik,
            ticket="ABCDE12345",
            name="Siti",
            birth_date=date(1990, 8, 5),
            sex="P",
            category="nakes",
            source="demo",
            version=1,
            created_at=NOW,
            updated_at=NOW,
        )
    )
    return int(result.inserted_primary_key[0])


def _visit(target_id: int, **extra: object) -> dict[str, object]:
    return {
        "target_id": target_id,
        "dose_number": 1,
        "faskes_code": "3273P001",
        "service_date": date(2026, 11, 26),
        "status": "menunggu_skrining",
        "is_open": True,
        "version": 1,
        "opened_at": NOW,
        "opened_by": 1,
        "rujuk": False,
        **extra,
    }


async def test_one_open_visit_per_target_is_enforced_by_the_database(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            tid = await _minimal_target(conn)
            await conn.execute(insert(models.Visit).values(_visit(tid)))
            # A closed visit for the same target is fine...
            await conn.execute(insert(models.Visit).values(_visit(tid, status="tunda", is_open=False)))
        # ...a second open one is not.
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(insert(models.Visit).values(_visit(tid)))
    finally:
        await engine.dispose()


async def test_one_vaccination_per_dose_is_enforced_by_the_database(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            tid = await _minimal_target(conn)
            await conn.execute(
                insert(models.Visit).values(_visit(tid, status="selesai", is_open=False, vaccinated_at=NOW))
            )
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(
                    insert(models.Visit).values(_visit(tid, status="observasi", is_open=False, vaccinated_at=NOW))
                )
    finally:
        await engine.dispose()


async def test_nik_and_ticket_are_unique(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await _minimal_target(conn)
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(
                    insert(models.Target).values(
                        nik="3273014508900001",
                        ticket="ZZZZZ12345",
                        name="X",
                        birth_date=date(1990, 8, 5),
                        sex="P",
                        category="nakes",
                        source="demo",
                        version=1,
                        created_at=NOW,
                        updated_at=NOW,
                    )
                )
    finally:
        await engine.dispose()


async def test_times_come_back_aware_in_utc(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await _minimal_target(conn)
        async with engine.connect() as conn:
            created = (await conn.execute(select(models.Target.created_at))).scalar_one()
        assert created == NOW and created.tzinfo is not None
    finally:
        await engine.dispose()
