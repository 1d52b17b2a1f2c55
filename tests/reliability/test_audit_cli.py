"""Item 8: ``frontdesk audit verify`` walks the hash chain and names the first event that was altered
or removed, after rows are edited and deleted directly in the database (as someone with database
access, but not the chain's secrets, would do). Both backends.

The service-level cases (a rehashed forgery, removing the newest events) are in
tests/core/services/test_audit.py; this is the command an operator runs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from api.cli import app
from core.db.engine import create_engine
from core.ports import FixedClock
from core.services.registry import build_services
from tests.conftest import NOW
from tests.core.services.test_screening_service import actor, pick_target
from tests.reliability.support import record_figures

runner = CliRunner()


@pytest.fixture
def env(demo_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", demo_db_url)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return demo_db_url


async def _some_desk_work(url: str) -> int:
    """Three registrations and a screening: a few real audit events."""
    engine = create_engine(url)
    try:
        services = build_services(engine, clock=FixedClock(NOW))
        rina = await actor(services, 910001)
        for i in range(3):
            target = await pick_target(services, category="nakes", max_age=59, skip=i)
            await services.registration.register(rina, target.id, target.version)
        async with engine.connect() as conn:
            return (await conn.execute(text("SELECT count(*) FROM audit_events"))).scalar_one()
    finally:
        await engine.dispose()


async def _sql(url: str, statement: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


def _verify() -> tuple[int, str]:
    result = runner.invoke(app, ["audit", "verify"])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")


def test_audit_verify_names_the_first_altered_then_the_first_removed_event(env: str, request: Any) -> None:
    events = asyncio.run(_some_desk_work(env))
    assert events >= 3
    code, out = _verify()
    assert code == 0 and f"intact: {events} events" in out, out

    # Someone edits an event's content in place (a before/after JSON, the acting account).
    asyncio.run(_sql(env, "UPDATE audit_events SET actor_account_id = 4 WHERE seq = 2"))
    code, out = _verify()
    assert code == 1 and "BROKEN at event 2 (altered)" in out, out

    # ... and deletes an earlier one: the first problem in the chain is named.
    asyncio.run(_sql(env, "DELETE FROM audit_events WHERE seq = 1"))
    code, out = _verify()
    assert code == 1 and "BROKEN at event 1 (missing)" in out, out
    record_figures(f"audit-cli-{request.node.callspec.id}", events=events, tamperings=2, detected=2)
