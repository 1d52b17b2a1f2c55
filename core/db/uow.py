"""Unit of work over the PL database: one transaction per use case, committed once.

A service does its work inside ``async with uow:``, records audit drafts with ``uow.audit``, and calls
``commit``. Commit appends the drafts to the hash chain (locking the chain's head row only for that
last moment) and commits everything together: nothing is ever half-written.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Final, Self

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import models
from core.db.driver_pool import DRIVER, DriverPool, DriverTransaction
from core.db.driver_statement import DriverStatement, DriverWrite
from core.db.engine import READ_ONLY_OPTION
from core.db.repositories import (
    AccessRequestRepository,
    AccountRepository,
    AuditRepository,
    CorrectionRepository,
    ReferenceCache,
    ReferenceRepository,
    RegionRepository,
    TargetRepository,
    VaccineRepository,
    VisitRepository,
)
from core.domain.accounts import Actor
from core.domain.audit import HASHED_FIELDS, AuditDraft, event_hash, jsonable
from core.domain.errors import Conflict, Unavailable
from core.ports import Clock

# Errors that mean "PL cannot be reached", as opposed to a rule or a race.
_UNREACHABLE = (OSError, ConnectionError, asyncio.TimeoutError)


def is_unreachable(exc: BaseException) -> bool:
    if isinstance(exc, _UNREACHABLE):
        return True
    if isinstance(exc, DBAPIError) and not isinstance(exc, IntegrityError):
        if exc.connection_invalidated:
            return True
        if isinstance(exc, OperationalError):
            return True
        return isinstance(exc.orig, _UNREACHABLE) or "connection" in str(exc.orig).lower()
    return False


# The audit append's statements, built once (see core/db/repositories.py).
_LOCK_HEAD: Final = DriverStatement(  # the driver's SQL: once per writing use case (core/db/driver_statement.py)
    select(models.AuditHead.seq, models.AuditHead.hash).where(models.AuditHead.id == 1).with_for_update()
)
_APPEND: Final = insert(models.audit_events_table)
_MOVE_HEAD: Final = (
    update(models.audit_head_table)
    .where(models.audit_head_table.c.id == 1)
    .values(seq=bindparam("head_seq"), hash=bindparam("head_hash"))
)
# PostgreSQL: one round trip for the events and the head (locked by ``_LOCK_HEAD``), on the driver: the head moves in a
# WITH clause, set to the same final values with every row of the batch.
_APPEND_AND_MOVE_HEAD: Final = DriverWrite(
    insert(models.audit_events_table).add_cte(_MOVE_HEAD.cte("audit_head_moved")),
    columns=[*HASHED_FIELDS, "prev_hash", "hash"],
)


class SqlUnitOfWork:
    """``read_only``: the use case only reads. On SQLite its transaction begins DEFERRED (a snapshot that
    takes no write lock, so readers never queue behind writers) instead of IMMEDIATE; on PostgreSQL it runs
    in autocommit, without the ``BEGIN`` and ``ROLLBACK`` round trips (each statement then reads the latest
    commits: a card built from two statements may see a registration that landed in between, which its
    version check catches when a button is pressed); there its driver statements borrow a pooled connection each
    and run on the driver alone, and the session connects only if a statement needs it (core/db/driver_pool.py).
    It never writes: a statement other than a SELECT is refused before it runs (core/db/engine.py, and
    ``DriverWrite``), and ``commit`` refuses pending ORM changes and audit entries. Leaving the block closes the
    session, which ends the transaction; what it loaded stays readable.

    A writing unit of work on PostgreSQL borrows one pooled connection and begins its transaction on the driver; its
    session is bound to that connection (core/db/driver_pool.py), so driver statements, ORM flushes and the audit
    append are one transaction, committed by the driver once. ``on_commit`` listeners hear the audit entries'
    actions after a commit (api/metrics.py counts them).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        actor: Actor | None = None,
        *,
        references: ReferenceCache | None = None,
        read_only: bool = False,
        driver: DriverPool | None = None,
        on_commit: Sequence[Callable[[Sequence[str]], None]] = (),
    ) -> None:
        self._sessions = sessions
        self._driver = driver
        self._on_commit = on_commit
        self._transaction: DriverTransaction | None = None
        self.clock = clock
        self.actor = actor
        self._cache = references if references is not None else ReferenceCache(ttl=0.0)
        self.read_only = read_only
        self._drafts: list[AuditDraft] = []
        self._committed = False

    async def __aenter__(self) -> Self:
        self._drafts = []
        self._committed = False
        self._transaction = None
        driver = self._driver
        if driver is not None and self.read_only:
            # PostgreSQL: the driver's statements borrow a pooled connection each (core/db/driver_pool.py); the
            # session connects only if a statement needs it, in autocommit.
            self.session = s = self._sessions(bind=driver.autocommit)
            s.info[READ_ONLY_OPTION] = True  # core/db/engine.py refuses anything but a SELECT in this session
            s.info[DRIVER] = driver
        elif driver is not None:
            # PostgreSQL: one pooled connection, its transaction begun on the driver; the session is bound to it.
            try:
                self._transaction = await driver.begin()
            except Exception as exc:
                if is_unreachable(exc):
                    raise Unavailable("database") from exc
                raise
            self.session = s = self._sessions(bind=self._transaction.bind)
            s.info[DRIVER] = self._transaction
        else:
            self.session = s = self._sessions()
            if self.read_only:
                s.info[READ_ONLY_OPTION] = True
                options = {READ_ONLY_OPTION: True} if _is_sqlite(s) else {"isolation_level": "AUTOCOMMIT"}
                try:  # connects now: an unreachable PL must read as such here too, as it does in the body
                    await s.connection(execution_options=options)
                except Exception as exc:
                    with contextlib.suppress(Exception):
                        await s.close()
                    if is_unreachable(exc):
                        raise Unavailable("database") from exc
                    raise
        self.references = ReferenceRepository(s, self._cache)
        self.targets = TargetRepository(s)
        self.visits = VisitRepository(s)
        self.accounts = AccountRepository(s)
        self.access_requests = AccessRequestRepository(s)
        self.regions = RegionRepository(s)
        self.vaccines = VaccineRepository(s)
        self.corrections = CorrectionRepository(s)
        self.audit_log = AuditRepository(s)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # The original error matters more than a failed rollback or close (PL may be unreachable).
        # Closing ends the transaction too (the connection goes back to the pool rolled back); a read-only unit of
        # work has nothing to undo, so it skips the session's own rollback, which would first expire every object
        # it loaded: about a seventh of a look-up's CPU (docs/performance.md, round eleven).
        transaction, self._transaction = self._transaction, None
        if transaction is not None:
            with contextlib.suppress(Exception):
                if self.session.in_transaction():  # its own bookkeeping: in autocommit it sends nothing
                    if not self._committed:
                        await self.session.rollback()  # what it loaded and changed is expired, as without the driver
                    await self.session.close()
            with contextlib.suppress(Exception):
                await transaction.close()  # ROLLBACK unless committed; the connection back to the pool
        else:
            with contextlib.suppress(Exception):
                if not self._committed and not self.read_only:
                    await self.session.rollback()
            with contextlib.suppress(Exception):
                if not (self._driver is not None and not self.session.in_transaction()):  # else it never connected
                    await self.session.close()
        if exc is not None and is_unreachable(exc):
            raise Unavailable("database") from exc

    def audit(self, draft: AuditDraft) -> None:
        self._drafts.append(draft)

    async def commit(self) -> None:
        s = self.session
        if self.read_only:
            if self._drafts or s.new or s.dirty or s.deleted:
                raise RuntimeError("a read-only unit of work cannot write")
            self._committed = True  # nothing to commit; leaving the block closes the session (see __aexit__)
            return
        actions = [d.action for d in self._drafts]
        try:
            if self._transaction is not None:
                if s.new or s.dirty or s.deleted:
                    await s.flush()
                if self._drafts:
                    await self._append_audit()
                await self._transaction.commit()
            else:
                await s.flush()
                if self._drafts:
                    await self._append_audit()
                await s.commit()
        except IntegrityError as exc:
            raise Conflict("concurrent_change") from exc
        self._committed = True
        self._drafts = []
        if self._transaction is not None and s.in_transaction():
            with contextlib.suppress(Exception):
                await s.commit()  # the session's own bookkeeping, after the driver's COMMIT: it sends nothing
        for listener in self._on_commit:
            listener(actions)

    async def _append_audit(self) -> None:
        s = self.session
        head = await _LOCK_HEAD.first(s)
        if head is None:
            raise RuntimeError("the audit chain has no head row (migrations not run?)")
        seq, prev = head.seq, head.hash
        at = self.clock.now()
        actor = self.actor
        rows = []
        for d in self._drafts:
            seq += 1
            fields = {
                "seq": seq,
                "at": at,
                "actor_account_id": actor.account_id if actor else None,
                "actor_role": actor.role_label if actor else "system",
                "faskes_code": d.faskes_code if d.faskes_code is not None else (actor.faskes_code if actor else None),
                "kabkota_code": d.kabkota_code
                if d.kabkota_code is not None
                else (actor.kabkota_code if actor else None),
                "action": d.action,
                "entity": d.entity,
                "entity_id": d.entity_id,
                "target_id": d.target_id,
                "before": jsonable(d.before),
                "after": jsonable(d.after),
            }
            assert set(fields) == set(HASHED_FIELDS)
            digest = event_hash(fields, prev)
            rows.append({**fields, "prev_hash": prev, "hash": digest})
            prev = digest
        if s.get_bind().dialect.name == "postgresql":
            await _APPEND_AND_MOVE_HEAD.execute_many(s, [{**row, "head_seq": seq, "head_hash": prev} for row in rows])
        else:
            await s.execute(_APPEND, rows)
            await s.execute(_MOVE_HEAD, {"head_seq": seq, "head_hash": prev})


def _is_sqlite(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "sqlite"
