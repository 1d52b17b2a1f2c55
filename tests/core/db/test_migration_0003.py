"""Migration 0003 (the desk lists' indexes on visits) on SQLite and PostgreSQL: up, down and up again, and
an upgrade that finds the indexes already built by hand (``CREATE INDEX CONCURRENTLY`` on a live PL)."""

from __future__ import annotations

from sqlalchemy import inspect

from core.db.engine import create_engine
from core.db.migrate import current_revision, upgrade
from tests.core.db.test_migration_0002 import _downgrade, _scalar

INDEXES = {"ix_visits_faskes_screened", "ix_visits_faskes_vaccinated"}


async def visit_indexes(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return {str(i["name"]) for i in await conn.run_sync(lambda c: inspect(c).get_indexes("visits"))}
    finally:
        await engine.dispose()


async def test_the_desk_list_indexes_go_up_and_down_and_keep_the_visits(demo_db_url: str) -> None:
    await _downgrade(demo_db_url, "0003")
    assert await visit_indexes(demo_db_url) >= INDEXES
    visits = await _scalar(demo_db_url, "SELECT count(*) FROM visits")

    await _downgrade(demo_db_url, "0002")
    assert await current_revision(demo_db_url) == "0002"
    assert not INDEXES & await visit_indexes(demo_db_url)
    assert await _scalar(demo_db_url, "SELECT count(*) FROM visits") == visits

    await upgrade(demo_db_url, "0003")
    assert await current_revision(demo_db_url) == "0003"
    assert await visit_indexes(demo_db_url) >= INDEXES


async def test_an_upgrade_keeps_the_indexes_built_beforehand(demo_db_url: str) -> None:
    await _downgrade(demo_db_url, "0002")
    concurrently = " CONCURRENTLY" if demo_db_url.startswith("postgresql") else ""
    for name, column in (
        ("ix_visits_faskes_screened", "screened_at"),
        ("ix_visits_faskes_vaccinated", "vaccinated_at"),
    ):
        await _autocommit(demo_db_url, f"CREATE INDEX{concurrently} {name} ON visits (faskes_code, {column})")

    await upgrade(demo_db_url, "0003")

    assert await current_revision(demo_db_url) == "0003"
    assert await visit_indexes(demo_db_url) >= INDEXES


async def _autocommit(url: str, sql: str) -> None:
    """``CREATE INDEX CONCURRENTLY`` cannot run in a transaction block."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()
