"""The embedded reference sources: the ``ref_jkn`` / ``ref_dukcapil`` tables filled by ``seed-demo``.

The tables live in the same database as PL in the embedded default, but they are another
institution's data: the adapter reads them on a connection of its own, never inside a use case's
unit of work (a reference query must not hold a PL transaction open).

On SQLite, PL's engine starts every transaction with ``BEGIN IMMEDIATE`` (the write lock, see
``core.db.engine``). A lookup does not need that lock, so :func:`reader_engine` gives the adapter a
plain engine on the same file: in WAL mode its reads never wait for PL's writers.
"""

from __future__ import annotations

from sqlalchemy import Table, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.domain.errors import Unavailable
from core.domain.reference import ReferenceRecord, Source, sex_code
from core.references.tables import ref_dukcapil, ref_jkn

__all__ = ["SqlReferenceSource", "reader_engine"]

_TABLES: dict[Source, Table] = {Source.JKN: ref_jkn, Source.DUKCAPIL: ref_dukcapil}


def reader_engine(engine: AsyncEngine) -> tuple[AsyncEngine, bool]:
    """The engine to read reference tables with, and whether the caller owns (and disposes) it.

    PostgreSQL: PL's own engine (its pool hands out a separate connection). SQLite: a plain engine
    on the same file, without PL's ``BEGIN IMMEDIATE``.
    """
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return engine, False  # an in-memory database exists only behind PL's own engine
    url = engine.url.render_as_string(hide_password=False)
    return create_async_engine(url, connect_args={"timeout": 5}), True


class SqlReferenceSource:
    """One reference source read from its table (``ref_jkn`` or ``ref_dukcapil``) by NIK."""

    def __init__(self, engine: AsyncEngine, source: Source, *, owns_engine: bool = False) -> None:
        self.source = source
        self._engine = engine
        self._table = _TABLES[source]
        self._owns_engine = owns_engine

    def __repr__(self) -> str:
        return f"SqlReferenceSource({self.source.value}, {self._engine.dialect.name})"

    async def fetch(self, nik: str) -> ReferenceRecord | None:
        table = self._table
        columns = [table.c.nik, table.c.name, table.c.birth_date, table.c.sex]
        if self.source is Source.JKN:
            columns.append(table.c.card_number)
        try:
            async with self._engine.connect() as conn:
                row = (await conn.execute(select(*columns).where(table.c.nik == nik))).first()
        except (SQLAlchemyError, OSError) as exc:
            # A missing table (no seed-demo), a locked or unreachable database: the source cannot answer.
            raise Unavailable("reference", source=self.source.value, detail="error") from exc
        if row is None:
            return None
        values = row._mapping
        try:
            return ReferenceRecord(
                nik=str(values["nik"]),
                name=str(values["name"]),
                birth_date=values["birth_date"],
                sex=sex_code(str(values["sex"])),
                card_number=values.get("card_number"),
            )
        except ValueError as exc:
            raise Unavailable("reference", source=self.source.value, detail="bad_record") from exc

    async def aclose(self) -> None:
        if self._owns_engine:
            await self._engine.dispose()
