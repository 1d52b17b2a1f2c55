"""Item 4 (process killed): a worker is killed with SIGKILL in the middle of a screening; a new
process, with the conversation state in Redis, resumes exactly where the first one was.

The worker is a real process (tests/reliability/worker_script.py) that builds the system with
``api.runtime.build_runtime`` (SQLite file, real Redis), as ``frontdesk serve`` does offline. The first
process opens Budi's screening and takes the temperature (37,2 °C), then the test kills it with
``kill -9``: no shutdown, no flush, no close. The second process gets only the blood pressure and
the two taps; the screening it saves carries the first process' temperature.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.db import models
from core.db.engine import create_engine
from core.ports import FixedClock
from core.services.registry import build_services
from tests.conftest import NOW
from tests.core.services.test_screening_service import actor, pick_target
from tests.reliability.support import record_figures

pytestmark = [pytest.mark.redis, pytest.mark.slow]

SCRIPT = Path(__file__).with_name("worker_script.py")
ROOT = SCRIPT.parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "TELEGRAM_BOT_TOKEN")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _args(phase: str, db: str, redis: str, visit_id: int, first_update: int) -> list[str]:
    return [sys.executable, str(SCRIPT), phase, db, redis, NOW.isoformat(), str(visit_id), str(first_update)]


def _replies(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines if line.startswith("{")]


async def _registered_visit(db: str) -> tuple[int, str]:
    engine = create_engine(db)
    try:
        services = build_services(engine, clock=FixedClock(NOW))
        target = await pick_target(services, category="nakes", max_age=59)
        reg = await services.registration.register(await actor(services, 910001), target.id, target.version)
        return reg.visit_id, target.name
    finally:
        await engine.dispose()


async def _visit(db: str, visit_id: int) -> models.Visit:
    engine = create_engine(db)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(select(models.Visit).where(models.Visit.id == visit_id))).one()
    finally:
        await engine.dispose()


def test_a_conversation_survives_kill_9_with_redis_state(demo_sqlite: str, redis_url: str) -> None:
    visit_id, name = asyncio.run(_registered_visit(demo_sqlite))

    first = subprocess.Popen(
        _args("first", demo_sqlite, redis_url, visit_id, 1_000),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=_env(),
    )
    lines: list[str] = []
    deadline = time.monotonic() + 60
    try:
        assert first.stdout is not None
        while time.monotonic() < deadline:
            line = first.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
            if line.strip() == "READY":
                break
        assert lines and lines[-1] == "READY", (lines, first.stderr.read() if first.poll() is not None else "")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    opened, temperature = _replies(lines)
    assert name in " ".join(opened["texts"])
    assert "37,2" in " ".join(temperature["texts"])  # asked for the blood pressure next

    second = subprocess.run(
        _args("second", demo_sqlite, redis_url, visit_id, 2_000),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=120,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    bp, review, saved = _replies(second.stdout.splitlines())
    assert "37,2 °C · TD 120/80" in " ".join(bp["texts"]), bp  # resumed with the killed process' temperature
    assert "LANJUT" in " ".join(review["texts"]), review
    assert "Tersimpan" in " ".join(saved["texts"]), saved

    visit = asyncio.run(_visit(demo_sqlite, visit_id))
    assert (visit.status, visit.outcome) == ("menunggu_vaksinasi", "lanjut")
    assert visit.temperature_c == Decimal("37.2") and (visit.systolic, visit.diastolic) == (120, 80)
    record_figures("kill9", processes_killed=1, signal="SIGKILL", updates_before_kill=2, updates_after_restart=3)
