"""``frontdesk admin add-dinkes | add-central``: create admins from the command line, with clear errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from api.cli import app
from core.db import models
from core.db.engine import create_engine, create_sessionmaker


@pytest.fixture
def env(demo_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", demo_db_url)
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    return demo_db_url


def read(url: str, telegram_id: int) -> tuple[str, str, str | None, str] | None:
    async def go() -> tuple[str, str, str | None, str] | None:
        engine = create_engine(url)
        try:
            async with create_sessionmaker(engine)() as s:
                a = (
                    await s.execute(select(models.Account).where(models.Account.telegram_id == telegram_id))
                ).scalar_one_or_none()
                return (a.kind, a.state, a.kabkota_code, a.name) if a else None
        finally:
            await engine.dispose()

    return asyncio.run(go())


def audit_actions(url: str) -> list[tuple[str, str]]:
    async def go() -> list[tuple[str, str]]:
        engine = create_engine(url)
        try:
            async with create_sessionmaker(engine)() as s:
                rows = (await s.execute(select(models.AuditEvent).order_by(models.AuditEvent.seq))).scalars()
                return [(e.action, e.actor_role) for e in rows]
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_add_dinkes_creates_an_active_district_admin(env: str) -> None:
    result = CliRunner().invoke(
        app, ["admin", "add-dinkes", "--telegram-id", "950001", "--kabkota", "3204", "--name", "Dinkes Kab. Bandung"]
    )
    assert result.exit_code == 0, result.output
    assert "Kab. Bandung (3204)" in result.output
    assert read(env, 950001) == ("dinkes", "active", "3204", "Dinkes Kab. Bandung")
    assert audit_actions(env) == [("account.grant_dinkes", "system")]


def test_add_dinkes_refuses_an_unknown_kabkota(env: str) -> None:
    result = CliRunner().invoke(
        app, ["admin", "add-dinkes", "--telegram-id", "950002", "--kabkota", "9999", "--name", "Dinkes X"]
    )
    assert result.exit_code == 1
    assert "unknown kabupaten/kota code 9999" in result.output
    assert read(env, 950002) is None and audit_actions(env) == []


def test_add_dinkes_refuses_an_existing_telegram_id(env: str) -> None:
    result = CliRunner().invoke(
        app, ["admin", "add-dinkes", "--telegram-id", "910001", "--kabkota", "3273", "--name", "Dinkes Y"]
    )
    assert result.exit_code == 1
    assert "Telegram id 910001 already has an account (Rina (meja 1))" in result.output
    assert read(env, 910001) == ("faskes", "active", "3273", "Rina (meja 1)")
    assert audit_actions(env) == []


def test_add_central_creates_the_first_central_admin(env: str) -> None:
    result = CliRunner().invoke(app, ["admin", "add-central", "--telegram-id", "950003", "--name", "Admin Pusat Dua"])
    assert result.exit_code == 0, result.output
    assert read(env, 950003) == ("central", "active", None, "Admin Pusat Dua")
    bad = CliRunner().invoke(app, ["admin", "add-central", "--telegram-id", "950004", "--name", "1"])
    assert bad.exit_code == 1 and "at least 2 characters" in bad.output
    assert read(env, 950004) is None


def test_missing_options_show_usage(env: str) -> None:
    result = CliRunner().invoke(app, ["admin", "add-dinkes", "--telegram-id", "950005"])
    assert result.exit_code == 2
    assert read(env, 950005) is None
