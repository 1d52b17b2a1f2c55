"""core.db.driver_statement: the hottest reads as the driver's SQL, with the dialect's processing applied alike."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, event, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import models
from core.db.driver_pool import DriverEvent, DriverPool
from core.db.driver_statement import DriverStatement
from core.db.repositories import ACTOR_COLUMNS
from core.services.registry import Services


class Executions:
    """Each statement the engine sends, and whether SQLAlchemy compiled it for this execution; with ``pooled``, also
    those run on asyncpg itself (core/db/driver_pool.py), listed in ``pooled`` too."""

    def __init__(self, engine: AsyncEngine, pooled: DriverPool | None = None) -> None:
        self.engine = engine.sync_engine
        self.driver = pooled
        self.seen: list[tuple[str, bool]] = []
        self.pooled: list[str] = []

    def _on(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        if not statement.upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")):
            self.seen.append((statement, context.compiled is not None))

    def _on_pooled(self, event: DriverEvent, key: int, statement: str, parameters: Any) -> None:
        if event == "statement":
            self.seen.append((statement, False))
            self.pooled.append(statement)

    def __enter__(self) -> Executions:
        event.listen(self.engine, "before_cursor_execute", self._on)
        if self.driver is not None:
            self.driver.listeners.append(self._on_pooled)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._on)
        if self.driver is not None:
            self.driver.listeners.remove(self._on_pooled)


async def _some_account(services: Services) -> Any:
    async with services.ctx.uow() as uow:
        return (await uow.session.execute(select(*ACTOR_COLUMNS).limit(1))).one()


async def test_the_account_re_check_goes_the_driver_way_and_reads_what_the_orm_reads(
    services: Services, engine: AsyncEngine
) -> None:
    expected = await _some_account(services)
    with Executions(engine, services.ctx.driver) as seen:
        async with services.ctx.uow() as uow:
            by_id = await uow.accounts.actor_row(expected.id)
            by_telegram = await uow.accounts.actor_row_by_telegram_id(expected.telegram_id)
            missing = await uow.accounts.actor_row(-1)
    assert tuple(by_id) == tuple(expected) == tuple(by_telegram)
    assert by_id.roles == expected.roles and by_telegram.telegram_id == expected.telegram_id  # by name too
    assert missing is None
    assert len(seen.seen) == 3 and not any(compiled for _, compiled in seen.seen)  # SQL as the driver's


async def _visits(services: Services, engine: AsyncEngine) -> list[int]:
    """Two visits of two targets, one screened (a temperature, a screening time) and one not."""
    now = services.ctx.clock.now()
    async with engine.begin() as conn:
        account, faskes = (
            await conn.execute(
                select(models.Account.id, models.Account.faskes_code)
                .where(models.Account.faskes_code.is_not(None))
                .limit(1)
            )
        ).one()
        targets = (await conn.scalars(select(models.Target.id).order_by(models.Target.id).limit(2))).all()
        ids = []
        for target_id, screened in zip(targets, (True, False), strict=True):
            values = dict(
                target_id=target_id,
                dose_number=1,
                faskes_code=faskes,
                service_date=now.date(),
                status="tunda" if screened else "menunggu_skrining",
                is_open=not screened,
                version=1,
                opened_at=now - timedelta(minutes=30),
                opened_by=account,
            )
            if screened:
                values.update(screened_at=now, temperature_c=Decimal("37.6"), answers={"demam": True})
            ids.append(
                (await conn.execute(insert(models.Visit).values(**values).returning(models.Visit.id))).scalar_one()
            )
    return ids


_V = models.Visit
# Dates and UTC stamps as parameters and columns (SQLite: text both ways; UtcDateTime: the zone), constants in the
# statement (a status, the LIMIT), the same parameter twice, and a column the driver returns as PostgreSQL's NUMERIC.
_PROCESSED = (
    select(_V.id, _V.service_date, _V.opened_at, _V.screened_at, models.Target.name, _V.answers)
    .join(models.Target, _V.target_id == models.Target.id)
    .where(
        _V.service_date == bindparam("today"),
        _V.opened_at >= bindparam("since"),
        or_(_V.status == "tunda", _V.status == "menunggu_skrining", _V.opened_at < bindparam("since")),
    )
    .order_by(_V.id)
    .limit(10)
)


async def test_a_statement_whose_values_need_processing_goes_the_driver_way_and_reads_what_sqlalchemy_reads(
    services: Services, engine: AsyncEngine
) -> None:
    ids = await _visits(services, engine)
    now = services.ctx.clock.now()
    values = {"today": now.date(), "since": now - timedelta(hours=1)}
    statement = DriverStatement(_PROCESSED)
    async with services.ctx.uow() as uow:
        expected = (await uow.session.execute(_PROCESSED, values)).all()
    with Executions(engine, services.ctx.driver) as seen:
        async with services.ctx.uow() as uow:
            rows = await statement.all(uow.session, **values)
            first = await statement.first(uow.session, **values)
            none = await statement.first(uow.session, today=date(2000, 1, 1), since=now)
    assert [r.id for r in expected] == ids  # the statement finds the two visits: the comparison below means something
    assert [tuple(r) for r in rows] == [tuple(r) for r in expected]
    assert first is not None and tuple(first) == tuple(expected[0]) and none is None
    screened = rows[0]
    assert isinstance(screened.service_date, date) and screened.service_date == now.date()
    assert screened.screened_at == now and screened.screened_at.tzinfo is not None  # aware UTC, as the ORM reads it
    assert screened.opened_at == now - timedelta(minutes=30) and rows[1].screened_at is None
    assert screened.answers == {"demam": True}
    assert not any(compiled for _, compiled in seen.seen) and len(seen.seen) == 3  # the driver's SQL, every time


async def test_numeric_columns_go_the_driver_way_and_in_lists_keep_sqlalchemys(
    services: Services, engine: AsyncEngine
) -> None:
    """PostgreSQL's NUMERIC needs processing or not by the type the driver reports (read on the first execution, as
    SQLAlchemy reads it); an IN list is expanded at execution, and a column name no named tuple can hold, so such
    statements run through ``session.execute``. All read alike."""
    ids = await _visits(services, engine)
    numeric = DriverStatement(select(_V.id, _V.temperature_c).where(_V.id == bindparam("visit_id")))
    expanding = select(_V.id).where(_V.id.in_(bindparam("ids", expanding=True))).order_by(_V.id)
    # A column named so that no named tuple can hold it (a keyword): SQLAlchemy's way, its own row.
    unnamed = select(_V.opened_at.label("from")).where(_V.id == bindparam("visit_id"))
    with Executions(engine, services.ctx.driver) as seen:
        async with services.ctx.uow() as uow:
            temperature = await numeric.first(uow.session, visit_id=ids[0])
            again = await numeric.first(uow.session, visit_id=ids[0])
            listed = await DriverStatement(expanding).all(uow.session, ids=ids)
            opened = await DriverStatement(unnamed).first(uow.session, visit_id=ids[0])
    assert (
        temperature is not None and temperature.temperature_c == Decimal("37.6") and tuple(again) == tuple(temperature)
    )
    assert isinstance(temperature.temperature_c, Decimal)
    assert [r.id for r in listed] == ids
    assert opened is not None and opened[0] == services.ctx.clock.now() - timedelta(minutes=30)
    assert [compiled for _, compiled in seen.seen] == [False, False, True, True]


async def test_the_desk_lists_the_last_batch_and_the_audit_head_go_the_driver_way(
    services: Services, engine: AsyncEngine
) -> None:
    """What a desk reads on nearly every other update: meja 2's and meja 4's lists, the recorder's last batch,
    and the audit chain's head (locked once per writing use case)."""
    await _visits(services, engine)
    from core.db.repositories import _SCREENING_LIST, _VACCINATION_LIST
    from core.db.uow import _LOCK_HEAD
    from core.services.vaccination import _LAST_BATCH

    for statement in (_SCREENING_LIST, _VACCINATION_LIST, _LAST_BATCH, _LOCK_HEAD):
        plan = statement._plan_for(engine.dialect)
        assert plan.sql is not None, statement.statement
    now = services.ctx.clock.now()
    with Executions(engine, services.ctx.driver) as seen:
        async with services.ctx.uow() as uow:
            faskes = (await uow.session.execute(select(_V.faskes_code).limit(1))).scalar_one()
            listed = await uow.visits.screening_list(faskes, now.date(), now - timedelta(hours=12))
    assert sorted(r.status for r in listed) == ["menunggu_skrining", "tunda"]
    assert [compiled for _, compiled in seen.seen] == [True, False]


async def test_entity_columns_read_back_what_the_orm_loads_into_an_instance_no_session_holds(
    services: Services, engine: AsyncEngine
) -> None:
    """A visit and its target read beside other columns (an outer join) into instances of the models, every
    attribute as the ORM loads it; none when the join finds nothing."""
    from core.db.driver_statement import EntityColumns

    ids = await _visits(services, engine)
    visits, targets = EntityColumns(models.Visit, "v"), EntityColumns(models.Target, "t")
    statement = DriverStatement(
        select(models.Account.id, *visits.columns, *targets.columns)
        .select_from(models.Account)
        .outerjoin(_V, _V.id == bindparam("visit_id"))
        .outerjoin(models.Target, _V.target_id == models.Target.id)
        .where(models.Account.id == bindparam("account_id"))
    )
    async with services.ctx.uow() as uow:
        account = (await uow.session.execute(select(models.Account.id).limit(1))).scalar_one()
        row = await statement.first(uow.session, visit_id=ids[0], account_id=account)
        missing = await statement.first(uow.session, visit_id=-1, account_id=account)
        visit = visits.read(row, 1)
        target = targets.read(row, 1 + visits.width)
        assert visit is not None and target is not None and visit not in uow.session
        loaded_visit = await uow.session.get(models.Visit, ids[0])
        loaded_target = await uow.session.get(models.Target, visit.target_id)
        assert loaded_visit is not visit
        for entity, loaded in ((visit, loaded_visit), (target, loaded_target)):
            for attribute in (visits if entity is visit else targets).keys:
                assert getattr(entity, attribute) == getattr(loaded, attribute), attribute
    assert isinstance(visit, models.Visit) and visit.temperature_c == Decimal("37.6")
    assert visit.answers == {"demam": True} and visit.opened_at.tzinfo is not None
    assert isinstance(target, models.Target) and isinstance(target.birth_date, date)
    assert missing is not None and visits.read(missing, 1) is None and targets.read(missing, 1 + visits.width) is None


async def test_meja_1s_lookup_reads_the_driver_way_and_the_desks_visit_compiles_once(
    services: Services, engine: AsyncEngine
) -> None:
    """Meja 1's lookup (the reader and the target, then the target's visits) sends no statement SQLAlchemy compiles
    for it; meja 2 and meja 4 open and save a visit read with its account in one statement of the same kind, and
    meja 1 registers a target read so."""
    from core.services.lookup import _READER_AND_TARGET
    from core.services.registration import _ACTOR_AND_TARGET, _VISIT_ROWS
    from core.services.screening import _VISIT_AS

    ids = await _visits(services, engine)
    async with services.ctx.uow() as uow:
        nik = (
            await uow.session.execute(
                select(models.Target.nik).join(_V, _V.target_id == models.Target.id).where(_V.id == ids[0])
            )
        ).scalar_one()
    meja1 = await services.accounts.resolve_actor(910001)
    await services.lookup.find(meja1, nik)  # PL's reference tables (faskes, intervals) are cached from here on
    with Executions(engine, services.ctx.driver) as seen:
        card = await services.lookup.find(meja1, nik)
    assert card.target_id is not None and len(card.visits) >= 1  # the target and its visit were read
    assert len(seen.seen) == 2 and not any(compiled for _, compiled in seen.seen)
    # On PostgreSQL each on a connection borrowed from the pool, without a session (core/db/driver_pool.py).
    assert len(seen.pooled) == (2 if engine.dialect.name == "postgresql" else 0)
    for statement in (_VISIT_AS, _ACTOR_AND_TARGET, _VISIT_ROWS, *_READER_AND_TARGET.values()):
        assert statement._plan_for(engine.dialect).sql is not None, statement.statement
