"""Synthetic staff driving complete visits through the real dispatcher.

The bot is built by the composition root (``api.runtime.build_runtime``: engine, services, storage,
deduplicator, dispatcher, exactly as ``frontdesk serve`` builds them), with the in-process
session of :mod:`bench.chat` and :class:`bench.common.PersonClock`.

Each team is three accounts at one faskes, each an asyncio task:

* **meja 1** sends a target's ticket (every fifth time the NIK) and taps the card's
  ``t:register:…`` button; the person then walks to meja 2 (an ``asyncio.Queue`` of two places);
* **meja 2** taps the person's ``v:screen:…`` button in the last list it got (after a save the
  bot sends the next people waiting) or asks ``/skrining`` first, then sends the temperature and
  the blood pressure, taps "Semua tidak" (``m2:done:…``) and "Simpan" (``m2:save:…``);
* **meja 4** taps ``v:vaccinate:…`` likewise (``/vaksinasi`` when needed), takes the default
  batch (``m4:last…``) or picks the product (``m4:prod:…``) and types a batch, types the last four
  NIK digits and, 31 minutes later on its own clock, taps "Tidak ada KIPI" (``m4:kipi:…:none``).

Buttons are found in what the bot actually sent (callback-data prefix, and the person's name in
the label), never assumed, so the driver follows the flows as they change. A step whose button
is not there is counted as *missing* (with the text the bot sent instead) and the visit is
dropped; every other step still runs.

Two runs: **max** (everybody as fast as the bot answers: updates per second, the CPU cost) and
**paced** (a global pacer offers ``rate`` updates per second: the latency a person sees at that
load). Before them a **census** (one team, one update at a time) counts SQL statements and Redis
round trips per step and can run under cProfile.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import cProfile
import gc
import io
import os
import pstats
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiogram.methods import AnswerCallbackQuery
from sqlalchemy import event, text

from bench.chat import BenchSession, Person
from bench.common import (
    ROOT,
    Latencies,
    PersonClock,
    cpu_seconds,
    current_rss_mb,
    servers_cpu_ns,
    servers_cpu_seconds,
)

THINK = timedelta(seconds=6)  # virtual time between two updates of one person
OBSERVATION = timedelta(minutes=31)
TEMPERATURE, BLOOD_PRESSURE, BATCH = "36.5", "120/80", "AB1234 12/2027"
PRODUCT = "coronavac"
STEPS = (
    "m1_lookup", "m1_register",
    "m2_list", "m2_open", "m2_temperature", "m2_bp", "m2_all_no", "m2_save",
    "m4_list", "m4_open", "m4_product", "m4_batch", "m4_last_batch", "m4_code", "m4_kipi",
)


@dataclass(frozen=True)
class Walker:
    """A target walking through the desks."""

    ticket: str
    nik: str
    name: str


@dataclass
class Stats:
    steps: dict[str, Latencies] = field(default_factory=lambda: collections.defaultdict(Latencies))
    all: Latencies = field(default_factory=Latencies)
    missing: collections.Counter[str] = field(default_factory=collections.Counter)
    missing_text: dict[str, str] = field(default_factory=dict)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    visits: int = 0
    updates: int = 0
    ran_out: set[str] = field(default_factory=set)  # teams whose targets ran out before the run's end


class TargetsRanOut(RuntimeError):
    """A team served every target it was given before the run ended: what follows measures nothing."""


class Pacer:
    """Hands out update slots at ``rate`` per second (no catch-up burst after a slow spell)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next = time.perf_counter()

    async def wait(self) -> None:
        now = time.perf_counter()
        slot = max(now, self.next)
        self.next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


class Stop(Exception):
    """The run's time is up."""


class Run:
    def __init__(self, stats: Stats, *, until: float, measure_from: float, pacer: Pacer | None) -> None:
        self.stats = stats
        self.until = until
        self.measure_from = measure_from
        self.pacer = pacer
        # Census hooks: a snapshot of counters before each update, and what to do with it after.
        self.snapshot: Callable[[], tuple[int, int]] | None = None
        self.record: Callable[[str, tuple[int, int]], None] | None = None

    async def step(self, person: Person, name: str, action: Callable[[], Awaitable[float]]) -> None:
        if time.perf_counter() >= self.until:
            raise Stop
        if self.pacer is not None:
            await self.pacer.wait()
        PersonClock.advance(THINK)
        counted = time.perf_counter() >= self.measure_from
        before = self.snapshot() if self.snapshot else None
        try:
            elapsed = await action()
        except Exception as exc:  # the dispatcher re-raises what no error handler took
            self.stats.errors[f"{name}:{type(exc).__name__}"] += 1
            raise StepFailed(name) from exc
        if self.record is not None and before is not None:
            self.record(name, before)
        if counted:
            self.stats.steps[name].add(elapsed)
            self.stats.all.add(elapsed)
            self.stats.updates += 1
        alert = next((m for m, _ in person.last if isinstance(m, AnswerCallbackQuery) and m.show_alert), None)
        if alert is not None:
            self.stats.errors[f"{name}:alert"] += 1
            self.stats.missing_text.setdefault(f"{name}:alert", (alert.text or "")[:200])
            raise StepFailed(name)

    def missing(self, step: str, person: Person) -> None:
        self.stats.missing[step] += 1
        self.stats.missing_text.setdefault(step, person.text()[:300])


class StepFailed(Exception):
    pass


@dataclass
class Team:
    faskes_code: str
    meja1: Person
    meja2: Person
    meja4: Person
    walkers: collections.deque[Walker]
    to_meja2: asyncio.Queue[Walker] = field(default_factory=lambda: asyncio.Queue(maxsize=2))
    to_meja4: asyncio.Queue[Walker] = field(default_factory=lambda: asyncio.Queue(maxsize=2))
    served: int = 0


# --------------------------------------------------------------------------------------------
# The three desks
# --------------------------------------------------------------------------------------------


async def meja1(run: Run, team: Team, *, once: bool = False) -> None:
    while team.walkers:
        w = team.walkers.popleft()
        team.served += 1
        if await _meja1(run, team, w, nik=team.served % 5 == 0):
            await _put(run, team.to_meja2, w)
        if once:
            return
    if time.perf_counter() < run.until:
        run.stats.ran_out.add(team.faskes_code)


async def _meja1(run: Run, team: Team, w: Walker, *, nik: bool) -> bool:
    p = team.meja1
    key = w.nik if nik else w.ticket
    try:
        await run.step(p, "m1_lookup", lambda: p.send(key))
        b = p.find("t:register:")
        if b is None:
            run.missing("m1_register", p)
            return False
        await run.step(p, "m1_register", lambda: p.press(b))
    except StepFailed:
        return False
    return True


async def meja2(run: Run, team: Team, *, once: bool = False) -> None:
    while True:
        w = await _get(run, team.to_meja2)
        if await _meja2(run, team.meja2, w):
            await _put(run, team.to_meja4, w)
        if once:
            return


async def _meja2(run: Run, p: Person, w: Walker) -> bool:
    try:
        b = p.find("v:screen:", w.name)
        if b is None:
            await run.step(p, "m2_list", lambda: p.send("/skrining"))
            b = p.find("v:screen:", w.name)
        if b is None:
            run.missing("m2_open", p)
            return False
        opened = b
        await run.step(p, "m2_open", lambda: p.press(opened))
        await run.step(p, "m2_temperature", lambda: p.send(TEMPERATURE))
        await run.step(p, "m2_bp", lambda: p.send(BLOOD_PRESSURE))
        if p.find("m2:done:") is None:  # asked to measure again, or something else
            await run.step(p, "m2_bp", lambda: p.send(BLOOD_PRESSURE))
        for step, prefix in (("m2_all_no", "m2:done:"), ("m2_save", "m2:save:")):
            b = p.find(prefix)
            if b is None:
                run.missing(step, p)
                await _abandon(p)
                return False
            await run.step(p, step, lambda b=b: p.press(b))
    except StepFailed:
        return False
    return True


async def meja4(run: Run, team: Team, *, once: bool = False) -> None:
    while True:
        w = await _get(run, team.to_meja4)
        await _meja4(run, team.meja4, w)
        if once:
            return


async def _meja4(run: Run, p: Person, w: Walker) -> bool:
    try:
        b = p.find("v:vaccinate:", w.name)
        if b is None:
            await run.step(p, "m4_list", lambda: p.send("/vaksinasi"))
            b = p.find("v:vaccinate:", w.name)
        if b is None:
            run.missing("m4_open", p)
            return False
        opened = b
        await run.step(p, "m4_open", lambda: p.press(opened))
        if not await _to_code(run, p):
            run.missing("m4_code", p)
            await _abandon(p)
            return False
        await run.step(p, "m4_code", lambda: p.send(w.nik[-4:]))
        kipi = next((x for x in p.buttons() if x.data.startswith("m4:kipi:") and x.data.endswith(":none")), None)
        if kipi is None:
            run.missing("m4_kipi", p)
            return False
        token = PersonClock.shifted(OBSERVATION)  # the observation ends 31 minutes later
        try:
            await run.step(p, "m4_kipi", lambda: p.press(kipi))
        finally:
            PersonClock.reset(token)
    except StepFailed:
        return False
    if time.perf_counter() >= run.measure_from:
        run.stats.visits += 1
    return True


async def _to_code(run: Run, p: Person) -> bool:
    """From the opened visit to the NIK code question: default batch, or product then batch."""
    for _ in range(4):
        if p.find("m4:chg:") is not None:  # the code question carries "Ubah"
            return True
        b = p.find("m4:last:") or p.find("m4:lastb:")
        if b is not None:
            await run.step(p, "m4_last_batch", lambda b=b: p.press(b))
            continue
        products = [x for x in p.buttons() if x.data.startswith("m4:prod:")]
        if products:
            b = next((x for x in products if x.data.endswith(f":{PRODUCT}")), products[0])
            await run.step(p, "m4_product", lambda b=b: p.press(b))
            continue
        await run.step(p, "m4_batch", lambda: p.send(BATCH))
    return p.find("m4:chg:") is not None


async def _abandon(p: Person) -> None:
    with contextlib.suppress(Exception):
        await p.send("/batal")


async def _put(run: Run, q: asyncio.Queue[Walker], w: Walker) -> None:
    remaining = run.until - time.perf_counter()
    if remaining <= 0:
        raise Stop
    try:
        await asyncio.wait_for(q.put(w), remaining)
    except TimeoutError:
        raise Stop from None


async def _get(run: Run, q: asyncio.Queue[Walker]) -> Walker:
    remaining = run.until - time.perf_counter()
    if remaining <= 0:
        raise Stop
    try:
        return await asyncio.wait_for(q.get(), remaining)
    except TimeoutError:
        raise Stop from None


async def _desk_task(coro: Awaitable[None], clock_from: timedelta) -> None:
    PersonClock.start_at(clock_from)
    with contextlib.suppress(Stop):
        await coro


# --------------------------------------------------------------------------------------------
# Building the bot and the teams
# --------------------------------------------------------------------------------------------


async def build(
    database_url: str, redis_url: str | None, storage_kind: str, *, stock: bool = False
) -> tuple[Any, Any]:
    """The runtime as ``frontdesk serve`` builds it (``redis``: the production store, bot/redis_state.py).

    ``storage_kind="stock"``: aiogram's own ``RedisStorage`` with ``RedisEventIsolation`` instead, the rest
    as in production. ``stock=True`` (the what-if ladder's first rung): also without the hot-path changes
    (no actor cache, aiogram's thread hop for every synchronous filter); the ladder adds them back one by one.
    """
    import bot.factory
    from api.runtime import build_runtime
    from core.config import Settings

    settings = Settings(
        database_url=database_url,
        redis_url=redis_url if storage_kind != "memory" else None,
        telegram_bot_token=None,
        lookup_rate_per_minute=1_000_000,  # staff here are faster than people: PL's own limits still apply
        conversation_ttl_seconds=3600,
        actor_cache_seconds=0 if stock else 30,
        updates_in_flight=0 if stock else 8,
    )
    inline = bot.factory.call_sync_filters_inline
    if stock:
        bot.factory.call_sync_filters_inline = lambda _router: 0  # type: ignore[assignment]
    try:
        runtime = build_runtime(settings, clock=PersonClock(), bot_session=BenchSession())
        if storage_kind == "stock":
            swap_storage(runtime, [], "stock")
    finally:
        bot.factory.call_sync_filters_inline = inline  # type: ignore[assignment]
    return runtime, settings


async def load_teams(runtime: Any, dispatcher: Any, teams: list[dict[str, Any]], per_team: int) -> list[Team]:
    out = []
    async with runtime.engine.connect() as conn:
        for t in teams:
            rows = (
                await conn.execute(
                    text(
                        "SELECT ticket, nik, name FROM targets WHERE assigned_faskes_code = :f "
                        "AND first_desk_at IS NULL ORDER BY id LIMIT :n"
                    ),
                    {"f": t["faskes_code"], "n": per_team},
                )
            ).all()
            walkers = collections.deque(Walker(r[0], r[1], r[2]) for r in rows)
            bot = runtime.bot
            out.append(
                Team(
                    t["faskes_code"],
                    Person(dispatcher, bot, t["meja1"]),
                    Person(dispatcher, bot, t["meja2"]),
                    Person(dispatcher, bot, t["meja4"]),
                    walkers,
                )
            )
    return out


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


async def timed_run(
    teams: list[Team],
    *,
    seconds: float,
    warmup: float,
    rate: float | None,
    clock_from: timedelta,
    keep_values: bool = False,
    servers: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One run of every team's three desks. ``servers`` (name: pid): the CPU those server processes
    (PostgreSQL with its backends, Redis) used over the measured part, per update, beside the bot's."""
    stats = Stats()
    start = time.perf_counter()
    run = Run(stats, until=start + warmup + seconds, measure_from=start + warmup,
              pacer=Pacer(rate) if rate else None)
    cpu_start: list[float] = []
    servers_start: list[dict[str, float]] = []

    async def mark_cpu() -> None:
        await asyncio.sleep(warmup)
        servers_start.append(servers_cpu_seconds(servers or {}))
        cpu_start.append(cpu_seconds())

    rss_start = current_rss_mb()
    marker = asyncio.create_task(mark_cpu())
    gc_clock = GcClock()
    tasks = []
    for team in teams:
        for desk in (meja1, meja2, meja4):
            tasks.append(asyncio.create_task(_desk_task(desk(run, team), clock_from)))
    with gc_clock:
        await asyncio.gather(*tasks)
    await marker
    if stats.ran_out:
        raise TargetsRanOut(
            f"{len(stats.ran_out)} of {len(teams)} teams ran out of targets before the end of a "
            f"{warmup + seconds:g} s run (faskes {', '.join(sorted(stats.ran_out))}): seed more targets "
            "(--targets, --targets-pg) or shorten the runs (--seconds)"
        )
    wall = time.perf_counter() - (start + warmup)
    cpu = cpu_seconds() - cpu_start[0]
    out = _summary(stats, wall, cpu, rate)
    if servers:
        used = {k: v - servers_start[0][k] for k, v in servers_cpu_seconds(servers).items()}
        out["server_cpu_s"] = used
        out["server_cpu_ms_per_update"] = {k: 1000 * v / stats.updates if stats.updates else 0.0
                                           for k, v in used.items()}
    out["gc"] = gc_clock.summary(wall + warmup)
    out["rss_start_mb"], out["rss_end_mb"] = rss_start, current_rss_mb()
    if keep_values:  # for merging several processes' latencies (bench/workers.py)
        out["latency_values_ms"] = [round(1000 * v, 3) for v in stats.all.values]
    return out


class GcClock:
    """Time the cyclic garbage collector takes (``gc.callbacks``), per generation."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            g = info.get("generation", 0)
            self.seconds[g] += time.perf_counter() - self._started
            self.count[g] += 1

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self, wall: float) -> dict[str, Any]:
        total = sum(self.seconds)
        return {
            "collections": self.count,
            "seconds": [round(x, 4) for x in self.seconds],
            "share_of_wall_pct": 100 * total / wall if wall > 0 else 0.0,
            "gen2_mean_ms": 1000 * self.seconds[2] / self.count[2] if self.count[2] else 0.0,
        }


def _summary(stats: Stats, wall: float, cpu: float, rate: float | None) -> dict[str, Any]:
    steps = {name: lat.summary() for name, lat in stats.steps.items()}
    return {
        "offered_rate": rate or 0,
        "seconds": wall,
        "updates": stats.updates,
        "per_s": stats.updates / wall if wall > 0 else 0.0,
        "visits": stats.visits,
        "visits_per_s": stats.visits / wall if wall > 0 else 0.0,
        "cpu_ms_per_update": 1000 * cpu / stats.updates if stats.updates else 0.0,
        "latency": stats.all.summary(),
        "steps": steps,
        "missing": dict(stats.missing),
        "missing_text": stats.missing_text,
        "errors": dict(stats.errors),
    }


async def census(runtime: Any, team: Team, *, visits: int, redis: Any, profile: bool,
                 servers: dict[str, int] | None = None) -> dict[str, Any]:
    """One team, one update at a time, after one warm-up visit: SQL statements, Redis round trips,
    CPU and wall time per step (the bot's, and each of ``servers``'), the SQL of one visit, and
    (``profile``) where the CPU goes."""
    servers = servers or {}
    from bench.floor import RoundTrips

    # statements; of them, compiled by SQLAlchemy (the others are the driver's SQL: DriverStatement); of those, run
    # on asyncpg itself, without SQLAlchemy's execution path (core/db/driver_pool.py)
    sql = [0, 0, 0]
    captured: list[tuple[str, str]] | None = None
    current = [""]

    def count(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, *_: Any) -> None:
        sql[0] += 1
        if context is not None and context.compiled is not None:
            sql[1] += 1
        if captured is not None:
            captured.append((current[0], " ".join(statement.split())[:160]))

    def count_driver(kind: str, _key: int, statement: str, _parameters: Any) -> None:  # on asyncpg itself (PostgreSQL)
        if kind != "statement":
            return
        sql[0] += 1
        sql[2] += 1
        if captured is not None:
            captured.append((current[0], " ".join(statement.split())[:160]))

    driver = runtime.services.ctx.driver
    event.listen(runtime.engine.sync_engine, "before_cursor_execute", count)
    if driver is not None:
        driver.listeners.append(count_driver)
    txn = TransactionClock(runtime.engine.sync_engine, driver)
    per_step: dict[str, list[tuple[Any, ...]]] = collections.defaultdict(list)
    trips = RoundTrips()
    hops = ThreadHops()

    server_ns: dict[str, list[dict[str, int]]] = collections.defaultdict(list)

    def snapshot() -> tuple[Any, ...]:
        # The servers are read first and last, so that reading /proc is in neither clock of the step.
        ns = servers_cpu_ns(servers) if servers else {}
        return sql[0], trips.count, time.process_time(), time.perf_counter(), hops.count, ns, sql[1], sql[2]

    def record(name: str, before: tuple[Any, ...]) -> None:
        per_step[name].append((sql[0] - before[0], trips.count - before[1], time.process_time() - before[2],
                               time.perf_counter() - before[3], hops.count - before[4], sql[1] - before[6],
                               sql[2] - before[7]))
        if servers:
            after = servers_cpu_ns(servers)
            server_ns[name].append({k: after[k] - before[5][k] for k in after})

    async def visit(run: Run) -> bool:
        if not team.walkers:
            return False
        await meja1(run, team, once=True)
        if team.to_meja2.qsize():
            await meja2(run, team, once=True)
        if team.to_meja4.qsize():
            await meja4(run, team, once=True)
        return True

    # People handed over at the end of an earlier run are not waiting here any more.
    team.to_meja2, team.to_meja4 = asyncio.Queue(maxsize=2), asyncio.Queue(maxsize=2)
    warm = Run(Stats(), until=time.perf_counter() + 3600, measure_from=0.0, pacer=None)
    await visit(warm)  # compiles and caches every statement once, as a running bot has
    stats = Stats()
    run = Run(stats, until=time.perf_counter() + 3600, measure_from=0.0, pacer=None)
    run.snapshot, run.record = snapshot, record

    original_step = run.step

    async def step(person: Person, name: str, action: Callable[[], Awaitable[float]]) -> None:
        current[0] = name
        await original_step(person, name, action)

    run.step = step  # type: ignore[method-assign]
    with trips if redis is not None else _null(), txn, hops:
        for i in range(visits):
            captured = [] if i == visits - 1 else None
            if not await visit(run):
                break
        statements = captured or []
        captured = None
        txn.stop()
        profile_text = profile_by_package = None
        if profile:
            # The main thread's CPU clock, not the wall: on uvloop the loop waits inside C, where cProfile would
            # charge the wait to whichever frame it last entered; waiting takes no CPU, so it counts nothing here.
            profiler = cProfile.Profile(time.thread_time)
            prof_run = Run(Stats(), until=time.perf_counter() + 3600, measure_from=0.0, pacer=None)
            profiler.enable()
            for _ in range(max(3, visits)):
                await visit(prof_run)
            profiler.disable()
            profile_text, profile_by_package = _profile_report(profiler)
    event.remove(runtime.engine.sync_engine, "before_cursor_execute", count)
    if driver is not None:
        driver.listeners.remove(count_driver)

    rows = [r for v in per_step.values() for r in v]
    out: dict[str, Any] = {
        "visits": stats.visits,
        "updates": stats.updates,
        "sql_per_step": {k: sum(r[0] for r in v) / len(v) for k, v in per_step.items()},
        "redis_trips_per_step": {k: sum(r[1] for r in v) / len(v) for k, v in per_step.items()},
        "cpu_ms_per_step": {k: 1000 * sum(r[2] for r in v) / len(v) for k, v in per_step.items()},
        "wall_ms_per_step": {k: 1000 * sum(r[3] for r in v) / len(v) for k, v in per_step.items()},
        "thread_hops_per_step": {k: sum(r[4] for r in v) / len(v) for k, v in per_step.items()},
        "statements": statements,
        "missing": dict(stats.missing),
        "missing_text": stats.missing_text,
        "errors": dict(stats.errors),
    }
    if rows:
        out["sql_per_update"] = sum(r[0] for r in rows) / len(rows)
        out["redis_trips_per_update"] = sum(r[1] for r in rows) / len(rows)
        out["sequential_cpu_ms_per_update"] = 1000 * sum(r[2] for r in rows) / len(rows)
        out["sequential_ms_per_update"] = 1000 * sum(r[3] for r in rows) / len(rows)
        out["thread_hops_per_update"] = sum(r[4] for r in rows) / len(rows)
    if server_ns:
        out["server_cpu_ms_per_step"] = {
            step: {k: sum(r[k] for r in v) / len(v) / 1e6 for k in servers} for step, v in server_ns.items()
        }
        every = [r for v in server_ns.values() for r in v]
        out["sequential_server_cpu_ms_per_update"] = {k: sum(r[k] for r in every) / len(every) / 1e6
                                                      for k in servers}
    out.update(txn.summary(len(rows)))
    if stats.visits:
        out["sql_per_visit"] = sum(r[0] for r in rows) / stats.visits
        out["sql_compiled_per_visit"] = sum(r[5] for r in rows) / stats.visits
        out["sql_driver_per_visit"] = sum(r[6] for r in rows) / stats.visits
        out["updates_per_visit"] = len(rows) / stats.visits
    if profile_text:
        out["profile"] = profile_text
        out["cpu_share_by_package"] = profile_by_package
    return out


class TransactionClock:
    """How long transactions hold their connection (begin → end of COMMIT/ROLLBACK), and how long a
    writer holds the audit chain's head row (``SELECT … FOR UPDATE`` → end of COMMIT): on PostgreSQL
    every write in the country queues for that row, so ``1000 / hold_ms`` writes per second is the
    ceiling; on SQLite every transaction (BEGIN IMMEDIATE) holds the database's only write lock."""

    def __init__(self, sync_engine: Any, driver: Any = None) -> None:
        self.engine = sync_engine
        self.driver = driver  # core.db.driver_pool.DriverPool: transactions begun and ended on asyncpg
        self.dialect = sync_engine.dialect
        self.began: dict[int, float] = {}
        self.locked: dict[int, float] = {}
        self.transactions = Latencies()
        self.audit_holds = Latencies()
        self.active = False

    def _begin(self, conn: Any) -> None:
        # setdefault: a session bound to a driver transaction begins its own bookkeeping later, on the same connection
        self.began.setdefault(id(conn.connection), time.perf_counter())

    def _statement(self, conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "audit_head" in statement and "FOR UPDATE" in statement:
            self.locked[id(conn.connection)] = time.perf_counter()

    def _driver_event(self, kind: str, key: int, statement: str, _parameters: Any) -> None:
        if kind == "begin":
            self.began.setdefault(key, time.perf_counter())
        elif kind == "statement" and "audit_head" in statement and "FOR UPDATE" in statement:
            self.locked[key] = time.perf_counter()
        elif kind in ("commit", "rollback"):
            self._ended(key)

    def _ended(self, key: int) -> None:
        now = time.perf_counter()
        began = self.began.pop(key, None)
        if began is not None and self.active:
            self.transactions.add(now - began)
        locked = self.locked.pop(key, None)
        if locked is not None and self.active:
            self.audit_holds.add(now - locked)

    def __enter__(self) -> TransactionClock:
        self.active = True
        event.listen(self.engine, "begin", self._begin)
        event.listen(self.engine, "before_cursor_execute", self._statement)
        if self.driver is not None:
            self.driver.listeners.append(self._driver_event)
        commit, rollback = self.dialect.do_commit, self.dialect.do_rollback

        def do_commit(dbapi_connection: Any) -> None:
            try:
                commit(dbapi_connection)
            finally:
                self._ended(id(dbapi_connection))

        def do_rollback(dbapi_connection: Any) -> None:
            try:
                rollback(dbapi_connection)
            finally:
                self._ended(id(dbapi_connection))

        self.dialect.do_commit, self.dialect.do_rollback = do_commit, do_rollback
        return self

    def stop(self) -> None:
        self.active = False

    def __exit__(self, *exc: object) -> None:
        self.active = False
        event.remove(self.engine, "begin", self._begin)
        event.remove(self.engine, "before_cursor_execute", self._statement)
        if self.driver is not None:
            self.driver.listeners.remove(self._driver_event)
        for name in ("do_commit", "do_rollback"):
            self.dialect.__dict__.pop(name, None)

    def summary(self, updates: int) -> dict[str, float]:
        t, a = self.transactions.summary(), self.audit_holds.summary()
        return {
            "transactions_per_update": t["n"] / updates if updates else 0.0,
            "transaction_mean_ms": t["mean_ms"],
            "transaction_p99_ms": t["p99_ms"],
            "audit_lock_holds": a["n"],
            "audit_lock_hold_mean_ms": a["mean_ms"],
            "audit_lock_hold_p99_ms": a["p99_ms"],
        }


def _package(filename: str) -> str:
    """Where a profiled function lives: a site-package, a directory of this project, or the stdlib."""
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (C)"
    root = str(ROOT) + "/"
    if filename.startswith(root):
        rel = filename[len(root):]
        for top in ("core/services", "core/db", "core/domain", "bot/flows", "bot/handlers", "core", "bot", "api",
                    "bench", "tests"):
            if rel.startswith(top + "/"):
                return top
    if "/asyncio/" in filename:
        return "asyncio"
    return "stdlib"


_IDLE = frozenset({"<method 'poll' of 'select.epoll' objects>", "<method 'select' of 'select.epoll' objects>",
                   "<method 'acquire' of '_thread.lock' objects>"})


def _profile_report(profiler: cProfile.Profile) -> tuple[str, dict[str, float]]:
    buf = io.StringIO()
    ps = pstats.Stats(profiler, stream=buf)
    if dump := os.environ.get("BENCH_PROFILE_DUMP"):  # the raw profile too, for pstats or a viewer
        ps.dump_stats(os.path.join(dump, f"desk_{os.getpid()}.prof"))
    by_package: dict[str, float] = collections.defaultdict(float)
    total = 0.0
    for (filename, _line, name), (_cc, _nc, tottime, _ct, _callers) in ps.stats.items():  # type: ignore[attr-defined]
        if name in _IDLE:
            continue  # the event loop waiting for sockets (PL, Redis, aiosqlite's thread): not CPU
        by_package[_package(filename)] += tottime
        total += tottime
    share = {k: round(100 * v / total, 1) for k, v in sorted(by_package.items(), key=lambda kv: -kv[1]) if total}
    buf.write("CPU (own time, the main thread's CPU clock) by package, % of the profiled total (event-loop\n"
              "waiting left out; the SQLite work in aiosqlite's thread is not in it; on uvloop the loop's own C\n"
              "work is charged to the Python frame that handed control back to it):\n")
    for k, v in share.items():
        buf.write(f"  {k:28} {v:5.1f} %\n")
    buf.write("\n")
    ps.sort_stats("tottime").print_stats(40)
    buf.write("\n---- cumulative (coroutines count once per resumption) ----\n")
    ps.sort_stats("cumulative").print_stats(60)
    return buf.getvalue(), share


async def parts(runtime: Any, team: Team, *, calls: int = 100) -> dict[str, dict[str, float]]:
    """What single pieces of the hot path cost, one call at a time: wall and CPU milliseconds."""
    from core.domain.accounts import Actor

    services = runtime.services
    ctx = services.ctx
    tid = team.meja2.telegram_id

    async def resolve() -> None:
        await type(services.accounts).resolve_actor(services.accounts, tid)  # never the what-if cache

    async def uow_empty() -> None:
        async with ctx.uow():
            pass

    async def uow_select_1() -> None:
        async with ctx.uow() as uow:
            await uow.session.execute(text("SELECT 1"))

    async def core_select_account() -> None:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT id, telegram_id, roles, state FROM accounts WHERE telegram_id = :t"),
                               {"t": tid})

    actor: Actor = await services.accounts.resolve_actor(team.meja1.telegram_id)
    queue_actor: Actor = await services.accounts.resolve_actor(tid)

    async def screening_queue() -> None:
        await services.screening.queue(queue_actor)

    pieces: dict[str, Callable[[], Awaitable[None]]] = {
        "resolve_actor": resolve,
        "uow_empty": uow_empty,
        "uow_select_1": uow_select_1,
        "core_connect_select_account": core_select_account,
        "screening_queue": screening_queue,
    }
    if team.walkers:
        w = team.walkers[-1]

        async def lookup_find() -> None:
            PersonClock.advance(timedelta(seconds=7))
            await services.lookup.find(actor, w.ticket)

        pieces["lookup_find_ticket"] = lookup_find
    if runtime.redis is not None:
        redis = runtime.redis

        async def redis_set_nx() -> None:
            await redis.set(f"bench:part:{time.perf_counter_ns()}", b"1", nx=True, ex=60)

        pieces["redis_set_nx"] = redis_set_nx
    out = {}
    for name, call in pieces.items():
        for _ in range(10):
            await call()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(calls):
            await call()
        out[name] = {"wall_ms": 1000 * (time.perf_counter() - wall0) / calls,
                     "cpu_ms": 1000 * (time.process_time() - cpu0) / calls}
    return out


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def apply_tuning(runtime: Any, tuning: list[str]) -> None:
    """The ladder's rungs, each added to a runtime built with ``stock=True`` (all four are in production):

    * ``inline_sync``: aiogram calls synchronous filters (every ``F.text``, ``F.action == …``,
      ``~F.text.startswith("/")``) through ``asyncio.to_thread``; ``bot.factory.call_sync_filters_inline``
      makes them coroutines called inline;
    * ``actor_cache``: the actor middleware remembers active actors 30 s (bot/actors.py; core still
      re-reads the account inside every use case: ``fresh_actor``);
    * ``gc_freeze``: ``api.runtime.settle_heap`` after start-up (``gc.freeze()``, threshold 50,000);
    * ``admission``: at most 8 updates at work at once (bot/admission.py, ``UPDATES_IN_FLIGHT``).
    """
    from api.runtime import settle_heap
    from bot.admission import Admission, AwayDuringRequests
    from bot.factory import call_sync_filters_inline

    if "actor_cache" in tuning:
        runtime.actors.ttl = 30.0
    if "inline_sync" in tuning:
        call_sync_filters_inline(runtime.dispatcher)
    if "gc_freeze" in tuning:
        settle_heap()
    if "admission" in tuning and runtime.admission is None:
        runtime.admission = runtime.dispatcher.admission = Admission(8)
        runtime.bot.session.middleware(AwayDuringRequests(runtime.admission))


def inline_sync_callbacks() -> None:
    """Make aiogram call synchronous filters and handlers inline instead of in a worker thread."""
    from functools import partial

    from aiogram.dispatcher.event.handler import CallableObject

    async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        wrapped = partial(self.callback, *args, **self._prepare_kwargs(kwargs))
        if self.awaitable:
            return await wrapped()
        return wrapped()

    CallableObject.call = call  # type: ignore[method-assign]


class ThreadHops:
    """Counts aiogram's calls of synchronous callbacks (each one ``asyncio.to_thread``)."""

    def __init__(self) -> None:
        self.count = 0

    def __enter__(self) -> ThreadHops:
        from aiogram.dispatcher.event.handler import CallableObject

        self._cls = CallableObject
        self._original = CallableObject.call
        original, counter = self._original, self

        async def call(obj: Any, *args: Any, **kwargs: Any) -> Any:
            if not obj.awaitable:
                counter.count += 1
            return await original(obj, *args, **kwargs)

        CallableObject.call = call  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self._cls.call = self._original  # type: ignore[method-assign]


def swap_storage(runtime: Any, teams: list[Team], kind: str) -> None:
    """Rebuild the dispatcher on another FSM storage (``stock``: aiogram's; ``redis``: bot/redis_state.py)."""
    from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisStorage

    from bot.dedup import RedisDeduplicator
    from bot.factory import build_dispatcher
    from bot.redis_state import OneTripRedisStorage

    builder = DefaultKeyBuilder(prefix="frontdesk", with_bot_id=True)
    deduplicator = RedisDeduplicator(runtime.redis)
    storage: Any
    if kind == "stock":
        storage = RedisStorage(runtime.redis, key_builder=builder, state_ttl=3600, data_ttl=3600)
    else:  # as api/runtime.build_storage builds it: the update's claim rides on the lock
        storage = OneTripRedisStorage(runtime.redis, key_builder=builder, state_ttl=3600, data_ttl=3600,
                                      claims=deduplicator)
    runtime.storage = storage
    runtime.dispatcher = build_dispatcher(
        runtime.services, storage, events_isolation=storage.create_isolation(),
        deduplicator=deduplicator, actors=runtime.actors, admission=runtime.admission,
    )
    for team in teams:
        for p in (team.meja1, team.meja2, team.meja4):
            p.dispatcher = runtime.dispatcher


async def ladder(runtime: Any, teams: list[Team], cfg: dict[str, Any]) -> dict[str, Any]:
    """The what-ifs one after the other in one process, each kept for the next (cumulative): the
    census (one update at a time) and a saturated run, then a run at one fixed, easy offered load
    (60 % of the first rung's maximum) for the latency. ``cfg["ladder"]``: [(name, storage, toggle)]."""
    seconds, warmup = float(cfg["seconds"]), float(cfg["warmup"])
    out: dict[str, Any] = {}
    easy_rate: float | None = None
    hour = 2.0
    for name, storage, toggle in cfg["ladder"]:
        if storage:
            swap_storage(runtime, teams, storage)
        if toggle:
            apply_tuning(runtime, [toggle])
        if runtime.redis is not None:
            await runtime.redis.flushdb()
        c = await census(runtime, teams[0], visits=int(cfg.get("census_visits") or 3), redis=runtime.redis,
                         profile=False)
        mx = await timed_run(teams, seconds=seconds, warmup=warmup, rate=None, clock_from=timedelta(hours=hour))
        if easy_rate is None:
            easy_rate = max(1.0, float(cfg.get("easy") or 0.6) * mx["per_s"])
        ez = await timed_run(teams, seconds=seconds, warmup=warmup, rate=easy_rate,
                             clock_from=timedelta(hours=hour + 0.75))
        hour += 1.5
        out[name] = {
            "updates_per_s": mx["per_s"],
            "cpu_ms_per_update": mx["cpu_ms_per_update"],
            "max_p99_ms": mx["latency"]["p99_ms"],
            "easy_offered": easy_rate,
            "easy_per_s": ez["per_s"],
            "easy_p50_ms": ez["latency"]["p50_ms"],
            "easy_p95_ms": ez["latency"]["p95_ms"],
            "easy_p99_ms": ez["latency"]["p99_ms"],
            "sequential_ms_per_update": c.get("sequential_ms_per_update", 0.0),
            "sequential_cpu_ms_per_update": c.get("sequential_cpu_ms_per_update", 0.0),
            "sql_per_update": c.get("sql_per_update", 0.0),
            "redis_trips_per_update": c.get("redis_trips_per_update", 0.0),
            "gc_share_pct": mx["gc"]["share_of_wall_pct"],
            "missing": sum(mx["missing"].values()) + sum(ez["missing"].values()),
            "errors": sum(mx["errors"].values()) + sum(ez["errors"].values()),
        }
    return out


async def run_desk(cfg: dict[str, Any]) -> dict[str, Any]:
    """The whole desk measurement for one backend and storage (run in its own process)."""
    from api.runtime import settle_heap

    runtime, _ = await build(cfg["database_url"], cfg.get("redis_url"), cfg["storage"], stock=bool(cfg.get("ladder")))
    dispatcher = runtime.dispatcher
    tuning = list(cfg.get("tuning") or [])
    try:
        if runtime.redis is not None:
            await runtime.redis.flushdb()
        seconds, warmup = float(cfg["seconds"]), float(cfg["warmup"])
        per_team = int(cfg.get("per_team") or 1000)
        teams = await load_teams(runtime, dispatcher, cfg["teams"], per_team)
        teams = [t for t in teams if t.walkers]
        result: dict[str, Any] = {"teams": len(teams), "staff": 3 * len(teams), "storage": cfg["storage"],
                                  "tuning": tuning, "rss_after_build_mb": current_rss_mb()}
        if cfg.get("ladder"):
            result["ladder"] = await ladder(runtime, teams, cfg)
            return result
        servers: dict[str, int] = cfg.get("server_pids") or {}  # name: pid, measured beside the bot
        if tuning:
            apply_tuning(runtime, tuning)
        settle_heap()  # as a serving process does once it is built (api/main.py)
        if cfg.get("census_visits"):
            result["census"] = await census(
                runtime, teams[0], visits=int(cfg["census_visits"]), redis=runtime.redis,
                profile=bool(cfg.get("profile")), servers=servers,
            )
            result["parts"] = await parts(runtime, teams[0])
        # Each run starts its people's clocks after the last run's (PL's per-account limits count
        # on that clock): census and parts in hours 0-2, then four hours of virtual time per run.
        result["max"] = await timed_run(teams, seconds=seconds, warmup=warmup, rate=None,
                                        clock_from=timedelta(hours=2), servers=servers)
        if cfg.get("rate"):
            result["paced"] = await timed_run(teams, seconds=seconds, warmup=warmup, rate=float(cfg["rate"]),
                                              clock_from=timedelta(hours=6))
        if cfg.get("easy"):
            # A load this machine can carry: the latency a person sees when the bot is not saturated.
            rate = max(1.0, float(cfg["easy"]) * result["max"]["per_s"])
            result["paced_easy"] = await timed_run(teams, seconds=seconds, warmup=warmup, rate=rate,
                                                   clock_from=timedelta(hours=10))
        return result
    finally:
        await runtime.close()
