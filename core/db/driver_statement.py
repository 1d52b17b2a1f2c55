"""The hottest reads, compiled once per dialect and run as the driver's SQL on the session's connection.

Through ``session.execute`` every statement pays for SQLAlchemy's statement cache key, parameter and
result processing and the ORM's execution path, about 0.19 ms of CPU for the account's re-check on
PostgreSQL against 0.067 ms as a precompiled string through ``exec_driver_sql`` (same connection, same
transaction, same events and error translation; docs/performance.md). A use case re-reads its account
on nearly every desk update, so that one statement is worth it.

A :class:`DriverStatement` compiles its Core statement the first time a dialect runs it and keeps the
SQL text and the order of its parameters. It takes the driver's way only where the dialect has no bind
or result processing for any of its parameters and columns (plain integers and strings); otherwise, and
for a dialect whose parameters are not positional, it runs through ``session.execute`` as before, so
there is one statement and one meaning either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, Row, Select
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["DriverStatement"]


@dataclass(frozen=True, slots=True)
class _Plan:
    """The driver's SQL and its parameters' names in order; no SQL: SQLAlchemy's way."""

    sql: str | None
    order: tuple[str, ...] = ()


class DriverStatement:
    """A Core ``SELECT`` with bound parameters, run by the driver where nothing needs processing."""

    def __init__(self, statement: Select[*tuple[Any, ...]]) -> None:
        self.statement = statement
        self._plans: dict[tuple[str, str, str], _Plan] = {}  # by dialect, driver and parameter style

    async def first(self, session: AsyncSession, **values: Any) -> Row[Any] | None:
        """The first row for ``values`` (one per bound parameter, by name), or None."""
        conn = await session.connection()
        dialect = conn.dialect
        key = (dialect.name, dialect.driver, dialect.paramstyle)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._plan(dialect)
        if plan.sql is None:
            row: Row[Any] | None = (await session.execute(self.statement, values)).first()
        else:
            row = (await conn.exec_driver_sql(plan.sql, tuple(values[name] for name in plan.order))).first()
        return row

    def _plan(self, dialect: Dialect) -> _Plan:
        compiled = self.statement.compile(dialect=dialect)
        if not compiled.positional or compiled.positiontup is None:
            return _Plan(None)
        for bind in compiled.binds.values():
            if bind.type.dialect_impl(dialect).bind_processor(dialect) is not None:
                return _Plan(None)
        for column in self.statement.selected_columns:
            if column.type.dialect_impl(dialect).result_processor(dialect, None) is not None:
                return _Plan(None)
        return _Plan(compiled.string, tuple(compiled.positiontup))
