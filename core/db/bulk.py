"""Bulk writes of new targets through the driver, inside the unit of work's own transaction.

An import writes up to millions of rows; SQLAlchemy's executemany costs several times what the
database itself does for each. :class:`TargetInserter` sends a chunk straight to the driver on the
session's connection (so in the same transaction: a rollback takes it back like anything else):

* SQLite: a prepared ``INSERT`` by sqlite3's ``executemany`` (in aiosqlite's thread), while the
  caller waits. (Measured at 1.47 M rows: one ``INSERT … SELECT … FROM json_each(?)`` per chunk, which
  leaves the GIL alone so that the next chunk could be validated meanwhile, cost SQLite a third more
  CPU and came out slower; ``executemany`` itself must not overlap a busy thread: it takes the GIL back
  for every row and stalls behind it.)
* PostgreSQL: ``COPY`` of text lines (:mod:`core.db.copy_text`, asyncpg) in a savepoint, for the
  first 60 chunks of a run; a chunk whose COPY meets a NIK or ticket PL holds, and the chunks after
  those 60, go by ``INSERT … SELECT … FROM unnest($1::varchar[], …)``. PostgreSQL works in its own process, so the
  caller validates the next chunk meanwhile (:attr:`TargetInserter.overlaps`).

Rows whose NIK (or ticket) PL already holds are skipped (``ON CONFLICT DO NOTHING``), not an error;
:meth:`TargetInserter.insert` returns how many rows went in, and the caller looks at the others only
when that count falls short (see :mod:`core.services.imports`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any, Final

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.copy_text import LINE_COLUMNS, TAIL_COLUMNS, TextChunk
from core.domain.imports import ValidRow

__all__ = ["TargetInserter"]

# Constant SQL, no values in it: every value is a bound parameter.
_INSERT: Final = (
    "INSERT INTO targets (nik, ticket, name, birth_date, sex, phone, category, assigned_faskes_code, scheduled_date, "
    "source, version, created_at, updated_at) "
)
_SQLITE_ROWS: Final = _INSERT + "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT DO NOTHING"
_POSTGRES: Final = (
    _INSERT  # noqa: S608 - constant text, the values are bound
    + "SELECT u.*, $10::varchar, 1, $11::timestamptz, $11::timestamptz FROM unnest("
    "$1::varchar[], $2::varchar[], $3::varchar[], $4::date[], $5::varchar[], $6::varchar[], $7::varchar[], "
    "$8::varchar[], $9::date[]) AS u ON CONFLICT DO NOTHING"
)
_COPY_COLUMNS: Final = [*LINE_COLUMNS, *TAIL_COLUMNS]
_COPY_SAVEPOINTS: Final = 60


def _driver_errors(dialect: str) -> tuple[type[BaseException], type[BaseException]]:
    """The driver's (integrity error, any other error of its own) classes."""
    if dialect == "postgresql":
        import asyncpg  # type: ignore[import-untyped]

        return asyncpg.IntegrityConstraintViolationError, (asyncpg.PostgresError, asyncpg.InterfaceError)  # type: ignore[return-value]
    import sqlite3

    return sqlite3.IntegrityError, sqlite3.Error


def _sqlite_stamp(moment: datetime) -> str:
    """A UTC datetime as SQLAlchemy stores it in SQLite (``UtcDateTime``: naive UTC, microseconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class TargetInserter:
    """Inserts chunks of new targets on the session's connection (its transaction must have begun)."""

    def __init__(self, dialect: str, driver: Any, *, copy: bool = True) -> None:
        self.dialect = dialect
        self._driver = driver
        self._copy = copy
        self._savepoints = 0
        self._iso: dict[date, str] = {}

    @property
    def overlaps(self) -> bool:
        """Whether the caller may read on while a chunk is written (the insert leaves the GIL alone)."""
        return self.dialect == "postgresql"

    @classmethod
    async def open(cls, session: AsyncSession) -> TargetInserter:
        conn = await session.connection()
        raw = await conn.get_raw_connection()
        dialect = conn.dialect.name
        if dialect in ("sqlite", "postgresql"):
            return cls(dialect, raw.driver_connection)
        raise ValueError(f"no bulk insert for {dialect}")

    async def insert(self, rows: Sequence[ValidRow], tickets: Sequence[str], *, source: str, now: datetime) -> int:
        """Insert ``rows`` with ``tickets`` (one each), created and updated at ``now``, version 1; rows
        whose NIK or ticket PL already holds are skipped. Returns the number inserted.

        The driver's own errors come out as SQLAlchemy's: ``IntegrityError`` (a constraint other than
        the NIK's and the ticket's, e.g. a faskes removed meanwhile) or ``OperationalError``."""
        if not rows:
            return 0
        try:
            if self.dialect == "postgresql":
                return await self._postgres(rows, tickets, source, now)
            return await self._sqlite(rows, tickets, source, now)
        except (IntegrityError, OperationalError):
            raise
        except Exception as exc:
            integrity, driver_error = _driver_errors(self.dialect)
            if isinstance(exc, integrity):
                raise IntegrityError("INSERT INTO targets", None, exc) from exc
            if isinstance(exc, driver_error):
                raise OperationalError("INSERT INTO targets", None, exc) from exc
            raise

    async def _postgres(self, rows: Sequence[ValidRow], tickets: Sequence[str], source: str, now: datetime) -> int:
        driver = self._driver
        if self._copy:
            # COPY costs PostgreSQL (and asyncpg) about a third less than INSERT … SELECT, but knows no
            # ON CONFLICT: inside a savepoint, so that a NIK or ticket PL holds sends this chunk (only)
            # the INSERT way. Few savepoints: past _COPY_SAVEPOINTS (PostgreSQL caches 64 subtransactions
            # per transaction; beyond, every snapshot taken meanwhile gets slower) chunks go the INSERT way.
            # The data go as text lines, made by the reader when it could (core.db.copy_text).
            self._savepoints += 1
            self._copy = self._savepoints < _COPY_SAVEPOINTS
            chunk = rows if isinstance(rows, TextChunk) else TextChunk.of(rows)
            data = memoryview(chunk.payload(tickets, source, now))  # bytes alone would be taken for a path
            import asyncpg

            try:
                async with driver.transaction():
                    await driver.copy_to_table("targets", source=data, columns=_COPY_COLUMNS)
                return len(rows)
            except asyncpg.UniqueViolationError:
                pass  # rolled back to the savepoint: the INSERT way below
        _, niks, names, births, sexes, phones, categories, faskes, scheduled = zip(*rows, strict=True)
        status = await driver.execute(
            _POSTGRES, niks, tickets, names, births, sexes, phones, categories, faskes, scheduled, source, now
        )
        return int(status.rsplit(" ", 1)[-1])  # "INSERT 0 <rows>"

    async def _sqlite(self, rows: Sequence[ValidRow], tickets: Sequence[str], source: str, now: datetime) -> int:
        stamp, day = _sqlite_stamp(now), self._date
        cursor = await self._driver.executemany(
            _SQLITE_ROWS,
            [
                (nik, ticket, name, day(b), sex, phone, cat, fk, sd and day(sd), source, stamp, stamp)
                for (_, nik, name, b, sex, phone, cat, fk, sd), ticket in zip(rows, tickets, strict=True)
            ],
        )
        try:
            return int(cursor.rowcount)
        finally:
            await cursor.close()

    def _date(self, value: date) -> str:
        text = self._iso.get(value)
        if text is None:
            text = value.isoformat()
            if len(self._iso) < 100_000:
                self._iso[value] = text
        return text
