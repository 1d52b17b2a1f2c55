"""Unit of work over the PL database: one transaction per use case, committed once.

A service does its work inside ``async with uow:``, records audit drafts with ``uow.audit``, and calls
``commit``. Commit appends the drafts to the hash chain (locking the chain's head row only for that
last moment) and commits everything together: nothing is ever half-written.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Final, Self

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import models
from core.db.driver_statement import DriverStatement
from core.db.engine import READ_ONLY_OPTION
from core.db.pooled_reads import POOLED_READS, PooledReads
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
# PostgreSQL: one round trip for the events and the head (locked by ``_LOCK_HEAD``): the INSERT stays the statement
# itself (api/metrics.py counts actions from it), the head moves in a WITH clause, set to the same final values with
# every row of the batch.
_APPEND_AND_MOVE_HEAD: Final = insert(models.audit_events_table).add_cte(_MOVE_HEAD.cte("audit_head_moved"))


class SqlUnitOfWork:
    """``read_only``: the use case only reads. On SQLite its transaction begins DEFERRED (a snapshot that
    takes no write lock, so readers never queue behind writers) instead of IMMEDIATE; on PostgreSQL it runs
    in autocommit, without the ``BEGIN`` and ``ROLLBACK`` round trips (each statement then reads the latest
    commits: a card built from two statements may see a registration that landed in between, which its
    version check catches when a button is pressed); there its driver statements borrow a pooled connection each
    and run on the driver alone, and the session connects only if a statement needs it (core/db/pooled_reads.py).
    It never writes: a statement other than a SELECT is
    refused before it runs (core/db/engine.py), and ``commit`` refuses pending ORM changes and audit entries.
    Leaving the block closes the session, which ends the transaction; what it loaded stays readable.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        actor: Actor | None = None,
        *,
        references: ReferenceCache | None = None,
        read_only: bool = False,
        pooled_reads: PooledReads | None = None,
    ) -> None:
        self._sessions = sessions
        self._pooled = pooled_reads if read_only else None
        self.clock = clock
        self.actor = actor
        self._cache = references if references is not None else ReferenceCache(ttl=0.0)
        self.read_only = read_only
        self._drafts: list[AuditDraft] = []
        self._committed = False

    async def __aenter__(self) -> Self:
        self._drafts = []
        self._committed = False
        if self._pooled is not None:
            # PostgreSQL: the driver's statements borrow a pooled connection each (core/db/pooled_reads.py); the
            # session connects only if a statement needs it, in autocommit.
            self.session = s = self._sessions(bind=self._pooled.autocommit)
            s.info[READ_ONLY_OPTION] = True  # core/db/engine.py refuses anything but a SELECT in this session
            s.info[POOLED_READS] = self._pooled
        else:
            self.session = s = self._sessions()
        if self.read_only and self._pooled is None:
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
        with contextlib.suppress(Exception):
            if not self._committed and not self.read_only:
                await self.session.rollback()
        with contextlib.suppress(Exception):
            if not (self._pooled is not None and not self.session.in_transaction()):  # else it never connected
                await self.session.close()
        if exc is not None and is_unreachable(exc):
            raise Unavailable("database") from exc

    def audit(self, draft: AuditDraft) -> None:
        self._drafts.append(draft)

    async def commit(self) -> None:
        if self.read_only:
            if self._drafts or self.session.new or self.session.dirty or self.session.deleted:
                raise RuntimeError("a read-only unit of work cannot write")
            self._committed = True  # nothing to commit; leaving the block closes the session (see __aexit__)
            return
        try:
            await self.session.flush()
            if self._drafts:
                await self._append_audit()
            await self.session.commit()
        except IntegrityError as exc:
            raise Conflict("concurrent_change") from exc
        self._committed = True
        self._drafts = []

    async def rollback(self) -> None:
        await self.session.rollback()

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
            await s.execute(_APPEND_AND_MOVE_HEAD, [{**row, "head_seq": seq, "head_hash": prev} for row in rows])
        else:
            await s.execute(_APPEND, rows)
            await s.execute(_MOVE_HEAD, {"head_seq": seq, "head_hash": prev})


def _is_sqlite(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "sqlite"
