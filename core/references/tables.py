"""The embedded stand-ins of the two external reference sources: MasterFile JKN and Dukcapil.

In production these are other institutions' systems (BPJS Kesehatan, the civil registry), queried
over the network by NIK. For the demo and the tests they are two plain tables in the same database,
filled by :mod:`core.db.seed`. They are deliberately **not** PL tables: their metadata is separate
from ``core.db.models.Base`` (Alembic does not manage them), and they are created on demand by
:func:`create_reference_tables`.

Both hold names as the sources do: upper case, without titles ("SITI NURHALIZA"); compare them with
``core.domain.names.names_match``, never with ``==``.
"""

from __future__ import annotations

from sqlalchemy import Column, Date, MetaData, String, Table
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["create_reference_tables", "ref_dukcapil", "ref_jkn", "reference_metadata"]

reference_metadata = MetaData()

#: MasterFile JKN (BPJS Kesehatan): membership master data by NIK.
ref_jkn = Table(
    "ref_jkn",
    reference_metadata,
    Column("nik", String(16), primary_key=True),
    # 13 digits, leading zeros significant: text, never a number.
    Column("card_number", String(13), nullable=False, unique=True),
    Column("name", String(120), nullable=False),
    Column("birth_date", Date, nullable=False),
    Column("sex", String(1), nullable=False),  # L | P
)

#: Dukcapil (civil registry): population data by NIK.
ref_dukcapil = Table(
    "ref_dukcapil",
    reference_metadata,
    Column("nik", String(16), primary_key=True),
    Column("name", String(120), nullable=False),
    Column("birth_date", Date, nullable=False),
    Column("sex", String(1), nullable=False),  # L | P
    Column("kabkota_code", String(4), nullable=False),  # where the person is registered
)


async def create_reference_tables(conn: AsyncConnection) -> None:
    """Create ``ref_jkn`` and ``ref_dukcapil`` when they do not exist (in the caller's transaction)."""
    await conn.run_sync(reference_metadata.create_all, checkfirst=True)
