"""The simulation sandbox's API: the real dispatcher behind a chat store, and the safety rules.

The app runs with its lifespan (the composition root) over a copy of the seeded SQLite template, as
``frontdesk serve`` would without a token. Browser tests of the page are in tests/e2e.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from fastapi import FastAPI

from api.main import create_app
from api.sandbox import (
    NEW_PERSON_MIN_ID,
    RoutingSession,
    Sandbox,
    decide,
    host_name,
    is_loopback,
    sandbox_note,
    telegram_html,
)
from bot.i18n import catalog
from core.config import Settings
from core.db.seed import DEMO_ACCOUNTS
from core.ports import FixedClock

MEJA1 = 910001
DINKES = 910010
WRITE = {"X-Sandbox": "1"}
TOKEN = "123456:real-looking-token-for-tests"
App = tuple[FastAPI, httpx.AsyncClient]


def _settings(url: str, **extra: Any) -> Settings:
    return Settings(database_url=url, _env_file=None, **{"telegram_bot_token": None, **extra})  # type: ignore[call-arg]


@pytest.fixture
def demo_sqlite(sqlite_templates: Any, tmp_path: Path) -> str:
    """A copy of the seeded SQLite template (seed-demo with the test session's TODAY)."""
    path = tmp_path / "pl.db"
    shutil.copyfile(sqlite_templates[True], path)
    return f"sqlite+aiosqlite:///{path}"


@asynccontextmanager
async def running(
    settings: Settings,
    clock: FixedClock | None = None,
    *,
    client: tuple[str, int] = ("127.0.0.1", 50000),
    base_url: str = "http://127.0.0.1:8000",
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings, clock=clock, migrate=False, run_bot=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url=base_url, timeout=30) as http:
            yield app, http


@pytest.fixture
async def sandbox(demo_sqlite: str, clock: FixedClock) -> AsyncIterator[App]:
    async with running(_settings(demo_sqlite), clock) as pair:
        yield pair


async def _updates(http: httpx.AsyncClient, chat: int, after: int = 0) -> dict[str, Any]:
    res = await http.get(f"/sandbox/api/chats/{chat}/updates", params={"after": after, "wait": 0})
    assert res.status_code == 200, res.text
    return res.json()


def _bot_texts(snapshot: dict[str, Any]) -> list[str]:
    return [m["text"] for m in snapshot["messages"] if m["from"] == "bot"]


# --- the page and the personas --------------------------------------------------------------------


async def test_the_page_and_its_files_are_served_without_a_build_step(sandbox: App) -> None:
    _, http = sandbox
    page = await http.get("/sandbox")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'data-testid="banner"' in page.text and "SIMULASI" in page.text
    for name, kind in (("sandbox.css", "text/css"), ("sandbox.js", "text/javascript")):
        res = await http.get(f"/sandbox/static/{name}")
        assert res.status_code == 200 and res.headers["content-type"].startswith(kind)
    assert (await http.get("/sandbox/static/..%2Findex.html")).status_code == 404


async def test_personas_are_the_demo_accounts_and_a_fresh_new_person(sandbox: App) -> None:
    _, http = sandbox
    data = (await http.get("/sandbox/api/personas", params={"lang": "en"})).json()
    assert [p["telegram_id"] for p in data["personas"]] == [a.telegram_id for a in DEMO_ACCOUNTS]
    assert all(p["state"] == "active" for p in data["personas"])
    meja1 = data["personas"][0]
    assert meja1["label"] == catalog("en")["persona.meja1"]
    assert data["new_person"]["telegram_id"] >= NEW_PERSON_MIN_ID
    assert data["new_person"]["label"] == catalog("en")["persona.new"]
    assert data["strings"]["banner_short"] == "SIMULASI"
    again = (await http.get("/sandbox/api/personas")).json()
    assert again["new_person"]["telegram_id"] != data["new_person"]["telegram_id"]
    assert again["strings"]["banner"] == catalog("id")["sandbox.banner"]


# --- the same code path: real dispatcher, replies in the chat store -----------------------------------


async def test_start_as_meja1_shows_the_menu_and_sets_the_chat_commands(sandbox: App) -> None:
    _, http = sandbox
    opened = (await http.post(f"/sandbox/api/chats/{MEJA1}/open", json={"lang": "id"}, headers=WRITE)).json()
    commands = [c["command"] for c in opened["commands"]]
    assert "cari" in commands and "daftar" not in commands  # set by the real notifier for this chat
    res = await http.post(f"/sandbox/api/chats/{MEJA1}/messages", json={"text": "/start"}, headers=WRITE)
    assert res.status_code == 200
    snap = await _updates(http, MEJA1)
    assert snap["messages"][0]["from"] == "user" and snap["messages"][0]["text"] == "/start"
    reply = _bot_texts(snap)[-1]
    assert "Rina" in reply and "/cari" in reply
    assert snap["persona"]["name"] == "Rina (meja 1)"


async def test_a_stranger_is_told_to_ask_for_access(sandbox: App) -> None:
    _, http = sandbox
    person = (await http.get("/sandbox/api/personas")).json()["new_person"]["telegram_id"]
    opened = (await http.post(f"/sandbox/api/chats/{person}/open", json={"lang": "en"}, headers=WRITE)).json()
    assert "daftar" in [c["command"] for c in opened["commands"]]
    await http.post(f"/sandbox/api/chats/{person}/messages", json={"text": "/start"}, headers=WRITE)
    reply = _bot_texts(await _updates(http, person))[-1]
    assert "/daftar" in reply
    assert "<b>" not in reply  # plain text for the page; the HTML is in "html"
    listed = (await http.get("/sandbox/api/personas")).json()["recent"]
    assert [p["telegram_id"] for p in listed] == [person]


async def test_the_long_poll_wakes_when_the_bot_answers(sandbox: App) -> None:
    _, http = sandbox
    version = (await _updates(http, MEJA1))["version"]
    started = time.perf_counter()
    poll = asyncio.create_task(http.get(f"/sandbox/api/chats/{MEJA1}/updates", params={"after": version, "wait": 10}))
    await asyncio.sleep(0.05)
    assert not poll.done()
    await http.post(f"/sandbox/api/chats/{MEJA1}/messages", json={"text": "/bantuan"}, headers=WRITE)
    res = await asyncio.wait_for(poll, 5)
    assert time.perf_counter() - started < 5
    assert res.json()["version"] > version and res.json()["messages"]


async def test_a_long_poll_without_news_returns_after_its_wait(sandbox: App) -> None:
    _, http = sandbox
    version = (await _updates(http, MEJA1))["version"]
    res = await http.get(f"/sandbox/api/chats/{MEJA1}/updates", params={"after": version, "wait": 0.2})
    assert res.json()["messages"] == [] and res.json()["version"] == version


async def test_a_ticket_shows_the_target_card(sandbox: App, demo_sqlite: str) -> None:
    _, http = sandbox
    ticket, name = await demo_target(demo_sqlite)
    await http.post(f"/sandbox/api/chats/{MEJA1}/messages", json={"text": ticket}, headers=WRITE)
    card = _bot_texts(await _updates(http, MEJA1))[-1]
    assert name in card


async def demo_target(url: str) -> tuple[str, str]:
    """A target scheduled at the demo faskes (the first by id), as (ticket, name)."""
    from sqlalchemy import text

    from core.db.engine import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text("select ticket, name from targets where assigned_faskes_code = '3273P001' order by id limit 1")
                )
            ).one()
    finally:
        await engine.dispose()
    return str(row[0]), str(row[1])


# --- what the bot sends, as the page sees it -------------------------------------------------------------


async def test_inline_buttons_presses_and_pop_up_answers(sandbox: App) -> None:
    app, http = sandbox
    bot = app.state.runtime.bot
    markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Old", callback_data="zz:gone")]])
    sent = await bot.send_message(MEJA1, "<b>Pick</b> <script>x</script>", reply_markup=markup)
    snap = await _updates(http, MEJA1)
    msg = next(m for m in snap["messages"] if m["id"] == sent.message_id)
    assert msg["html"] == "<b>Pick</b> &lt;script&gt;x&lt;/script&gt;"
    assert msg["keyboard"] == [[{"text": "Old", "kind": "callback", "data": "zz:gone"}]]
    # No handler knows the button: the fallback answers with a pop-up, as in Telegram.
    res = await http.post(
        f"/sandbox/api/chats/{MEJA1}/callback", json={"message_id": sent.message_id, "data": "zz:gone"}, headers=WRITE
    )
    assert res.status_code == 200
    after = await _updates(http, MEJA1, snap["version"])
    assert [a["text"] for a in after["alerts"]] == [catalog("id")["error.stale_button"]]
    # A button that is not on the message cannot be pressed.
    res = await http.post(
        f"/sandbox/api/chats/{MEJA1}/callback", json={"message_id": sent.message_id, "data": "zz:other"}, headers=WRITE
    )
    assert res.status_code == 409


async def test_edits_replace_the_message_in_place(sandbox: App) -> None:
    app, http = sandbox
    bot = app.state.runtime.bot
    markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Refresh", callback_data="q:r")]])
    sent = await bot.send_message(MEJA1, "list v1", reply_markup=markup)
    version = (await _updates(http, MEJA1))["version"]
    await bot.edit_message_text("list v2", chat_id=MEJA1, message_id=sent.message_id, reply_markup=markup)
    snap = await _updates(http, MEJA1, version)
    assert [(m["id"], m["text"], m["edited"]) for m in snap["messages"]] == [(sent.message_id, "list v2", True)]
    assert snap["messages"][0]["keyboard"]
    await bot.edit_message_text("list v3", chat_id=MEJA1, message_id=sent.message_id)  # no markup: buttons go
    snap = await _updates(http, MEJA1, snap["version"])
    assert snap["messages"][0]["keyboard"] is None
    await bot.delete_message(MEJA1, sent.message_id)
    snap = await _updates(http, MEJA1, snap["version"])
    assert snap["messages"][0]["deleted"] is True
    assert all(m["id"] != sent.message_id for m in (await _updates(http, MEJA1))["messages"])


async def test_reply_keyboard_and_contact_share(sandbox: App) -> None:
    app, http = sandbox
    bot = app.state.runtime.bot
    person = NEW_PERSON_MIN_ID + 4242
    keyboard = ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text="Share my number", request_contact=True)], [KeyboardButton(text="/batal")]],
        one_time_keyboard=True,
        resize_keyboard=True,
    )
    await bot.send_message(person, "Your phone?", reply_markup=keyboard)
    snap = await _updates(http, person)
    assert snap["reply_keyboard"]["rows"][0] == [{"text": "Share my number", "request_contact": True}]
    res = await http.post(f"/sandbox/api/chats/{person}/contact", headers=WRITE)
    assert res.status_code == 200
    snap = await _updates(http, person)
    contact = next(m for m in snap["messages"] if m["from"] == "user")
    assert contact["contact"] == {"phone": f"+62812{person:07d}", "name": snap["persona"]["name"]}
    assert snap["reply_keyboard"] is None  # one-time keyboard hides after use
    await bot.send_message(person, "again", reply_markup=keyboard)
    await bot.send_message(person, "removed", reply_markup=ReplyKeyboardRemove())
    assert (await _updates(http, person))["reply_keyboard"] is None


async def test_documents_are_downloads(sandbox: App) -> None:
    app, http = sandbox
    bot = app.state.runtime.bot
    await bot.send_document(MEJA1, BufferedInputFile(b"nik,nama\n", filename="daftar.csv"), caption="<i>Daftar</i>")
    msg = (await _updates(http, MEJA1))["messages"][-1]
    assert msg["document"]["name"] == "daftar.csv" and msg["html"] == "<i>Daftar</i>"
    res = await http.get(f"/sandbox/api/chats/{MEJA1}/documents/{msg['document']['id']}")
    assert res.status_code == 200 and res.content == b"nik,nama\n"
    assert res.headers["content-disposition"] == 'attachment; filename="daftar.csv"'
    assert (await http.get(f"/sandbox/api/chats/{DINKES}/documents/{msg['document']['id']}")).status_code == 404


async def test_a_long_running_sandbox_keeps_each_chats_newest_messages_and_files(
    sandbox: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A training week must not grow the process without end: old messages and files are forgotten."""
    import api.sandbox as sandbox_module

    monkeypatch.setattr(sandbox_module, "MAX_MESSAGES", 5)
    monkeypatch.setattr(sandbox_module, "MAX_DOCUMENTS", 2)
    app, http = sandbox
    bot = app.state.runtime.bot
    for i in range(8):
        await bot.send_message(MEJA1, f"pesan {i}")
    assert _bot_texts(await _updates(http, MEJA1)) == [f"pesan {i}" for i in range(3, 8)]
    ids = []
    for i in range(3):
        await bot.send_document(MEJA1, BufferedInputFile(b"x", filename=f"f{i}.csv"))
        ids.append((await _updates(http, MEJA1))["messages"][-1]["document"]["id"])
    statuses = [(await http.get(f"/sandbox/api/chats/{MEJA1}/documents/{d}")).status_code for d in ids]
    assert statuses == [404, 200, 200]
    assert len((await _updates(http, MEJA1))["messages"]) == 5


async def test_command_menus_per_chat_and_default(sandbox: App) -> None:
    app, http = sandbox
    bot = app.state.runtime.bot
    await bot.set_my_commands([BotCommand(command="start", description="Mulai")])
    assert [c["command"] for c in (await _updates(http, DINKES))["commands"]] == ["start"]
    await bot.set_my_commands(
        [BotCommand(command="permintaan", description="Permintaan")], scope=BotCommandScopeChat(chat_id=DINKES)
    )
    assert [c["command"] for c in (await _updates(http, DINKES))["commands"]] == ["permintaan"]
    assert [c["command"] for c in (await _updates(http, MEJA1))["commands"]] == ["start"]
    await bot.delete_my_commands(scope=BotCommandScopeChat(chat_id=DINKES))
    assert [c["command"] for c in (await _updates(http, DINKES))["commands"]] == ["start"]


async def test_a_notification_to_another_chat_wakes_that_chats_poll(sandbox: App) -> None:
    """What makes two tabs see each other: core's notifier writes into the other persona's chat."""
    app, http = sandbox
    version = (await _updates(http, MEJA1))["version"]
    poll = asyncio.create_task(http.get(f"/sandbox/api/chats/{MEJA1}/updates", params={"after": version, "wait": 10}))
    await asyncio.sleep(0.05)
    await app.state.runtime.services.ctx.notifier.refresh_menu(MEJA1)
    res = await asyncio.wait_for(poll, 5)
    assert "cari" in [c["command"] for c in res.json()["commands"]]


# --- safety ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "token", "enabled", "on"),
    [
        ("sqlite+aiosqlite:////srv/frontdesk.db", None, None, True),
        ("sqlite+aiosqlite:////srv/frontdesk.db", None, False, False),
        ("sqlite+aiosqlite:////srv/frontdesk.db", TOKEN, None, False),
        ("sqlite+aiosqlite:////srv/frontdesk.db", TOKEN, True, False),  # the production file: refused
        ("sqlite+aiosqlite:////srv/sandbox.db", TOKEN, True, True),
        ("sqlite+aiosqlite:////srv/sandbox/frontdesk.db", TOKEN, True, False),  # the file name decides
        ("postgresql+asyncpg://u@db/frontdesk", None, None, False),  # a token gone missing on production
        ("postgresql+asyncpg://u@db/frontdesk", None, True, False),
        ("postgresql+asyncpg://u@db/frontdesk_sandbox", None, None, True),
        ("postgresql+asyncpg://u@db/frontdesk_sandbox", TOKEN, True, True),
        ("postgresql+asyncpg://u@db/frontdesk_sandbox", TOKEN, None, False),
    ],
)
def test_when_the_sandbox_may_run(url: str, token: str | None, enabled: bool | None, on: bool) -> None:
    settings = _settings(url, telegram_bot_token=token, sandbox_enabled=enabled)
    decision = decide(settings)
    assert decision.enabled is on, decision.reason
    note = sandbox_note(settings, "0.0.0.0", 8000)
    assert (note.strip().endswith("http://127.0.0.1:8000/sandbox") and "SIMULASI" in note) if on else note == ""


async def test_with_a_token_every_sandbox_route_is_404(demo_sqlite: str) -> None:
    for enabled in (None, True):  # True: refused, the database is not a training database
        async with running(_settings(demo_sqlite, telegram_bot_token=TOKEN, sandbox_enabled=enabled)) as (app, http):
            assert app.state.sandbox is None
            for path in (
                "/sandbox",
                "/sandbox/static/sandbox.js",
                "/sandbox/api/personas",
                f"/sandbox/api/chats/{MEJA1}/updates?wait=0",
            ):
                assert (await http.get(path)).status_code == 404, path
            res = await http.post(f"/sandbox/api/chats/{MEJA1}/messages", json={"text": "/start"}, headers=WRITE)
            assert res.status_code == 404


async def test_with_a_token_on_a_training_database_sandbox_chats_never_reach_telegram(
    sqlite_templates: Any, tmp_path: Path, clock: FixedClock
) -> None:
    path = tmp_path / "sandbox.db"
    shutil.copyfile(sqlite_templates[True], path)
    settings = _settings(
        f"sqlite+aiosqlite:///{path}",
        telegram_bot_token=TOKEN,
        sandbox_enabled=True,
        telegram_api_base="http://127.0.0.1:9",
    )  # were anything sent to "Telegram", it would fail
    async with running(settings, clock) as (app, http):
        assert isinstance(app.state.runtime.bot.session, RoutingSession)
        await http.post(f"/sandbox/api/chats/{MEJA1}/open", json={}, headers=WRITE)
        await http.post(f"/sandbox/api/chats/{MEJA1}/messages", json={"text": "/start"}, headers=WRITE)
        assert "Rina" in _bot_texts(await _updates(http, MEJA1))[-1]
        session = app.state.runtime.bot.session
        assert not session._is_local(_send(12345))  # a real person's chat still goes to Telegram
        assert not session._is_local(_send(NEW_PERSON_MIN_ID + 7))  # even in the new-person range...
        person = (await http.get("/sandbox/api/personas")).json()["new_person"]["telegram_id"]
        assert session._is_local(_send(person))  # ...unless the sandbox made that person up
    assert not isinstance(app.state.runtime.bot.session, RoutingSession)  # let go at shutdown


def _send(chat_id: int) -> Any:
    from aiogram.methods import SendMessage

    return SendMessage(chat_id=chat_id, text="x")


@pytest.mark.parametrize(
    ("client", "base_url", "headers"),
    [
        (("10.1.2.3", 40000), "http://127.0.0.1:8000", {}),  # another machine
        (("127.0.0.1", 40000), "http://evil.example:8000", {}),  # DNS rebinding from a web page
        (("127.0.0.1", 40000), "http://127.0.0.1:8000", {"X-Forwarded-For": "203.0.113.9"}),  # through a proxy
    ],
)
async def test_only_loopback_clients_are_served(
    demo_sqlite: str, client: tuple[str, int], base_url: str, headers: dict[str, str]
) -> None:
    async with running(_settings(demo_sqlite), client=client, base_url=base_url) as (_, http):
        assert (await http.get("/sandbox", headers=headers)).status_code == 403
        assert (await http.get("/sandbox/api/personas", headers=headers)).status_code == 403


async def test_remote_clients_when_explicitly_allowed(demo_sqlite: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_ALLOW_REMOTE", "true")
    lan = running(_settings(demo_sqlite), client=("10.1.2.3", 4000), base_url="http://trainer.lan:8000")
    async with lan as (_, http):
        assert (await http.get("/sandbox")).status_code == 200


async def test_writes_need_the_sandbox_header_and_a_sandbox_chat(sandbox: App) -> None:
    _, http = sandbox
    res = await http.post(f"/sandbox/api/chats/{MEJA1}/messages", json={"text": "/start"})
    assert res.status_code == 403
    res = await http.post("/sandbox/api/chats/12345/messages", json={"text": "/start"}, headers=WRITE)
    assert res.status_code == 404  # not a persona: the sandbox never writes as a real Telegram user


def test_loopback_names() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("10.0.0.1") and not is_loopback(None) and not is_loopback("testclient")
    assert host_name("[::1]:8000") == "::1" and host_name("localhost:8000") == "localhost"
    assert host_name("127.0.0.1") == "127.0.0.1"


# --- Telegram HTML ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "html", "plain"),
    [
        ("<b>Rina</b> &amp; co", "<b>Rina</b> &amp; co", "Rina & co"),
        ("<strong>x</strong><em>y</em>", "<b>x</b><i>y</i>", "xy"),
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;", "<script>alert(1)</script>"),
        ('<a href="javascript:alert(1)">x</a>', "x", "x"),
        (
            '<a href="https://ex.am/p?a=1&amp;b=2">x</a>',
            '<a href="https://ex.am/p?a=1&amp;b=2" target="_blank" rel="noopener noreferrer">x</a>',
            "x",
        ),
        ('<b onclick="x()">bold</b>', "<b>bold</b>", "bold"),
        ("<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)&gt;", "<img src=x onerror=alert(1)>"),
        ("a <b>unclosed", "a <b>unclosed</b>", "a unclosed"),
        ("stray </i> end", "stray &lt;/i&gt; end", "stray </i> end"),
        ("1 < 2 > 0", "1 &lt; 2 &gt; 0", "1 < 2 > 0"),
        ("<pre>x\ny</pre>", "<pre>x\ny</pre>", "x\ny"),
    ],
)
def test_only_telegram_tags_are_rendered(source: str, html: str, plain: str) -> None:
    got_html, got_plain, _ = telegram_html(source)
    assert (got_html, got_plain) == (html, plain)


def test_entities_count_utf16_like_telegram() -> None:
    _, plain, entities = telegram_html("✅ <b>Dosis 1</b> 👍 <i>ok</i>")
    assert plain == "✅ Dosis 1 👍 ok"
    assert [(e.type, e.offset, e.length) for e in entities] == [("bold", 2, 7), ("italic", 13, 2)]


def test_the_sandbox_is_detached_when_the_app_stops(demo_sqlite: str) -> None:
    async def run() -> Sandbox:
        async with running(_settings(demo_sqlite)) as (app, _):
            sandbox: Sandbox = app.state.sandbox
            assert app.state.runtime.bot.session.sink is not None
        assert sandbox.store.closed and app.state.runtime.bot.session.sink is None
        return sandbox

    asyncio.run(run())
