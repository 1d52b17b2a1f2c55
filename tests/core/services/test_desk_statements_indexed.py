"""Every statement of a whole visit, and of a correction, reaches the large tables through an index.

PL holds 200 million targets, visits pile up by 2 million a day and audit events by 8 million: a desk
statement that reads one of them without an index works on a test database and stalls the country. A
visit goes through the services (lookup, registration, meja 2's list, form and save, meja 4's list, form,
record and observation, the Daftar Penerima Vaksin) over a faskes with a history, and so does a verifier's
correction queued for Dinkes and approved there; every statement is captured, and the database (SQLite and
PostgreSQL) is asked how it would run each one:

* PostgreSQL, with sequential scans, merge and hash joins and materialised inner scans switched off (what
  a small test table makes look cheap and a table of millions does not): no sequential scan of a large
  table, and every index it uses is entered by its leading column (not walked whole);
* SQLite (``EXPLAIN QUERY PLAN``): no ``SCAN`` of a large table (with or without an index), only ``SEARCH``,
  and no skip-scan (``ANY(column)``: an index entered without its leading column).

A desk statement must also reach ``visits`` by the faskes, the person or the visit (an equality on
``faskes_code``, ``target_id`` or ``id`` in the index condition): an index entered by the day alone reads the
whole country's visits of that day. The support API's national stuck list reads by day on purpose.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from core.domain.identifiers import format_ticket
from core.domain.reference import Source
from core.domain.visits import KipiOutcome
from core.ports import FixedClock
from core.services.registry import Services
from core.services.tokens import ALL_REGIONS
from tests.core.services.test_desk_list_history import Captured, add_history, plan_nodes
from tests.core.services.test_registration import DINKES, FASKES, MEJA1, MEJA2, MEJA4, VERIFIER, actor
from tests.core.services.test_screening_service import NORMAL, all_no, pick_target
from tests.core.services.test_verification import FakeSource, demo_people, with_sources

LARGE = ("targets", "visits", "audit_events", "accounts", "corrections", "access_requests")


async def a_whole_visit(services: Services, engine: AsyncEngine) -> list[tuple[str, Any]]:
    """The statements of one visit from lookup to observation, and of the day's recipient list."""
    target = await pick_target(services, category="nakes", max_age=59)
    await add_history(services)
    meja1, meja2, meja4 = [await actor(services, t) for t in (MEJA1, MEJA2, MEJA4)]
    with Captured(engine) as captured:
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
    assert len(captured.statements) >= 10, captured.statements
    return captured.statements


# A desk reads the visits of its faskes, of one person, or one visit: never a day's visits of the whole country.
# An equality (or IN) on one of them, as PostgreSQL ("(faskes_code)::text = ...") or SQLite ("faskes_code=?") says it.
_DESK_KEYS = re.compile(r"\b(faskes_code|target_id|id|rowid)\b[^=<>]{0,12}(=|\bIN\b)")


async def postgres_problems(engine: AsyncEngine, statements: list[tuple[str, Any]], *, desk: bool) -> list[str]:
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
            for node in plan_nodes(plan):
                if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in LARGE:
                    problems.append(f"sequential scan of {node['Relation Name']}: {statement}")
                column = leading.get(node.get("Index Name", ""))
                if column is not None and not re.search(rf"\b{column}\b", node.get("Index Cond", "")):
                    problems.append(f"{node['Index Name']} walked without {column}: {statement}")
                index = str(node.get("Index Name", ""))
                on_visits = index.startswith(("ix_visits", "uq_visits", "pk_visits"))
                if desk and on_visits and not _DESK_KEYS.search(node.get("Index Cond", "")):
                    problems.append(f"{index} entered without the faskes, the person or the visit: {statement}")
    return problems


async def sqlite_problems(engine: AsyncEngine, statements: list[tuple[str, Any]], *, desk: bool) -> list[str]:
    problems = []
    scan = re.compile(rf"^SCAN ({'|'.join(LARGE)})\b")
    async with engine.connect() as conn:
        for statement, parameters in statements:
            for row in await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters):
                line = str(row[-1])
                if scan.match(line) or "ANY(" in line:  # ANY(): a skip-scan, the index walked
                    problems.append(f"{line}: {statement}")
                elif desk and line.startswith("SEARCH visits") and not _DESK_KEYS.search(line):
                    problems.append(f"{line} (not by faskes, person or visit): {statement}")
    return problems


async def problems_of(engine: AsyncEngine, statements: list[tuple[str, Any]], *, desk: bool = True) -> list[str]:
    """``desk``: also every access to ``visits`` narrowed to a faskes, a person or a visit."""
    if engine.dialect.name == "postgresql":
        return await postgres_problems(engine, statements, desk=desk)
    return await sqlite_problems(engine, statements, desk=desk)


async def test_every_statement_of_a_whole_visit_reaches_the_large_tables_by_an_index(
    services: Services, engine: AsyncEngine
) -> None:
    problems = await problems_of(engine, await a_whole_visit(services, engine))
    assert problems == [], "\n".join(problems)


async def test_every_statement_of_a_correction_queued_and_approved_reaches_the_large_tables_by_an_index(
    engine: AsyncEngine, clock: FixedClock
) -> None:
    """The verifier's correction, contradicted by Dukcapil, queued for Dinkes, listed and approved there."""
    person = (await demo_people(engine))[0]
    new_birth = person.birth_date - timedelta(days=2)
    jkn = FakeSource(Source.JKN, {person.nik: person.record(birth_date=new_birth)})
    dukcapil = FakeSource(Source.DUKCAPIL, {person.nik: person.record()})
    services, _ = with_sources(engine, clock, jkn, dukcapil)
    await add_history(services)
    verifier, dinkes = await actor(services, VERIFIER), await actor(services, DINKES)
    with Captured(engine) as captured:
        await services.verification.open_target(verifier, format_ticket(person.ticket))
        done = await services.verification.submit_correction(
            verifier, person.target_id, person.version, {"birth_date": new_birth.strftime("%d-%m-%Y")}
        )
        assert done.status == "queued"
        await services.verification.queued(dinkes)
        await services.verification.queued_item(dinkes, done.correction_id)
        assert (await services.verification.approve(dinkes, done.correction_id)).status == "approved"
    problems = await problems_of(engine, captured.statements)
    assert problems == [], "\n".join(problems)


async def test_the_support_apis_stuck_list_reaches_visits_by_an_index(services: Services, engine: AsyncEngine) -> None:
    """Visits left unfinished past their day (the history's unfinished observations), nationally, for a
    district and for a faskes: the partial indexes on unfinished visits, never the whole of ``visits``."""
    await add_history(services)
    with Captured(engine) as captured:
        national = await services.stats.stuck(ALL_REGIONS, limit=50)
        await services.stats.stuck(ALL_REGIONS, kabkota=FASKES[:4], limit=50)
        await services.stats.stuck(ALL_REGIONS, faskes=FASKES, limit=50)
    assert len(national.items) == 50
    problems = await problems_of(engine, captured.statements, desk=False)  # the national list reads by day
    assert problems == [], "\n".join(problems)
