"""Migration 0002 (accounts.bot_key) on SQLite and PostgreSQL: up, down and up again, data kept."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Connection, inspect, text

from core.db.engine import create_engine
from core.db.migrate import alembic_config, current_revision, upgrade


async def _downgrade(url: str, revision: str) -> None:
    def run(connection: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)

    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(run)
    finally:
        await engine.dispose()


async def _account_columns(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return {c["name"] for c in await conn.run_sync(lambda c: inspect(c).get_columns("accounts"))}
    finally:
        await engine.dispose()


async def _scalar(url: str, sql: str) -> object:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(sql))
            return result.scalar() if result.returns_rows else None
    finally:
        await engine.dispose()


async def test_bot_key_goes_up_and_down_and_keeps_the_accounts(demo_db_url: str) -> None:
    await _downgrade(demo_db_url, "0002")  # from the head, whatever came after 0002
    assert await current_revision(demo_db_url) == "0002"
    assert "bot_key" in await _account_columns(demo_db_url)
    accounts = await _scalar(demo_db_url, "SELECT count(*) FROM accounts")
    assert await _scalar(demo_db_url, "SELECT count(*) FROM accounts WHERE bot_key IS NOT NULL") == 0

    await _downgrade(demo_db_url, "0001")
    assert await current_revision(demo_db_url) == "0001"
    assert "bot_key" not in await _account_columns(demo_db_url)
    assert await _scalar(demo_db_url, "SELECT count(*) FROM accounts") == accounts

    await upgrade(demo_db_url, "0002")
    assert await current_revision(demo_db_url) == "0002"
    await _scalar(demo_db_url, "UPDATE accounts SET bot_key = 'jabar' WHERE telegram_id = 910010")
    assert await _scalar(demo_db_url, "SELECT bot_key FROM accounts WHERE telegram_id = 910010") == "jabar"
