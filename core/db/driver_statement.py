"""The hottest reads, compiled once per dialect and run as the driver's SQL on the session's connection.

Through ``session.execute`` every statement pays for SQLAlchemy's statement cache key, parameter and
result processing and the ORM's execution path, about 0.19 ms of CPU for the account's re-check on
PostgreSQL against 0.067 ms as a precompiled string through ``exec_driver_sql`` (same connection, same
transaction, same events and error translation; docs/performance.md). The desk's reads run on nearly every
desk update (the account's re-check, the lists of meja 2 and meja 4, the audit chain's head), so they are worth it.

A :class:`DriverStatement` compiles its Core statement the first time a dialect runs it and keeps what one
execution needs: the SQL text, where each positional parameter comes from (a value the caller passes by name, or
a constant the statement holds, such as a status or a ``LIMIT``), and the dialect's own processing of each
parameter and each column (a date as text on SQLite, the UTC stamp of ``UtcDateTime``). It applies that
processing itself, the same functions SQLAlchemy would call, so a row reads alike either way: a row that needed
none is the driver's result row; one that did is a named tuple of the processed values. A statement whose
dialect takes named parameters, or with a parameter expanded or rendered at execution (``IN`` lists), runs
through ``session.execute`` as before: one statement and one meaning either way.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, Select
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["DriverStatement"]

_Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Plan:
    """The driver's SQL, and per positional parameter where its value comes from; no SQL: SQLAlchemy's way."""

    sql: str | None
    names: tuple[str | None, ...] = ()  # the caller's value by this name; None: the constant below
    constants: tuple[Any, ...] = ()  # already processed
    binds: tuple[_Processor, ...] = ()
    results: tuple[_Processor, ...] | None = None  # None: no column needs processing
    row: Any = None  # the named tuple of a processed row

    def parameters(self, values: dict[str, Any]) -> tuple[Any, ...]:
        out = []
        for name, constant, process in zip(self.names, self.constants, self.binds, strict=True):
            if name is None:
                out.append(constant)
            else:
                value = values[name]
                out.append(value if process is None else process(value))  # None too, as SQLAlchemy does
        return tuple(out)

    def row_of(self, raw: Sequence[Any]) -> Any:
        assert self.results is not None
        return self.row._make(
            value if process is None else process(value) for process, value in zip(self.results, raw, strict=True)
        )


class DriverStatement:
    """A Core ``SELECT`` with bound parameters, run by the driver with the dialect's processing applied here."""

    def __init__(self, statement: Select[*tuple[Any, ...]]) -> None:
        self.statement = statement
        self._plans: dict[tuple[str, str, str], _Plan] = {}  # by dialect, driver and parameter style

    async def first(self, session: AsyncSession, **values: Any) -> Any:
        """The first row for ``values`` (one per bound parameter, by name), or None. A row reads by position and
        by column name."""
        conn = await session.connection()
        plan = self._plan_for(conn.dialect)
        if plan.sql is None:
            return (await session.execute(self.statement, values)).first()
        row = (await conn.exec_driver_sql(plan.sql, plan.parameters(values))).first()
        if row is None or plan.results is None:
            return row
        return plan.row_of(row)

    async def all(self, session: AsyncSession, **values: Any) -> Sequence[Any]:
        """Every row for ``values`` (one per bound parameter, by name)."""
        conn = await session.connection()
        plan = self._plan_for(conn.dialect)
        if plan.sql is None:
            return (await session.execute(self.statement, values)).all()
        rows = (await conn.exec_driver_sql(plan.sql, plan.parameters(values))).all()
        if plan.results is None:
            return rows
        return [plan.row_of(row) for row in rows]

    def _plan_for(self, dialect: Dialect) -> _Plan:
        key = (dialect.name, dialect.driver, dialect.paramstyle)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._plan(dialect)
        return plan

    def _plan(self, dialect: Dialect) -> _Plan:
        compiled = self.statement.compile(dialect=dialect)
        if not compiled.positional or compiled.positiontup is None:
            return _Plan(None)
        names: list[str | None] = []
        constants: list[Any] = []
        binds: list[_Processor] = []
        for position in compiled.positiontup:
            bind = compiled.binds.get(position)
            if bind is None or bind.expanding or bind.literal_execute or bind.callable is not None:
                return _Plan(None)
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.required:  # the caller's value by its name, processed at execution
                if bind.key != position:
                    return _Plan(None)
                names.append(bind.key)
                constants.append(None)
                binds.append(process)
            else:  # a constant of the statement: processed once, here
                value = bind.effective_value
                names.append(None)
                constants.append(value if process is None else process(value))
                binds.append(None)
        try:  # a processor that depends on the driver's type code (PostgreSQL's NUMERIC) refuses None
            results = tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in self.statement.selected_columns
            )
        except Exception:  # noqa: BLE001 - one that needs the driver's type code (PostgreSQL's NUMERIC): SQLAlchemy's way
            return _Plan(None)
        if not any(results):
            return _Plan(compiled.string, tuple(names), tuple(constants), tuple(binds))
        keys = list(self.statement.selected_columns.keys())
        try:
            row = namedtuple("DriverRow", keys)  # type: ignore[misc]
        except ValueError:  # keys that cannot be attribute names
            return _Plan(None)
        return _Plan(compiled.string, tuple(names), tuple(constants), tuple(binds), results, row)
