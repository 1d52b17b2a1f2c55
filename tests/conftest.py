"""Top-level test configuration for pcare-frontdesk.

Sections:
  1. Imports and CI policy helpers
  2. Markers and the CI rule "a server test is never silently skipped"
  3. Server fixtures (PostgreSQL, Redis), started once per session
  4. Database fixtures: each test's own PL database, on SQLite and on PostgreSQL
  5. Bot fixtures: the real dispatcher with a recording in-process session

Run the server tests alone with ``pytest -m "postgres or redis"``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from core.ports import FixedClock
from tests.bot.harness import Harness

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from core.services.registry import Services

from tests.servers import PostgresServer, RedisServer, ServerUnavailable

# =============================================================================
# 1. CI policy helpers
# =============================================================================


def running_in_ci() -> bool:
    """True when the environment variable CI is ``true`` or ``1``."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def server_unavailable(what: str, reason: object) -> None:
    """Fail (under CI) or skip (elsewhere) the requesting test: `what` cannot run."""
    message = f"{what} unavailable: {reason}"
    if running_in_ci():
        pytest.fail(message + "\n(CI=true: missing servers are failures, not skips)", pytrace=False)
    pytest.skip(message)


def start_or_unavailable(server, what: str):
    """Start `server`; on ServerUnavailable fail or skip per the CI policy."""
    try:
        return server.start()
    except ServerUnavailable as exc:
        reason = exc
    # Outside the except block, so the report is not cluttered by exception chaining.
    server_unavailable(what, reason)


# =============================================================================
# 2. Markers; under CI a skipped server/browser test is a failure
# =============================================================================


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], object]]:
    """Every async test runs on the loop ``frontdesk serve`` runs on (api/eventloop.py: uvloop where it is
    installed); ``EVENT_LOOP=asyncio make test`` runs the suite on Python's own loop instead."""
    from api.eventloop import loop_factory, loop_name

    choice = os.environ.get("EVENT_LOOP", "auto")
    return {loop_name(choice): loop_factory(choice)}


SERVER_MARKERS = ("postgres", "redis", "browser")

# Tests using these fixtures get the marker automatically (so `-m postgres`
# selects them and the CI rule below applies even if the marker was forgotten).
FIXTURE_MARKERS = {
    "postgres_server": "postgres",
    "private_postgres_server": "postgres",
    "redis_server": "redis",
    "private_redis_server": "redis",
    "redis_url": "redis",
}


def _sigterm_as_keyboard_interrupt(signum, frame):  # pragma: no cover - signal path
    raise KeyboardInterrupt(f"terminated by signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # A CI timeout usually sends SIGTERM, which would kill pytest without running
    # fixture teardown and leave the servers behind. Turn it into the same
    # orderly stop as Ctrl-C, which tears the server fixtures down.
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm_as_keyboard_interrupt)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for fixture, marker in FIXTURE_MARKERS.items():
            if fixture in names and item.get_closest_marker(marker) is None:
                item.add_marker(marker)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not (running_in_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return
    markers = [m for m in SERVER_MARKERS if item.get_closest_marker(m) is not None]
    if not markers:
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (
        f"CI=true: test marked {'/'.join(markers)} was skipped, which CI treats as a failure.\nSkip reason: {reason}"
    )


# =============================================================================
# 3. Server fixtures
# =============================================================================


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the session (trust auth, 127.0.0.1).

    Use ``create_database(name, template=None)`` / ``drop_database(name)`` and
    ``url(name)`` (SQLAlchemy, asyncpg driver) or ``dsn(name)`` (asyncpg/libpq).
    Do not pause() this shared server; use ``private_postgres_server``.
    """
    server = PostgresServer()
    start_or_unavailable(server, "PostgreSQL")
    try:
        yield server
    finally:
        server.stop()  # pg_ctl -m immediate, then SIGKILL by PID; removes the directory


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One throwaway Redis server for the session (no persistence, 127.0.0.1).

    Prefer ``redis_url`` in tests: it flushes the database first.
    Do not pause() this shared server; use ``private_redis_server``.
    """
    server = RedisServer()
    start_or_unavailable(server, "Redis")
    try:
        yield server
    finally:
        server.stop()  # redis-cli shutdown nosave, then SIGKILL by PID; removes the directory


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of database 0 on the session Redis server, flushed before the test."""
    redis_server.flushdb(0)
    return redis_server.url


@pytest.fixture
def private_postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test's own, for fault tests (pause()/resume())."""
    server = PostgresServer()
    start_or_unavailable(server, "PostgreSQL")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_redis_server() -> Iterator[RedisServer]:
    """A Redis server of the test's own, for fault tests (pause()/resume())."""
    server = RedisServer()
    start_or_unavailable(server, "Redis")
    try:
        yield server
    finally:
        server.stop()


# =============================================================================
# 4. Database fixtures
# =============================================================================
# Every database test runs on SQLite and on the session's PostgreSQL server. Templates are migrated
# (and seeded) once per session; each test gets its own copy: a file copy on SQLite, CREATE DATABASE
# ... TEMPLATE on PostgreSQL.

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)  # 10:00 WIB
TODAY = date(2026, 11, 26)
DEMO_TARGETS = 400
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


async def _prepare(url: str, seeded: bool) -> None:
    from core.db.engine import create_engine
    from core.db.migrate import upgrade

    await upgrade(url)
    if seeded:
        from core.db.seed import seed_demo

        engine = create_engine(url)
        try:
            await seed_demo(engine, targets=DEMO_TARGETS, today=TODAY)
        finally:
            await engine.dispose()


class _Templates:
    """Migrated (and seeded) template databases, made on first use and kept for the session."""

    def __init__(self, make: Callable[[bool], str]) -> None:
        self._make = make
        self._made: dict[bool, str] = {}

    def __getitem__(self, seeded: bool) -> str:
        if seeded not in self._made:
            self._made[seeded] = self._make(seeded)
        return self._made[seeded]


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> _Templates:
    base = tmp_path_factory.mktemp("sqlite-templates")

    def make(seeded: bool) -> str:
        path = base / f"template-{'demo' if seeded else 'empty'}.db"
        asyncio.run(_prepare(f"sqlite+aiosqlite:///{path}", seeded))
        return str(path)

    return _Templates(make)


@pytest.fixture(scope="session")
def postgres_templates(postgres_server: PostgresServer) -> _Templates:
    def make(seeded: bool) -> str:
        name = f"template_{'demo' if seeded else 'empty'}"
        postgres_server.create_database(name)
        asyncio.run(_prepare(postgres_server.url(name), seeded))
        return name

    return _Templates(make)


def _database(request: pytest.FixtureRequest, tmp_path: Path, seeded: bool) -> Iterator[str]:
    backend = request.param
    if backend == "sqlite":
        templates = request.getfixturevalue("sqlite_templates")
        path = tmp_path / "pl.db"
        shutil.copyfile(templates[seeded], path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    templates = request.getfixturevalue("postgres_templates")
    name = f"t_{uuid.uuid4().hex[:12]}"
    server.create_database(name, template=templates[seeded])
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty PL database of the test's own, on each backend."""
    yield from _database(request, tmp_path, seeded=False)


@pytest.fixture(params=BACKENDS)
def demo_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated PL database with the demo data set (seed-demo, DEMO_TARGETS targets), on each backend."""
    yield from _database(request, tmp_path, seeded=True)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
async def engine(demo_db_url: str) -> AsyncIterator[AsyncEngine]:
    from core.db.engine import create_engine

    eng = create_engine(demo_db_url)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
async def services(engine: AsyncEngine, clock: FixedClock) -> Services:
    """Core services over the demo database, with a fixed clock (NOW)."""
    from core.services.registry import build_services

    return build_services(engine, clock=clock)


# =============================================================================
# 5. Bot fixtures
# =============================================================================


@pytest.fixture
def harness(services: Services) -> Harness:
    """The real dispatcher over the demo database, with an in-process bot session that records calls."""
    from aiogram.fsm.storage.memory import MemoryStorage

    from bot.actors import ActorCache
    from bot.factory import build_bot, build_dispatcher, build_notifier
    from bot.local_session import LocalSession

    session = LocalSession()
    bot = build_bot(None, session=session)
    actors = ActorCache(services.accounts.resolve_actor)  # as the composition root wires it
    services.set_notifier(build_notifier(bot, services, actors=actors))
    dp = build_dispatcher(services, MemoryStorage(), actors=actors)
    return Harness(dispatcher=dp, bot=bot, session=session, actors=actors)
