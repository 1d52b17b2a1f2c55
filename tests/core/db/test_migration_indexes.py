"""Migrations 0003 (the desk lists' indexes on visits) and 0004 (partial indexes on unfinished visits), on
SQLite and PostgreSQL: up, down and up again, and an upgrade that finds the indexes already built by hand
(``CREATE INDEX CONCURRENTLY`` on a live PL, as docs/scaling.md says)."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from core.db.engine import create_engine
from core.db.migrate import current_revision, upgrade
from tests.core.db.test_migration_0002 import _downgrade, _scalar

UNFINISHED = "WHERE status IN ('menunggu_skrining', 'menunggu_vaksinasi', 'observasi')"
# revision, the one before, the indexes it adds and how an operator builds them beforehand
CASES = [
    (
        "0003",
        "0002",
        {
            "ix_visits_faskes_screened": "(faskes_code, screened_at)",
            "ix_visits_faskes_vaccinated": "(faskes_code, vaccinated_at)",
        },
    ),
    (
        "0004",
        "0003",
        {
            "ix_visits_unfinished_day": f"(service_date, faskes_code) {UNFINISHED}",
            "ix_visits_unfinished_faskes": f"(faskes_code, service_date) {UNFINISHED}",
        },
    ),
]
REVISIONS = pytest.mark.parametrize(("revision", "previous", "indexes"), CASES, ids=[c[0] for c in CASES])


async def visit_indexes(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return {str(i["name"]) for i in await conn.run_sync(lambda c: inspect(c).get_indexes("visits"))}
    finally:
        await engine.dispose()


@REVISIONS
async def test_the_indexes_go_up_and_down_and_keep_the_visits(
    demo_db_url: str, revision: str, previous: str, indexes: dict[str, str]
) -> None:
    await _downgrade(demo_db_url, revision)
    assert await visit_indexes(demo_db_url) >= set(indexes)
    visits = await _scalar(demo_db_url, "SELECT count(*) FROM visits")

    await _downgrade(demo_db_url, previous)
    assert await current_revision(demo_db_url) == previous
    assert not set(indexes) & await visit_indexes(demo_db_url)
    assert await _scalar(demo_db_url, "SELECT count(*) FROM visits") == visits

    await upgrade(demo_db_url, revision)
    assert await current_revision(demo_db_url) == revision
    assert await visit_indexes(demo_db_url) >= set(indexes)


@REVISIONS
async def test_an_upgrade_keeps_the_indexes_built_beforehand(
    demo_db_url: str, revision: str, previous: str, indexes: dict[str, str]
) -> None:
    await _downgrade(demo_db_url, previous)
    concurrently = " CONCURRENTLY" if demo_db_url.startswith("postgresql") else ""
    for name, definition in indexes.items():
        await _autocommit(demo_db_url, f"CREATE INDEX{concurrently} {name} ON visits {definition}")

    await upgrade(demo_db_url, revision)

    assert await current_revision(demo_db_url) == revision
    assert await visit_indexes(demo_db_url) >= set(indexes)


async def _autocommit(url: str, sql: str) -> None:
    """``CREATE INDEX CONCURRENTLY`` cannot run in a transaction block."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()
