"""The desks read today's visits, however long the faskes' history (SQLite and PostgreSQL).

Meja 2's list has a second half, today's Tunda (editable), and meja 4's one, today's observations. Tunda
visits and observations never closed stay in PL for good; the lists must not read them all each time a
nurse saves (indexes ``ix_visits_faskes_screened`` and ``ix_visits_faskes_vaccinated``). A faskes is given
a history of 4,000 such visits on earlier days, then the statement each list runs is examined as the
database plans it: PostgreSQL by ``EXPLAIN ANALYZE`` (how many visit rows it touched), SQLite by ``EXPLAIN
QUERY PLAN`` (every access to ``visits`` narrowed by a second indexed column, not by the faskes alone).
The same for meja 4's form, which offers the batch the vaccinator used last today.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import event, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import models
from core.db.driver_pool import DriverPool
from core.domain.visits import VisitStatus
from core.services.registry import Services
from tests.conftest import NOW, TODAY
from tests.core.services.test_registration import FASKES, MEJA1, MEJA2, MEJA4, account_id, actor
from tests.core.services.test_vaccination_service import screened_visit

DAYS, PER_DAY = 50, 40  # 2,000 old Tunda and 2,000 old observations at the faskes
TODAYS = 3  # and 3 of each today


async def add_history(services: Services) -> int:
    async with services.ctx.sessions() as s:
        targets = list(
            (await s.execute(select(models.Target.id).order_by(models.Target.id.desc()).limit(100))).scalars()
        )
    opened_by, vaccinator = await account_id(services, MEJA1), await account_id(services, MEJA4)
    rows: list[dict[str, Any]] = []
    for d in range(1, DAYS + 1):
        day, at = TODAY - timedelta(days=d), NOW - timedelta(days=d)
        common = {"faskes_code": FASKES, "service_date": day, "version": 1, "opened_at": at, "opened_by": opened_by}
        for i in range(PER_DAY):
            n = (d - 1) * PER_DAY + i
            rows.append(
                {
                    **common,
                    "target_id": targets[n % 100],
                    "dose_number": 1,
                    "status": VisitStatus.TUNDA.value,
                    "is_open": False,
                    "outcome": "tunda",
                    "screened_at": at,
                }
            )
            rows.append(  # a dose number per target of its own (one vaccination per dose)
                {
                    **common,
                    "target_id": targets[n % 100],
                    "dose_number": 10 + n // 100,
                    "status": VisitStatus.OBSERVASI.value,
                    "is_open": False,
                    "outcome": "lanjut",
                    "screened_at": at,
                    "vaccinated_at": at,
                    "vaccinated_by": vaccinator,
                    "batch": "OLD1",
                }
            )
    today = {"faskes_code": FASKES, "service_date": TODAY, "version": 1, "opened_at": NOW, "opened_by": opened_by}
    for i in range(TODAYS):  # and today's, which the lists show
        rows.append(
            {
                **today,
                "target_id": targets[i],
                "dose_number": 8,
                "status": VisitStatus.TUNDA.value,
                "is_open": False,
                "outcome": "tunda",
                "screened_at": NOW,
            }
        )
        rows.append(
            {
                **today,
                "target_id": targets[i],
                "dose_number": 9,
                "status": VisitStatus.OBSERVASI.value,
                "is_open": False,
                "outcome": "lanjut",
                "screened_at": NOW,
                "vaccinated_at": NOW,
            }
        )
    async with services.ctx.sessions() as s:
        await s.execute(insert(models.Visit), rows)
        await s.commit()
        await s.execute(text("ANALYZE"))
        await s.commit()
    return len(rows)


_SKIP = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|PRAGMA|SET|SHOW)\b", re.IGNORECASE)


class Captured:
    """The statements an engine sends while the block runs (transaction control left out): ``calls``, every
    execution in order; ``statements``, each distinct statement once with one set of its parameters."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine.sync_engine
        self.driver = DriverPool.of(engine) if engine.dialect.name == "postgresql" else None
        self.calls: list[tuple[str, Any]] = []

    def _on(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool) -> None:
        if not _SKIP.match(statement):
            self.calls.append((statement, parameters[0] if executemany else parameters))

    def _on_driver(self, kind: str, _key: int, statement: str, parameters: Any) -> None:
        if kind == "statement":  # on asyncpg itself (core/db/driver_pool.py)
            self.calls.append((statement, tuple(parameters)))

    def __enter__(self) -> Captured:
        event.listen(self.engine, "before_cursor_execute", self._on)
        if self.driver is not None:
            self.driver.listeners.append(self._on_driver)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._on)
        if self.driver is not None:
            self.driver.listeners.remove(self._on_driver)

    @property
    def statements(self) -> list[tuple[str, Any]]:
        first: dict[str, Any] = {}
        for statement, parameters in self.calls:
            first.setdefault(statement, parameters)
        return list(first.items())


async def statement_of(
    engine: AsyncEngine, call: Callable[[], Awaitable[Any]], marker: str = "FROM visits JOIN targets"
) -> tuple[str, Any]:
    """The statement (and parameters) containing ``marker`` (the desk list's), sent once while ``call`` runs."""
    with Captured(engine) as captured:
        await call()
    seen = [(statement, parameters) for statement, parameters in captured.calls if marker in statement]
    assert len(seen) == 1, seen
    return seen[0]


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of a PostgreSQL plan (``EXPLAIN (FORMAT JSON)``), the root first."""
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += plan_nodes(child)
    return nodes


def visit_rows_touched(plan: dict[str, Any]) -> int:
    """Rows of ``visits`` a PostgreSQL plan read: those returned and those thrown away by a filter."""
    return sum(
        (
            node.get("Actual Rows", 0)
            + node.get("Rows Removed by Filter", 0)
            + node.get("Rows Removed by Index Recheck", 0)
        )
        * node.get("Actual Loops", 1)
        for node in plan_nodes(plan)
        if node.get("Relation Name") == "visits"
    )


async def examine(engine: AsyncEngine, statement: str, parameters: Any) -> tuple[str, int | None]:
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            result = await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters)
            raw = result.scalar_one()
            plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
            return json.dumps(plan), visit_rows_touched(plan)
        result = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        return "\n".join(str(row[-1]) for row in result), None


def assert_narrowed(plan: str, touched: int | None, history: int, index: str) -> None:
    if touched is not None:  # PostgreSQL: today's rows only, not the history; and no walk of a whole index
        assert 0 < touched < history / 20, plan
        accesses = [
            node
            for node in plan_nodes(json.loads(plan))
            if node.get("Relation Name") == "visits"
            or str(node.get("Index Name", "")).startswith(("ix_visits", "pk_visits"))
        ]
        assert accesses, plan
        for node in accesses:
            assert node["Node Type"] != "Seq Scan", plan
            if "Index Name" in node:
                assert "faskes_code" in node.get("Index Cond", ""), plan
        assert index in plan, plan
        return
    accesses = [line for line in plan.splitlines() if re.search(r"\bvisits\b", line)]
    assert accesses, plan
    for line in accesses:  # SQLite: each access to visits narrowed beyond the faskes
        assert re.search(r"SEARCH visits USING (COVERING )?INDEX \w+ \(faskes_code=\? AND \w+", line), plan
    assert index in plan, plan


async def test_meja2_reads_todays_tunda_without_reading_the_faskes_history(
    services: Services, engine: AsyncEngine
) -> None:
    history = await add_history(services)
    meja2 = await actor(services, MEJA2)
    statement, parameters = await statement_of(engine, lambda: services.screening.queue(meja2))
    plan, touched = await examine(engine, statement, parameters)
    assert_narrowed(plan, touched, history, "ix_visits_faskes_screened")
    queue = await services.screening.queue(meja2)
    assert [e.dose_number for e in queue.editable] == [8] * TODAYS  # today's Tunda, none of the old ones


async def test_meja4_reads_todays_observations_without_reading_the_faskes_history(
    services: Services, engine: AsyncEngine
) -> None:
    history = await add_history(services)
    meja4 = await actor(services, MEJA4)
    statement, parameters = await statement_of(engine, lambda: services.vaccination.queue(meja4))
    plan, touched = await examine(engine, statement, parameters)
    assert_narrowed(plan, touched, history, "ix_visits_faskes_vaccinated")
    queue = await services.vaccination.queue(meja4)
    assert [e.dose_number for e in queue.observing] == [9] * TODAYS  # today's observations only


async def test_meja4_reads_the_days_last_batch_without_reading_the_history(
    services: Services, engine: AsyncEngine
) -> None:
    """Opening the dose form offers the batch the vaccinator used last today (``_last_batch``)."""
    visit_id, _ = await screened_visit(services)
    history = await add_history(services)
    meja4 = await actor(services, MEJA4)
    statement, parameters = await statement_of(
        engine,
        lambda: services.vaccination.open(meja4, visit_id),
        marker="SELECT visits.product_code, visits.batch, visits.expiry",
    )
    plan, touched = await examine(engine, statement, parameters)
    assert_narrowed(plan, touched, history, "ix_visits_faskes_vaccinated")
