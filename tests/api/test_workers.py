"""Scale-out: several uvicorn worker processes share PostgreSQL and Redis, so a person's conversation
does not care which worker gets each update, and an update delivered twice is handled once.

Two real worker processes (``uvicorn --factory api.main:app_from_env``, what ``frontdesk serve --workers N``
runs in each worker) on their own ports, in webhook mode with a secret, on a PostgreSQL copy of the demo
data and the session's Redis. Their bot talks HTTP to a Bot API-compatible server in this test's process
(tests/fake_bot_api.py), which records what each person is sent. Budi (meja 2) screens one visit with his
updates sent alternately to worker A and worker B; then one update is delivered to both.

A last test runs ``frontdesk serve --workers 2`` itself: the parent migrates and sets the webhook once,
then two workers answer on one port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from api.eventloop import loop_name
from api.routes.webhook import SECRET_HEADER
from core.db import models
from core.db.engine import create_engine
from core.domain.timeutil import local_date
from core.services.registry import build_services
from tests.core.services.test_screening_service import open_visit, pick_target
from tests.fake_bot_api import Call, Chat, FakeBotApi
from tests.servers import PostgresServer, free_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "515151:two-workers-test-token"
SECRET = "workers-Secret_42"
WEBHOOK_URL = "https://frontdesk.example/telegram/webhook"
BUDI = Chat(910002, "Budi")  # meja 2 at Puskesmas Garuda (3273P001, WIB)
STARTUP_SECONDS = 90  # generous: a cold worker imports aiogram, FastAPI and SQLAlchemy on a shared machine


# --- processes ----------------------------------------------------------------------------------


def worker_env(database_url: str, redis_url: str, api: FakeBotApi, **extra: str) -> dict[str, str]:
    ours = ("DATABASE_", "REDIS_", "TELEGRAM_", "WEBHOOK_", "SANDBOX_", "WEB_CONCURRENCY", "API_")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(ours)}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE=api.base_url,
        WEBHOOK_URL=WEBHOOK_URL,
        WEBHOOK_SECRET=SECRET,
        SANDBOX_ENABLED="false",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


class Process:
    """A server process of this test, stopped by its own id (SIGTERM, then SIGKILL of its group)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], directory: Path) -> None:
        self.name = name
        self.log_path = directory / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            argv, env=env, cwd=directory, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    async def ready(self, port: int) -> None:
        """Wait until GET /ready answers 200 (database and Redis reachable) while this loop keeps serving."""
        deadline = time.monotonic() + STARTUP_SECONDS
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{port}/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise AssertionError(f"{self.name} not ready within {STARTUP_SECONDS} s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group of our own child: its workers, if any are left
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self._log.close()


def spawned_workers(pid: int) -> list[int]:
    """The worker processes uvicorn spawned under ``pid`` (multiprocessing's spawn_main), from /proc."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(p) for p in children if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


def uvicorn_worker(name: str, port: int, env: dict[str, str], directory: Path) -> Process:
    argv = [sys.executable, "-m", "uvicorn", "api.main:app_from_env", "--factory"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return Process(name, argv, env, directory)


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def pg_demo(postgres_server: PostgresServer, postgres_templates: Any) -> Iterator[str]:
    """A PostgreSQL copy of the demo data set, for this test only."""
    name = f"w_{uuid.uuid4().hex[:12]}"
    postgres_server.create_database(name, template=postgres_templates[True])
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as server:
        yield server


class Webhook:
    """Posts updates to one worker's webhook, as Telegram would."""

    def __init__(self, name: str, port: int, client: httpx.AsyncClient) -> None:
        self.name, self.url, self.client = name, f"http://127.0.0.1:{port}/telegram/webhook", client

    async def deliver(self, update: dict[str, Any]) -> None:
        response = await self.client.post(self.url, json=update, headers={SECRET_HEADER: SECRET})
        assert response.status_code == 200, (self.name, response.status_code, response.text)


@pytest.fixture
async def workers(
    pg_demo: str, redis_url: str, api: FakeBotApi, tmp_path: Path
) -> AsyncIterator[tuple[Webhook, Webhook]]:
    env = worker_env(pg_demo, redis_url, api, TELEGRAM_CHAT_RATE="50")
    ports = free_port(), free_port()
    procs = [uvicorn_worker(name, port, env, tmp_path) for name, port in zip("AB", ports, strict=True)]
    try:
        await asyncio.gather(*(p.ready(port) for p, port in zip(procs, ports, strict=True)))
        async with httpx.AsyncClient(timeout=10) as client:
            yield Webhook("A", ports[0], client), Webhook("B", ports[1], client)
    finally:
        for proc in procs:
            proc.stop()


# --- the tests ----------------------------------------------------------------------------------


async def waiting_visit(database_url: str) -> tuple[int, str]:
    """A visit waiting for screening at Budi's faskes today (the workers' clock is the real one)."""
    engine = create_engine(database_url)
    try:
        services = build_services(engine)
        now = datetime.now(UTC)
        target = await pick_target(services, category="nakes", max_age=59)
        visit_id = await open_visit(services, target.id, service_date=local_date(now, "Asia/Jakarta"), opened_at=now)
        return visit_id, target.name
    finally:
        await engine.dispose()


async def visit_and_screenings(database_url: str, visit_id: int) -> tuple[models.Visit, int, int]:
    engine = create_engine(database_url)
    try:
        sessions = build_services(engine).ctx.sessions
        async with sessions() as s:
            visit = await s.get(models.Visit, visit_id)
            assert visit is not None
            budi = (await s.execute(select(models.Account.id).where(models.Account.telegram_id == 910002))).scalar_one()
            events = (
                await s.execute(
                    select(func.count())
                    .select_from(models.AuditEvent)
                    .where(models.AuditEvent.action == "visit.screen", models.AuditEvent.entity_id == str(visit_id))
                )
            ).scalar_one()
            return visit, budi, events
    finally:
        await engine.dispose()


def to_budi(kind: str, needle: str) -> Any:
    return lambda c: c.method == kind and c.chat_id == BUDI.user["id"] and needle in c.text


async def test_one_persons_updates_alternate_between_two_workers(
    workers: tuple[Webhook, Webhook], api: FakeBotApi, pg_demo: str
) -> None:
    a, b = workers
    assert len(api.of("setWebhook")) == 2  # each worker started on its own here (serve --workers sets it once)
    visit_id, name = await waiting_visit(pg_demo)
    began = time.monotonic()

    # A: open the visit from the Daftar Penerima Vaksin.
    mark = api.last_seq
    await a.deliver(BUDI.press(f"v:screen:{visit_id}", message_id=1))
    prompt = await api.wait_for(to_budi("sendMessage", "suhu tubuh"), since=mark)
    assert name in prompt.text

    # B: temperature and blood pressure in one message; B must see the state A left in Redis.
    mark = api.last_seq
    await b.deliver(BUDI.message("36,5 120/80"))
    checklist = await api.wait_for(to_budi("sendMessage", "36,5 °C"), since=mark)
    all_no = checklist.button("✅")
    assert all_no.startswith(f"m2:done:{visit_id}")

    # A: "Semua tidak" edits the checklist into the review.
    mark = api.last_seq
    await a.deliver(BUDI.press(all_no, message_id=checklist.message_id or 0))
    review = await api.wait_for(to_budi("editMessageText", "LANJUT"), since=mark)
    save = review.button("💾")

    # B: "Simpan".
    mark = api.last_seq
    await b.deliver(BUDI.press(save, message_id=checklist.message_id or 0))
    saved = await api.wait_for(to_budi("editMessageText", "Tersimpan"), since=mark)
    took = time.monotonic() - began

    # The replies came in the order of the flow, each once.
    flow = [c for c in api.messages(BUDI.user["id"])]
    assert [c.seq for c in flow] == [prompt.seq, checklist.seq, review.seq, saved.seq], [
        (c.method, c.text[:30]) for c in flow
    ]
    # PL holds the screening, saved once, by Budi.
    visit, budi, events = await visit_and_screenings(pg_demo, visit_id)
    assert visit.status == "menunggu_vaksinasi" and visit.outcome == "lanjut"
    assert (visit.temperature_c, visit.systolic, visit.diastolic) == (Decimal("36.5"), 120, 80)
    assert visit.screened_by == budi and events == 1
    print(f"\nfour updates alternating between two workers: {took:.2f} s")  # for the report, not asserted


async def test_an_update_delivered_to_both_workers_is_handled_once(
    workers: tuple[Webhook, Webhook], api: FakeBotApi, redis_url: str
) -> None:
    a, b = workers
    update = BUDI.message("/start")
    mark = api.last_seq
    await asyncio.gather(a.deliver(update), b.deliver(update))  # both answer 200: Telegram must not retry
    await api.wait_for(to_budi("sendMessage", ""), since=mark)
    await asyncio.sleep(1.5)  # room for a second answer, if one were coming
    assert len([c for c in api.of("sendMessage", chat_id=BUDI.user["id"]) if c.seq > mark]) == 1
    # The claim that settled it is in the shared Redis.
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    try:
        assert await redis.exists(f"frontdesk:upd:{TOKEN.split(':')[0]}:{update['update_id']}") == 1
    finally:
        await redis.aclose()


async def test_serve_with_two_workers_migrates_and_sets_the_webhook_once(
    postgres_server: PostgresServer, redis_url: str, api: FakeBotApi, tmp_path: Path
) -> None:
    name = f"w_{uuid.uuid4().hex[:12]}"
    postgres_server.create_database(name)  # empty: `serve` migrates it before the workers start
    port = free_port()
    env = worker_env(postgres_server.url(name), redis_url, api)
    frontdesk = Path(sys.executable).with_name("frontdesk")
    serve = Process("serve", [str(frontdesk), "serve", "--workers", "2", "--port", str(port)], env, tmp_path)
    try:
        await serve.ready(port)
        assert [c.params["url"] for c in api.of("setWebhook")] == [WEBHOOK_URL]  # by the parent, once
        workers = spawned_workers(serve.proc.pid)
        assert len(workers) == 2, (workers, serve.log())
        async with httpx.AsyncClient(timeout=10) as client:
            hook = Webhook("serve", port, client)
            mark = api.last_seq
            await hook.deliver(BUDI.message("/start"))  # a stranger on this empty database
            reply: Call = await api.wait_for(to_budi("sendMessage", "/daftar"), since=mark)
        assert reply.token == TOKEN
        # The workers serve on the loop EVENT_LOOP chooses (api/eventloop.py: uvloop where it is installed).
        loop = loop_name(env.get("EVENT_LOOP", "auto"))
        async with httpx.AsyncClient(timeout=10) as client:  # whichever worker answers
            for _ in range(4):
                metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
                assert f'frontdesk_event_loop_info{{loop="{loop}"}} 1.0' in metrics, metrics[-2000:]
    finally:
        serve.stop()
        postgres_server.drop_database(name)
