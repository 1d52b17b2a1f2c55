"""Lookups by NIK and by ticket on a large PL, at four depths:

* ``raw``: one indexed ``SELECT`` of the target row through the driver alone (``sqlite3``; an
  asyncpg prepared statement): the floor;
* ``repo``: the app's own read for a lookup, as ``LookupService.find`` makes it: a read-only unit
  of work (``ctx.uow(actor, read_only=True)``: plain BEGIN on SQLite; on PostgreSQL the statement
  borrows a pooled connection and runs on asyncpg, core/db/driver_pool.py) and the one statement that
  reads the account (re-checked: ``fresh_from_row``, ``require_active``) and the target (by NIK or
  ticket, read into a model instance: ``core.services.lookup.reader_and_target``); without the rate limiter and the
  card (visits, faskes, dose plan), which ``service`` adds. What "find the target" costs in our
  code, and the figure the ≤ 1 ms p99 goal is read against. Before measuring, the statement is
  checked against the one ``LookupService.find`` issues (same SQL), so the two cannot drift apart;
* ``core``: the target row alone through SQLAlchemy Core on a connection in autocommit (no BEGIN
  and ROLLBACK around the one statement): what a read without a transaction could cost;
* ``service``: ``LookupService.find``: the whole card meja 1 sees (the account re-checked with the
  target, the rate limiter, the visits, the faskes, the dose plan), as the bot calls it.

Latency: one lookup at a time (the cost of a lookup, without queueing). Throughput: 16 lookups
in flight (``service`` and ``repo``), which is what a busy bot process can draw from one PL.
Keys are spread over the whole table (computed from the seed, not read from it), so the index is
exercised as a random workload would, not from a warm corner.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.common import Latencies, SteppingClock
from bench.seed import Spec, sample_keys

CONCURRENCY = 16
_COLUMNS = (
    "id, nik, ticket, name, birth_date, sex, phone, category, assigned_faskes_code, scheduled_date, "
    "source, version, first_desk_at, created_at, updated_at"
)


async def _sequential(keys: list[str], call: Callable[[str], Awaitable[Any]]) -> Latencies:
    lat = Latencies()
    for key in keys:
        started = time.perf_counter()
        found = await call(key)
        lat.add(time.perf_counter() - started)
        if found is None:
            raise RuntimeError(f"lookup found nothing for {key[:6]}…")
    return lat


async def _throughput(keys: list[str], call: Callable[[str], Awaitable[Any]]) -> float:
    it = iter(keys)
    done = 0

    async def worker() -> None:
        nonlocal done
        for key in it:
            await call(key)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done / (time.perf_counter() - started)


def _app_read(ctx: Any, actor: Any, kind: str) -> Callable[[str], Awaitable[Any]]:
    """The read of ``LookupService.find`` without the rate limiter and the card: the account (re-checked)
    and the target in one statement (``core.services.lookup.reader_and_target``), in a read-only unit of work."""
    from core.services.lookup import reader_and_target

    async def read(key: str) -> Any:
        async with ctx.uow(actor, read_only=True) as uow:
            return (await reader_and_target(uow, actor, "nik" if kind == "nik" else "ticket", key))[1]

    return read


def _figures(kind: str, depth: str, lat: Latencies, per_s: float | None) -> dict[str, float]:
    s = lat.summary()
    out = {
        f"{kind}_{depth}_p50_ms": s["p50_ms"],
        f"{kind}_{depth}_p99_ms": s["p99_ms"],
        f"{kind}_{depth}_mean_ms": s["mean_ms"],
    }
    out[f"{kind}_{depth}_per_s"] = per_s if per_s is not None else (1000.0 / s["mean_ms"] if s["mean_ms"] else 0.0)
    return out


async def run_lookup(cfg: dict[str, Any]) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    from core.db.engine import create_engine
    from core.services.registry import build_services

    spec = Spec(**cfg["spec"])
    samples = int(cfg["samples"])
    pairs = sample_keys(samples, spec, seed=int(cfg.get("key_seed", 7)))
    keys = {"nik": [n for n, _ in pairs], "ticket": [t for _, t in pairs]}
    url = cfg["database_url"]
    backend = make_url(url).get_backend_name()
    out: dict[str, Any] = {"samples": samples}

    # raw: the driver alone
    if backend == "sqlite":
        con = sqlite3.connect(make_url(url).database)
        try:
            for kind in ("nik", "ticket"):
                stmt = f"SELECT {_COLUMNS} FROM targets WHERE {kind} = ?"

                async def raw(key: str, stmt: str = stmt) -> Any:
                    return con.execute(stmt, (key,)).fetchone()

                await _sequential(keys[kind][:50], raw)  # warm the page cache a little, like a running bot
                out.update(_figures(kind, "raw", await _sequential(keys[kind], raw), None))
        finally:
            con.close()
    else:
        import asyncpg

        con = await asyncpg.connect(cfg["dsn"])
        try:
            for kind in ("nik", "ticket"):
                prepared = await con.prepare(f"SELECT {_COLUMNS} FROM targets WHERE {kind} = $1")
                await _sequential(keys[kind][:50], prepared.fetchrow)
                out.update(_figures(kind, "raw", await _sequential(keys[kind], prepared.fetchrow), None))
        finally:
            await con.close()

    engine = create_engine(url)
    try:
        clock = SteppingClock()
        services = build_services(engine, clock=clock, lookups_per_minute=1_000_000)
        ctx = services.ctx

        actor = await services.accounts.resolve_actor(int(cfg["meja1"]))
        if actor.account_id is None:
            raise RuntimeError("the bench meja 1 account is missing")

        for kind in ("nik", "ticket"):
            repo = _app_read(ctx, actor, kind)
            await _sequential(keys[kind][:50], repo)
            lat = await _sequential(keys[kind], repo)
            out.update(_figures(kind, "repo", lat, await _throughput(keys[kind], repo)))

        from sqlalchemy import bindparam, select

        from core.db import models

        t = models.Target.__table__
        for kind in ("nik", "ticket"):
            column = t.c.nik if kind == "nik" else t.c.ticket
            stmt = select(t).where(column == bindparam("key"))

            async def core(key: str, stmt: Any = stmt) -> Any:
                # SQLAlchemy Core, one statement, no transaction around it (autocommit): one round trip.
                async with engine.connect() as conn:
                    conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    return (await conn.execute(stmt, {"key": key})).first()

            await _sequential(keys[kind][:50], core)
            lat = await _sequential(keys[kind], core)
            out.update(_figures(kind, "core", lat, await _throughput(keys[kind], core)))

        for kind in ("nik", "ticket"):

            async def service(key: str) -> Any:
                clock.tick()
                return await services.lookup.find(actor, key)

            await _sequential(keys[kind][:50], service)
            lat = await _sequential(keys[kind], service)
            out.update(_figures(kind, "service", lat, await _throughput(keys[kind], service)))
    finally:
        await engine.dispose()
    return out
