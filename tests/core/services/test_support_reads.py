"""The support API's reads (core/services/stats.py) run in read-only units of work.

On SQLite a read-only unit of work begins with a plain ``BEGIN`` (a snapshot) instead of ``BEGIN IMMEDIATE``:
a support engineer's query over months of visits must never hold the write lock the desks queue on, nor wait
for it. Here another connection holds the write lock, as a long registration or an import would, and every
read still answers at once, and so does the token check every request makes (its last_used_at not due). Unmasking
a target's NIK still writes its audit event (on both databases).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select

from core.db import models
from core.services.registry import Services
from core.services.tokens import ALL_REGIONS, Principal
from tests.conftest import TODAY
from tests.core.services.test_registration import FASKES, a_target

SUPPORT = Principal(token_id=1, name="cabang", scopes=frozenset({"read", "unmask"}), regions=ALL_REGIONS)


def reads(services: Services, ticket: str) -> dict[str, Callable[[], Awaitable[Any]]]:
    stats = services.stats
    return {
        "progress": lambda: stats.progress(ALL_REGIONS),
        "recipients": lambda: stats.recipients(ALL_REGIONS, FASKES, TODAY),
        "target": lambda: stats.target(SUPPORT, key=ticket),
        "audit": lambda: stats.audit(ALL_REGIONS),
        "accounts": lambda: stats.accounts(ALL_REGIONS),
        "access_requests": lambda: stats.access_requests(ALL_REGIONS),
        "districts": lambda: stats.districts(ALL_REGIONS),
        "corrections": lambda: stats.corrections(ALL_REGIONS),
        "stuck": lambda: stats.stuck(ALL_REGIONS),
    }


def token_check(services: Services, token: str) -> Callable[[], Awaitable[Any]]:
    return lambda: services.tokens.verify(token)


@pytest.mark.parametrize("demo_db_url", ["sqlite"], indirect=True)
async def test_support_reads_answer_while_a_writer_holds_the_lock(services: Services, demo_db_url: str) -> None:
    target = await a_target(services)
    _, token = await services.tokens.create("cabang", ["read_progress"], ["*"])
    assert await services.tokens.verify(token) is not None  # last_used_at written now: not due again for a minute
    writer = sqlite3.connect(demo_db_url.split("///", 1)[1], isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # the write lock, held
    try:
        checks = {**reads(services, target.ticket), "tokens.verify": token_check(services, token)}
        for name, read in checks.items():
            try:
                await asyncio.wait_for(read(), timeout=5)
            except TimeoutError:
                pytest.fail(f"{name} waited for the write lock")
    finally:
        writer.rollback()
        writer.close()


async def test_unmasking_a_target_is_still_recorded(services: Services) -> None:
    target = await a_target(services)
    await services.stats.target(SUPPORT, key=target.ticket)
    await services.stats.target(SUPPORT, key=target.ticket, unmask=True)
    async with services.ctx.sessions() as s:
        actions = list(
            (
                await s.execute(select(models.AuditEvent.action).where(models.AuditEvent.target_id == target.id))
            ).scalars()
        )
    assert actions == ["target.read_unmasked"]
