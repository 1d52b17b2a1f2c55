"""The hottest reads and writes, compiled once per dialect and run as the driver's SQL.

Through ``session.execute`` every statement pays for SQLAlchemy's statement cache key, parameter and
result processing and the ORM's execution path, about 0.19 ms of CPU for the account's re-check on
PostgreSQL against 0.067 ms as a precompiled string through ``exec_driver_sql`` (same connection, same
transaction, same events and error translation; docs/performance.md). The desk's reads run on nearly every
desk update (the account's re-check, the visit a desk works on, the desks' lists, the audit chain's head), so
they are worth it.

A :class:`DriverStatement` compiles its Core statement the first time a dialect runs it and keeps what one
execution needs: the SQL text, where each positional parameter comes from (a value the caller passes by name, or
a constant the statement holds, such as a status or a ``LIMIT``), and the dialect's own processing of each
parameter and each column (a date as text on SQLite, the UTC stamp of ``UtcDateTime``, JSON), chosen as
SQLAlchemy chooses it: a column's from the type the driver reports for it on the first execution. It applies that
processing itself, the same functions SQLAlchemy would call, so a row reads alike either way: a named tuple of the
processed values (through SQLAlchemy's cursor, a row that needed no processing is the cursor's own row). A
statement whose dialect takes named parameters, or with a parameter expanded or rendered at execution (``IN``
lists), runs through ``session.execute`` as before: one statement and one meaning either way.

A :class:`DriverWrite` is the same for a conditional ``UPDATE`` (its row count decides) or an ``INSERT`` (run
once per row in one round trip): on PostgreSQL it runs in the writing unit of work's transaction on the driver
(core/db/driver_pool.py), where a read does too; on SQLite through ``session.execute``. On PostgreSQL a read-only
unit of work's driver statements each borrow a pooled connection (same module).

An :class:`EntityColumns` selects every mapped column of an ORM class beside other columns and reads them back
into an instance of the class, as the ORM's loading fills one, but held by no session: for use cases that only
read what they load (their writes are conditional ``UPDATE`` statements of their own).
"""

from __future__ import annotations

import keyword
from collections import namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Dialect, Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import class_mapper

from core.db.driver_pool import DRIVER, DriverPool, DriverTransaction
from core.db.engine import READ_ONLY_OPTION

__all__ = ["DriverStatement", "DriverWrite", "EntityColumns"]

_Processor = Callable[[Any], Any] | None
_E = TypeVar("_E")


@dataclass(frozen=True, slots=True)
class _Plan:
    """The driver's SQL, and per positional parameter where its value comes from; no SQL: SQLAlchemy's way."""

    sql: str | None
    names: tuple[str | None, ...] = ()  # the caller's value by this name; None: the constant below
    constants: tuple[Any, ...] = ()  # already processed
    binds: tuple[_Processor, ...] = ()
    results: tuple[_Processor, ...] | None = None  # None: not known before the first execution
    row: Any = None  # the named tuple of a row, known with ``results``
    processed: bool = False  # whether any column needs processing

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
        """A row of SQLAlchemy's cursor: itself when no column needs processing (it reads by name already)."""
        return self.named(raw) if self.processed else raw

    def named(self, raw: Sequence[Any]) -> Any:
        """The named tuple of ``raw``'s values, processed."""
        assert self.results is not None
        if not self.processed:
            return self.row._make(raw)
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
        rows = await self._rows(session, values, first=True)
        return rows[0] if rows else None

    async def all(self, session: AsyncSession, **values: Any) -> Sequence[Any]:
        """Every row for ``values`` (one per bound parameter, by name)."""
        return await self._rows(session, values, first=False)

    async def _rows(self, session: AsyncSession, values: dict[str, Any], *, first: bool) -> Sequence[Any]:
        driver = _driver_of(session)
        if driver is not None:
            plan = self._plan_for(driver.dialect)
            if plan.sql is not None:
                records, codes = await driver.fetch(
                    plan.sql, plan.parameters(values), first=first, describe=plan.results is None
                )
                if codes is not None:
                    plan = self._results_known(plan, driver.dialect, codes)
                return [plan.named(record) for record in records]
        conn = await session.connection()
        plan = self._plan_for(conn.dialect)
        if plan.sql is None:
            result = await session.execute(self.statement, values)
        else:
            result = await conn.exec_driver_sql(plan.sql, plan.parameters(values))
            if plan.results is None:
                description = result.cursor.description if result.cursor is not None else None
                width = len(self.statement.selected_columns)
                types: list[Any] = [entry[1] for entry in description] if description else [None] * width
                plan = self._results_known(plan, conn.dialect, types)
        rows = [row for row in (result.first(),) if row is not None] if first else result.all()
        return rows if plan.sql is None else [plan.row_of(row) for row in rows]

    def _plan_for(self, dialect: Dialect) -> _Plan:
        key = _dialect_key(dialect)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._plan(dialect)
        return plan

    def _plan(self, dialect: Dialect) -> _Plan:
        keys = list(self.statement.selected_columns.keys())
        if len(set(keys)) != len(keys) or not all(_field_name(key) for key in keys):
            return _Plan(None)  # a processed row is a named tuple of these names: they must make one
        return _plan_of(self.statement.compile(dialect=dialect), dialect)

    def _results_known(self, plan: _Plan, dialect: Dialect, codes: Sequence[Any]) -> _Plan:
        """The plan with its columns' processing, chosen on the first execution from the types the driver reports
        (``codes``: PostgreSQL's NUMERIC needs processing or not by the type of its column), as SQLAlchemy does."""
        if plan.results is not None:
            return plan
        columns = list(self.statement.selected_columns)
        if len(codes) != len(columns):
            raise RuntimeError("the driver returned other columns than the statement selects")
        results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, code)
            for column, code in zip(columns, codes, strict=True)
        )
        keys = list(self.statement.selected_columns.keys())  # unique names (``_plan``)
        row = namedtuple("DriverRow", keys)  # type: ignore[misc]  # its fields are known at run time only
        known = replace(plan, results=results, row=row, processed=any(results))
        self._plans[_dialect_key(dialect)] = known
        return known


def _field_name(key: str) -> bool:
    """Whether ``key`` can name a field of a named tuple."""
    return key.isidentifier() and not keyword.iskeyword(key) and not key.startswith("_")


def _dialect_key(dialect: Dialect) -> tuple[str, str, str]:
    """What a plan depends on: the dialect, its driver and its parameter style."""
    return (dialect.name, dialect.driver, dialect.paramstyle)


def _plan_of(compiled: Any, dialect: Dialect) -> _Plan:
    """Where each positional parameter of ``compiled`` comes from, and its processing; no SQL (SQLAlchemy's way)
    for a dialect with named parameters or a parameter expanded or rendered at execution."""
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
    return _Plan(compiled.string, tuple(names), tuple(constants), tuple(binds))


def _driver_of(session: AsyncSession) -> DriverPool | DriverTransaction | None:
    """Where a driver statement runs on PostgreSQL (core/db/driver_pool.py): a writing unit of work's transaction
    (the session's own connection); a read-only one's pool, until its session has connected."""
    driver = session.info.get(DRIVER)
    if isinstance(driver, DriverPool) and session.in_transaction():
        return None
    return driver


class DriverWrite:
    """A Core ``UPDATE`` or ``INSERT`` with bound parameters, run by the driver in a writing unit of work's
    transaction on PostgreSQL (core/db/driver_pool.py); elsewhere (SQLite) through ``session.execute``, as before.
    ``columns``: an ``INSERT``'s columns, those the callers' rows carry."""

    def __init__(self, statement: Any, *, columns: Sequence[str] | None = None) -> None:
        self.statement = statement
        self._columns = list(columns) if columns is not None else None
        self._plans: dict[tuple[str, str, str], _Plan] = {}

    async def execute(self, session: AsyncSession, **values: Any) -> int:
        """Run the statement with ``values`` (one per bound parameter, by name): the number of rows it changed."""
        route = self._route(session)
        if route is None:
            result = await session.execute(self.statement, values)
            return int(getattr(result, "rowcount", 0) or 0)
        plan, transaction = route
        assert plan.sql is not None
        return await transaction.execute(plan.sql, plan.parameters(values))

    async def returning(self, session: AsyncSession, **values: Any) -> Any:
        """Run an ``INSERT … RETURNING`` of one column that needs no processing (an id): the value returned."""
        route = self._route(session)
        if route is None:
            return (await session.execute(self.statement, values)).scalar_one()
        plan, transaction = route
        assert plan.sql is not None
        records, _ = await transaction.fetch(plan.sql, plan.parameters(values), first=True, describe=False)
        return records[0][0]

    async def execute_many(self, session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
        """Run the statement once per row of ``rows`` (each: one value per bound parameter, by name)."""
        route = self._route(session)
        if route is None:
            await session.execute(self.statement, list(rows))
            return
        plan, transaction = route
        assert plan.sql is not None
        await transaction.execute_many(plan.sql, [plan.parameters(row) for row in rows])

    def _route(self, session: AsyncSession) -> tuple[_Plan, DriverTransaction] | None:
        """The plan and the transaction to run it in; None: through ``session.execute``."""
        if session.info.get(READ_ONLY_OPTION):
            raise RuntimeError("a read-only unit of work cannot write")
        transaction = session.info.get(DRIVER)
        if not isinstance(transaction, DriverTransaction):
            return None
        dialect = transaction.dialect
        key = _dialect_key(dialect)
        plan = self._plans.get(key)
        if plan is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=self._columns)
            plan = self._plans[key] = _plan_of(compiled, dialect)
        return None if plan.sql is None else (plan, transaction)


class EntityColumns(Generic[_E]):
    """Every mapped column of ``entity``, labelled ``<prefix>_<attribute>``, and the instance read back from them."""

    def __init__(self, entity: type[_E], prefix: str) -> None:
        mapper = class_mapper(entity)
        self._manager = mapper.class_manager
        attributes = [(prop.key, prop.columns[0]) for prop in mapper.column_attrs]
        self.keys: tuple[str, ...] = tuple(key for key, _ in attributes)
        self.columns: tuple[ColumnElement[Any], ...] = tuple(
            column.label(f"{prefix}_{key}") for key, column in attributes
        )
        self.width = len(self.columns)
        key_column = mapper.primary_key[0]
        self._primary = next(i for i, (_, column) in enumerate(attributes) if column is key_column)

    def read(self, row: Sequence[Any], start: int) -> _E | None:
        """The instance whose columns start at ``start`` in ``row``; None when its primary key is NULL (an outer
        join found none). Every column is loaded; the instance belongs to no session."""
        values = row[start : start + self.width]
        if values[self._primary] is None:
            return None
        instance: _E = self._manager.new_instance()
        instance.__dict__.update(zip(self.keys, values, strict=True))
        return instance
