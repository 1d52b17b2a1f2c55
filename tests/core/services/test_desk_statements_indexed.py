"""Every statement of a whole visit reaches the large tables through an index (SQLite and PostgreSQL).

PL holds 200 million targets, visits pile up by 2 million a day and audit events by 8 million: a desk
statement that reads one of them without an index works on a test database and stalls the country. A
visit goes through the services (lookup, registration, meja 2's list, form and save, meja 4's list, form,
record and observation, the Daftar Penerima Vaksin) over a faskes with a history, every statement is
captured, and the database is asked how it would run each one:

* PostgreSQL, with sequential scans, merge and hash joins and materialised inner scans switched off (what
  a small test table makes look cheap and a table of millions does not): no sequential scan of a large
  table, and every index it uses is entered by its leading column (not walked whole);
* SQLite (``EXPLAIN QUERY PLAN``): no ``SCAN`` of a large table (with or without an index), only ``SEARCH``,
  and no skip-scan (``ANY(column)``: an index entered without its leading column).
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from core.domain.visits import KipiOutcome
from core.services.registry import Services
from tests.core.services.test_desk_list_history import add_history
from tests.core.services.test_registration import MEJA1, MEJA2, MEJA4, actor
from tests.core.services.test_screening_service import NORMAL, all_no, pick_target

LARGE = ("targets", "visits", "audit_events", "accounts", "corrections", "access_requests")
_SKIP = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|PRAGMA|SET|SHOW)\b", re.IGNORECASE)


async def a_whole_visit(services: Services, engine: AsyncEngine) -> list[tuple[str, Any]]:
    """The distinct statements (with one set of parameters each) of one visit from lookup to observation."""
    target = await pick_target(services, category="nakes", max_age=59)
    await add_history(services)
    meja1, meja2, meja4 = [await actor(services, t) for t in (MEJA1, MEJA2, MEJA4)]
    seen: dict[str, Any] = {}

    def on(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool) -> None:
        if not _SKIP.match(statement):
            seen.setdefault(statement, parameters[0] if executemany else parameters)

    event.listen(engine.sync_engine, "before_cursor_execute", on)
    try:
        card = await services.lookup.find(meja1, target.ticket)
        visit_id = (await services.registration.register(meja1, target.id, card.version, with_card=True)).visit_id
        await services.recipients.today(meja1)
        await services.screening.queue(meja2)
        form = await services.screening.open(meja2, visit_id)
        await services.screening.save(meja2, visit_id, NORMAL, all_no(form.subject))
        await services.vaccination.queue(meja4)
        await services.vaccination.open(meja4, visit_id)
        await services.vaccination.record(
            meja4, visit_id, product_code="coronavac", batch="ab1234", expiry=None, nik_last4=target.nik[-4:]
        )
        await services.vaccination.observe(meja4, visit_id, KipiOutcome.NONE, early=True)
        await services.lookup.card_for_visit(meja1, visit_id)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", on)
    assert len(seen) >= 10, list(seen)
    return list(seen.items())


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += _plan_nodes(child)
    return nodes


async def postgres_problems(engine: AsyncEngine, statements: list[tuple[str, Any]]) -> list[str]:
    problems = []
    async with engine.connect() as conn:
        leading = dict(
            (
                await conn.exec_driver_sql(
                    "SELECT i.relname, a.attname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
                    " JOIN pg_class t ON t.oid = x.indrelid"
                    " JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0]"
                    " WHERE t.relname = ANY($1::text[])",
                    (list(LARGE),),
                )
            ).all()
        )
        for switch in ("enable_seqscan", "enable_mergejoin", "enable_hashjoin", "enable_material"):
            await conn.exec_driver_sql(f"SET {switch} = off")
        for statement, parameters in statements:
            raw = (await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)).scalar_one()
            plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
            for node in _plan_nodes(plan):
                if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in LARGE:
                    problems.append(f"sequential scan of {node['Relation Name']}: {statement}")
                column = leading.get(node.get("Index Name", ""))
                if column is not None and not re.search(rf"\b{column}\b", node.get("Index Cond", "")):
                    problems.append(f"{node['Index Name']} walked without {column}: {statement}")
    return problems


async def sqlite_problems(engine: AsyncEngine, statements: list[tuple[str, Any]]) -> list[str]:
    problems = []
    scan = re.compile(rf"^SCAN ({'|'.join(LARGE)})\b")
    async with engine.connect() as conn:
        for statement, parameters in statements:
            for row in await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters):
                if scan.match(str(row[-1])) or "ANY(" in str(row[-1]):  # ANY(): a skip-scan, the index walked
                    problems.append(f"{row[-1]}: {statement}")
    return problems


async def test_every_statement_of_a_whole_visit_reaches_the_large_tables_by_an_index(
    services: Services, engine: AsyncEngine
) -> None:
    statements = await a_whole_visit(services, engine)
    if engine.dialect.name == "postgresql":
        problems = await postgres_problems(engine, statements)
    else:
        problems = await sqlite_problems(engine, statements)
    assert problems == [], "\n".join(problems)
