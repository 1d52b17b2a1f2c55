"""core.db.driver_statement: the hottest reads as the driver's SQL, where nothing needs processing."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import bindparam, event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import models
from core.db.driver_statement import DriverStatement
from core.db.repositories import ACTOR_COLUMNS
from core.services.registry import Services


class Executions:
    """Each statement the engine sends, and whether SQLAlchemy compiled it for this execution."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine.sync_engine
        self.seen: list[tuple[str, bool]] = []

    def _on(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        if not statement.upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")):
            self.seen.append((statement, context.compiled is not None))

    def __enter__(self) -> Executions:
        event.listen(self.engine, "before_cursor_execute", self._on)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._on)


async def _some_account(services: Services) -> Any:
    async with services.ctx.uow() as uow:
        return (await uow.session.execute(select(*ACTOR_COLUMNS).limit(1))).one()


async def test_the_account_re_check_goes_the_driver_way_and_reads_what_the_orm_reads(
    services: Services, engine: AsyncEngine
) -> None:
    expected = await _some_account(services)
    with Executions(engine) as seen:
        async with services.ctx.uow() as uow:
            by_id = await uow.accounts.actor_row(expected.id)
            by_telegram = await uow.accounts.actor_row_by_telegram_id(expected.telegram_id)
            missing = await uow.accounts.actor_row(-1)
    assert tuple(by_id) == tuple(expected) == tuple(by_telegram)
    assert by_id.roles == expected.roles and by_telegram.telegram_id == expected.telegram_id  # by name too
    assert missing is None
    assert len(seen.seen) == 3 and not any(compiled for _, compiled in seen.seen)  # SQL as the driver's


async def test_a_statement_whose_columns_need_processing_goes_sqlalchemys_way(
    services: Services, engine: AsyncEngine
) -> None:
    """A date needs SQLAlchemy's result processing on SQLite: such a statement keeps the ordinary path."""
    statement = DriverStatement(
        select(models.Target.nik, models.Target.birth_date).where(models.Target.nik == bindparam("nik"))
    )
    async with services.ctx.uow() as uow:
        nik = (await uow.session.execute(select(models.Target.nik).limit(1))).scalar_one()
    with Executions(engine) as seen:
        async with services.ctx.uow() as uow:
            row = await statement.first(uow.session, nik=nik)
    assert row is not None and row.nik == nik and isinstance(row.birth_date, date)
    dialect = engine.dialect.name
    compiled_by_sqlalchemy = [compiled for _, compiled in seen.seen]
    # PostgreSQL's driver gives dates itself: the driver's way there; SQLite stores text: SQLAlchemy's way.
    assert compiled_by_sqlalchemy == ([True] if dialect == "sqlite" else [False])
