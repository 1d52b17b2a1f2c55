"""Item 6: access protections, each exercised from outside, as an attacker would meet it.

* the sandbox (a Telegram look-alike that can act as any demo account) is unreachable when a real bot
  token is configured;
* lookups by NIK are rate-limited per account, visibly (a refusal in chat and a WARNING line naming the
  account), and the budget is shared by all workers through Redis;
* support API tokens are stored hashed: the database holds no clear token anywhere, and the stored hash
  is not itself a credential;
* the Telegram webhook only accepts updates that carry the secret; without a secret it does not start.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from api.main import create_app
from api.routes.webhook import SECRET_HEADER, configure_webhook, drain_webhook_tasks
from bot.local_session import LocalSession
from core.config import Settings
from core.db import models
from core.db.engine import create_engine, create_sessionmaker
from core.ports import FixedClock, SystemClock
from core.services.context import CoreContext, NullNotifier
from core.services.tokens import SCOPES, TokenService, hash_token
from tests.bot.harness import Harness, Person
from tests.conftest import NOW
from tests.reliability.support import RINA, Worker, record_figures, settings_for

TOKEN = "123456789:real-looking-token-for-the-access-tests"
SECRET = "webhook-Secret_for-the-access-tests"
WEBHOOK_URL = "https://frontdesk.example/telegram/webhook"
SANDBOX_WRITE = {"X-Sandbox": "1"}


@asynccontextmanager
async def serving(settings: Settings, clock: Any = None) -> AsyncIterator[tuple[Any, httpx.AsyncClient, LocalSession]]:
    """The app with its lifespan (the composition root), as `frontdesk serve` runs it; loopback client."""
    session = LocalSession()
    app = create_app(settings, clock=clock, migrate=False, run_bot=False, bot_session=session)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000", timeout=30) as http:
            yield app, http, session


# --------------------------------------------------------------------------------------------
# The sandbox
# --------------------------------------------------------------------------------------------


async def test_the_sandbox_is_unreachable_when_a_real_token_is_configured(demo_sqlite: str) -> None:
    offline = settings_for(demo_sqlite)
    async with serving(offline) as (_app, http, _session):
        assert (await http.get("/sandbox")).status_code == 200  # control: the page exists offline
    tried = 0
    for enabled in (None, True):  # asking for it explicitly does not help on a production database
        with_token = settings_for(demo_sqlite, telegram_bot_token=TOKEN, sandbox_enabled=enabled)
        async with serving(with_token) as (_app, http, session):
            for path in ("/sandbox", "/sandbox/", "/sandbox/api/personas", "/sandbox/api/chats/910001/updates?wait=0"):
                assert (await http.get(path)).status_code == 404, path
                tried += 1
            for path, body in (
                ("/sandbox/api/chats/910001/open", {}),
                ("/sandbox/api/chats/910001/messages", {"text": "/start"}),
                ("/sandbox/api/chats/910001/callback", {"message_id": 1, "data": "v:screen:1"}),
            ):
                assert (await http.post(path, json=body, headers=SANDBOX_WRITE)).status_code == 404, path
                tried += 1
            assert session.calls == []  # nothing reached the dispatcher on anybody's behalf
    record_figures("access-sandbox", requests_refused=tried)


# --------------------------------------------------------------------------------------------
# Lookup rate limit
# --------------------------------------------------------------------------------------------

LIMIT = 5


@pytest.mark.parametrize("store", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_scraping_by_nik_is_slow_and_visible(
    demo_sqlite: str, store: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    redis_url = request.getfixturevalue("redis_url") if store == "redis" else None
    clock = FixedClock(NOW)
    # Two workers (with Redis they share one budget; in memory each worker is on its own, so one worker).
    workers = [_worker(demo_sqlite, clock, redis_url, f"w{i}") for i in range(2 if redis_url else 1)]
    builder = Harness(dispatcher=None, bot=None, session=None)  # type: ignore[arg-type]
    engine = workers[0].runtime.engine
    async with engine.connect() as conn:
        niks = list(
            (await conn.execute(select(models.Target.nik).order_by(models.Target.id).limit(LIMIT + 3))).scalars()
        )
    caplog.set_level(logging.INFO)

    async def lookup(person: Person, nik: str, i: int) -> str:
        w = workers[i % len(workers)]
        start = len(w.session.calls)
        await w.feed(builder.message_update(person, nik))
        return Harness.text(w.session.calls[start:])

    try:
        answers = [await lookup(RINA, nik, i) for i, nik in enumerate(niks[: LIMIT + 2])]
        for nik, answer in zip(niks[:LIMIT], answers[:LIMIT], strict=True):
            assert nik in answer  # the card (the NIK typed, shown whole)
        for nik, answer in zip(niks[LIMIT : LIMIT + 2], answers[LIMIT:], strict=True):
            assert "Terlalu banyak pencarian" in answer and nik not in answer
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "rate limit" in r.getMessage()]
        rina_id = (await workers[0].runtime.services.accounts.resolve_actor(RINA.telegram_id)).account_id
        assert len(warnings) == 2 and all(f"account {rina_id}" in r.getMessage() for r in warnings)
        # Per account: another desk still looks up; after the window Rina may again.
        assert niks[0] in await lookup(Person(910002), niks[0], 0)
        clock.advance(minutes=1)
        assert niks[-1] in await lookup(RINA, niks[-1], 1)
    finally:
        for w in workers:
            await w.close()
    record_figures(
        f"access-rate-limit-{store}",
        limit_per_minute=LIMIT,
        lookups=LIMIT + 4,
        refused=2,
        warnings=2,
        workers=len(workers),
    )


def _worker(db: str, clock: FixedClock, redis_url: str | None, name: str) -> Worker:
    from api.runtime import build_runtime

    return Worker(build_runtime(settings_for(db, redis_url, lookup_rate_per_minute=LIMIT), clock=clock), name)


# --------------------------------------------------------------------------------------------
# API tokens
# --------------------------------------------------------------------------------------------


async def test_api_tokens_are_stored_hashed_and_the_hash_is_no_credential(demo_db_url: str, request: Any) -> None:
    engine = create_engine(demo_db_url)
    try:
        ctx = CoreContext(sessions=create_sessionmaker(engine), clock=SystemClock(), notifier=NullNotifier())
        tokens = TokenService(ctx)
        created = [await tokens.create(f"support {i}", SCOPES, ["*"]) for i in range(3)]
        # Nowhere in the database, in any table, any column (the audit trail included).
        rows_seen = 0
        async with engine.connect() as conn:
            for table in models.Base.metadata.sorted_tables:
                for row in (await conn.execute(select(table))).all():
                    rows_seen += 1
                    dump = json.dumps([str(v) for v in row])
                    for _, clear in created:
                        assert clear not in dump and clear[4:] not in dump, table.name
            stored = (await conn.execute(select(models.ApiToken.token_hash))).scalars().all()
        assert sorted(stored) == sorted(hash_token(clear) for _, clear in created)
    finally:
        await engine.dispose()
    if demo_db_url.startswith("sqlite"):  # not even in the file's free pages
        raw = await asyncio.to_thread(Path(demo_db_url.split("///", 1)[1]).read_bytes)
        assert not any(clear.encode() in raw for _, clear in created)

    # Over HTTP: the clear token opens the API; its stored hash (what a database reader has) does not.
    async with serving(settings_for(demo_db_url, sandbox_enabled=False)) as (_, http, _session):
        clear = created[0][1]
        assert (await http.get("/api/v1/whoami", headers={"Authorization": f"Bearer {clear}"})).status_code == 200
        for presented in (hash_token(clear), "pfd_" + hash_token(clear), clear + "x", clear[:-1]):
            res = await http.get("/api/v1/whoami", headers={"Authorization": f"Bearer {presented}"})
            assert res.status_code == 401, presented
    record_figures(f"access-tokens-{request.node.callspec.id}", tokens=3, rows_searched=rows_seen, forged_presented=4)


# --------------------------------------------------------------------------------------------
# Webhook secret
# --------------------------------------------------------------------------------------------


def _start_update(update_id: int) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1795662000,
            "chat": {"id": RINA.telegram_id, "type": "private"},
            "from": {"id": RINA.telegram_id, "is_bot": False, "first_name": "Rina", "language_code": "id"},
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


async def test_the_webhook_takes_updates_only_with_its_secret(demo_sqlite: str) -> None:
    settings = settings_for(
        demo_sqlite, telegram_bot_token=TOKEN, webhook_url=WEBHOOK_URL, webhook_secret=SECRET, sandbox_enabled=False
    )
    forged = [
        None,
        "",
        "wrong",
        SECRET[:-1],
        SECRET + " ",
        SECRET.lower(),
        "x" * 10_000,
        ("é" + SECRET[1:]).encode("latin-1"),
    ]
    async with serving(settings, FixedClock(NOW)) as (app, http, session):
        for i, secret in enumerate(forged):
            headers = {"Content-Type": "application/json"}
            if secret is not None:
                headers[SECRET_HEADER] = secret
            res = await http.post("/telegram/webhook", content=json.dumps(_start_update(i + 1)), headers=headers)
            assert res.status_code in (401, 403), (secret, res.status_code)
        await drain_webhook_tasks(app)
        assert session.calls == []  # no forged update was handled
        res = await http.post(
            "/telegram/webhook",
            content=json.dumps(_start_update(100)),
            headers={"Content-Type": "application/json", SECRET_HEADER: SECRET},
        )
        assert res.status_code == 200
        await drain_webhook_tasks(app)
        assert any("Rina" in t for t in Harness.texts(session.calls))

    # Webhook mode without a secret: the route stays closed and the webhook is not set.
    open_hook = settings_for(demo_sqlite, telegram_bot_token=TOKEN, webhook_url=WEBHOOK_URL, sandbox_enabled=False)
    async with serving(open_hook, FixedClock(NOW)) as (app, http, session):
        res = await http.post("/telegram/webhook", content=json.dumps(_start_update(200)), headers={SECRET_HEADER: "x"})
        assert res.status_code == 404
        with pytest.raises(RuntimeError, match="WEBHOOK_SECRET"):
            await configure_webhook(app.state.runtime)
    record_figures("access-webhook", forged_secrets=len(forged))
