"""The sandbox page in a real browser (Playwright driving Debian's Chromium): clicks and typing only.

The server is the real app (``create_app``: composition root, dispatcher, handlers, core) on a copy of the
seeded SQLite template, run by uvicorn in a thread of this process so that the tests hold its clock (for the
30-minute observation). One test starts ``frontdesk serve`` itself on an empty database, as ``make run`` does.

Screenshots of the key screens go to ``test-artifacts/sandbox/`` (gitignored); timings to ``timings.json``
there (measured, never asserted: see bench/ for budgets).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bot.i18n import catalog
from core.ports import FixedClock

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "sandbox"
DOCS_PICTURE = Path(__file__).resolve().parents[2] / "docs" / "sandbox-mid-visit.png"
TIMINGS: dict[str, Any] = {}

MEJA1, MEJA2, MEJA4, DINKES = 910001, 910002, 910004, 910010
ID = catalog("id")  # the personas speak Indonesian (their accounts' language)


# =============================================================================
# Server and browser
# =============================================================================


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """The app under uvicorn in a background thread; stopped by the fixture (waiters released first)."""

    def __init__(self, database_url: str, clock: FixedClock) -> None:
        import uvicorn

        from api.main import create_app
        from core.config import Settings

        settings = Settings(database_url=database_url, telegram_bot_token=None, _env_file=None)  # type: ignore[call-arg]
        self.app = create_app(settings, clock=clock, migrate=False)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="sandbox-server", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.05)

    def call(self, make: Callable[[], Any]) -> Any:
        """Run a coroutine on the server's loop (as the bot's own code would, e.g. a notification)."""
        import asyncio

        loop = self.server.servers[0].get_loop()
        return asyncio.run_coroutine_threadsafe(make(), loop).result(timeout=15)

    def stop(self) -> None:
        sandbox = getattr(self.app.state, "sandbox", None)
        if sandbox is not None and self.server.servers:
            loop = self.server.servers[0].get_loop()
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(sandbox.store.release_waiters)
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def browser(sqlite_templates: Any) -> Iterator[Any]:
    # The seeded template is made with asyncio.run, which cannot run while Playwright's sync loop does: now.
    sqlite_templates[True]
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - the dev group has it
        pytest.skip(f"playwright is not installed: {exc}")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    if TIMINGS:
        path = ARTIFACTS / "timings.json"
        known = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        path.write_text(json.dumps({**known, **TIMINGS}, indent=2) + "\n", encoding="utf-8")


@pytest.fixture
def demo_db(sqlite_templates: Any, tmp_path: Path) -> Path:
    path = tmp_path / "pl.db"
    shutil.copyfile(sqlite_templates[True], path)
    return path


@pytest.fixture
def server(demo_db: Path, clock: FixedClock) -> Iterator[LiveServer]:
    live = LiveServer(f"sqlite+aiosqlite:///{demo_db}", clock)
    live.start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def context(browser: Any, server: LiveServer) -> Iterator[Any]:
    """One browser profile: its pages are the tabs of one trainer (each tab may hold another persona)."""
    ctx = browser.new_context(locale="id-ID", timezone_id="Asia/Jakarta", **PHONE)
    ctx.set_default_timeout(15_000)
    errors: list[str] = []
    ctx.on("page", lambda page: page.on("pageerror", lambda exc: errors.append(str(exc))))
    try:
        yield ctx
    finally:
        ctx.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


# =============================================================================
# Driving the page like a person
# =============================================================================


class Phone:
    """One tab holding one persona."""

    def __init__(self, page: Any, server: LiveServer) -> None:
        self.page = page
        self.server = server

    @classmethod
    def open(
        cls, context: Any, server: LiveServer, telegram_id: int | None = None, *, new_person: bool = False
    ) -> Phone:
        page = context.new_page()
        page.goto(f"{server.url}/sandbox")
        if new_person:
            page.get_by_test_id("new-person").click()
        else:
            page.locator(f'[data-testid="persona"][data-telegram-id="{telegram_id}"]').click()
        page.get_by_test_id("chat-screen").wait_for()
        return cls(page, server)

    # --- what the person sees -------------------------------------------------------------------
    @property
    def bot_messages(self) -> Any:
        return self.page.locator('[data-testid="message"][data-from="bot"]')

    def last_bot(self) -> Any:
        return self.bot_messages.last

    def bot_count(self) -> int:
        return int(self.bot_messages.count())

    def wait_bot_after(self, count: int) -> Any:
        self.bot_messages.nth(count).wait_for()
        return self.bot_messages.nth(count)

    def expect_last(self, text: str | re.Pattern[str]) -> None:
        from playwright.sync_api import expect

        expect(self.last_bot()).to_contain_text(text)

    def expect_any(self, text: str | re.Pattern[str]) -> Any:
        found = self.bot_messages.filter(has_text=text).last
        found.wait_for()
        return found

    # --- what the person does ------------------------------------------------------------------------
    def front(self) -> None:
        """The trainer switches to this tab (background tabs have their timers throttled)."""
        self.page.bring_to_front()

    def _synced(self, act: Callable[[], None], endpoint: str) -> int:
        """Do ``act``, which POSTs to ``endpoint``; wait until the bot has handled it and the page shows it all."""
        self.front()
        with self.page.expect_response(
            lambda r: r.request.method == "POST" and r.url.endswith(endpoint), timeout=30_000
        ) as info:
            act()
        response = info.value
        assert response.status == 200, f"{endpoint}: {response.status} {response.text()}"
        version = int(response.json()["version"])
        self.page.wait_for_function(
            "v => Number(document.getElementById('messages').dataset.version || 0) >= v", arg=version
        )
        return version

    def start(self) -> None:
        self._synced(lambda: self.page.get_by_test_id("start").click(), "/messages")

    def send(self, text: str) -> None:
        box = self.page.get_by_test_id("input")
        self.front()
        box.fill(text)
        self._synced(lambda: box.press("Enter"), "/messages")

    def share_contact(self) -> None:
        self._synced(lambda: self.page.get_by_test_id("share-contact").click(), "/contact")

    def press(self, label: str | re.Pattern[str], *, within: Any | None = None) -> None:
        """Tap an inline button (on the newest message that has it) and wait until the bot has handled it."""
        self.front()
        scope = (
            within
            if within is not None
            else self.page.locator('[data-testid="message"]')
            .filter(has=self.page.get_by_test_id("inline-button").filter(has_text=label))
            .last
        )
        button = scope.get_by_test_id("inline-button").filter(has_text=label).first
        self._synced(button.click, "/callback")

    def command(self, name: str) -> None:
        def pick() -> None:
            self.page.get_by_test_id("menu-button").click()
            self.page.locator(f'[data-testid="command"][data-command="{name}"]').click()

        self._synced(pick, "/messages")

    def menu_commands(self) -> list[str]:
        self.front()
        self.page.get_by_test_id("menu-button").click()
        self.page.get_by_test_id("command-menu").wait_for()
        names = [str(n) for n in self.page.get_by_test_id("command").evaluate_all("l => l.map(e => e.dataset.command)")]
        self.page.get_by_test_id("menu-button").click()
        return names

    def shot(self, name: str) -> Path:
        self.front()
        self.page.wait_for_timeout(250)  # let the pop-in animation end
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


# =============================================================================
# Demo data
# =============================================================================

TODAY = date(2026, 11, 26)  # tests/conftest.py: the seeded template's day


def demo_target(db: Path, *, offset: int = 0) -> dict[str, Any]:
    """A health worker aged 25–50 scheduled at the demo faskes today, with a phone: a plain first dose."""
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "select id, nik, ticket, name, birth_date from targets where assigned_faskes_code = '3273P001'"
            " and scheduled_date = ? and category = 'nakes' and phone is not null order by id",
            (TODAY.isoformat(),),
        ).fetchall()
    fits = [dict(r) for r in rows if 25 <= (TODAY.year - int(str(r["birth_date"])[:4])) <= 50]
    return fits[offset]


# =============================================================================
# Works today: personas, /start, a card, a stranger, the command menu
# =============================================================================


def test_personas_start_card_stranger_and_menu(context: Any, server: LiveServer, demo_db: Path) -> None:
    from playwright.sync_api import expect

    target = demo_target(demo_db)
    page = context.new_page()
    started = time.perf_counter()
    page.goto(f"{server.url}/sandbox")
    page.get_by_test_id("persona").first.wait_for()
    TIMINGS["page_load_to_personas_s"] = round(time.perf_counter() - started, 3)
    expect(page.get_by_test_id("banner")).to_contain_text("SIMULASI")
    expect(page.get_by_test_id("persona")).to_have_count(9)
    expect(page.get_by_test_id("new-person")).to_have_count(1)
    expect(page.locator('[data-testid="persona"][data-telegram-id="910001"]')).to_contain_text(ID["persona.meja1"])
    page.screenshot(path=str(ARTIFACTS / "01-personas.png"))

    # Meja 1: the START button sends /start; the bot answers with the menu of a meja-1 account.
    page.locator('[data-testid="persona"][data-telegram-id="910001"]').click()
    rina = Phone(page, server)
    expect(page.get_by_test_id("chat-persona")).to_have_text("Rina (meja 1)")
    rina.start()
    rina.expect_last("/cari")
    rina.shot("02-meja1-start")

    # A round trip: the ticket typed → the card on screen (POST, dispatcher, core, sink, long poll, render).
    before = rina.bot_count()
    box = page.get_by_test_id("input")
    box.fill(target["ticket"])
    started = time.perf_counter()
    box.press("Enter")
    rina.wait_bot_after(before)
    TIMINGS["message_to_reply_s"] = round(time.perf_counter() - started, 3)
    rina.expect_last(target["name"])
    rina.shot("03-meja1-card")

    # The command menu is the one set for this chat (by the real notifier), and /batal is in it.
    commands = rina.menu_commands()
    assert "cari" in commands and "batal" in commands and "daftar" not in commands
    page.get_by_test_id("menu-button").click()
    expect(page.get_by_test_id("command-menu")).to_be_visible()
    rina.shot("04-command-menu")
    page.locator('[data-testid="command"][data-command="batal"]').click()
    rina.expect_any(re.compile(re.escape(ID["common.nothing_to_cancel"]) + "|" + re.escape(ID["common.cancelled"])))

    # A document from the bot is a download (no flow sends one yet: the bot object sends it, as a flow would).
    from aiogram.types import BufferedInputFile

    bot = server.app.state.runtime.bot
    server.call(lambda: bot.send_document(MEJA1, BufferedInputFile(b"nik;nama\n", "daftar.csv"), caption="Daftar"))
    link = page.get_by_test_id("document").last
    expect(link).to_contain_text("daftar.csv")
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == "daftar.csv"
    assert Path(download.value.path()).read_bytes() == b"nik;nama\n"

    # Typing "/" offers the commands too, as Telegram does.
    page.get_by_test_id("input").fill("/ba")
    expect(page.get_by_test_id("command-menu")).to_be_visible()
    expect(page.get_by_test_id("command")).to_have_count(3)  # /bantuan /batal /bahasa
    page.get_by_test_id("input").fill("")

    # A stranger in a second tab: told to ask for access; the menu offers /daftar.
    stranger = Phone.open(context, server, new_person=True)
    stranger.start()
    stranger.expect_last("/daftar")
    assert "daftar" in stranger.menu_commands()
    stranger.shot("05-stranger")


# =============================================================================
# Access: a new person asks in one tab, the Dinkes admin approves in another
# =============================================================================


def test_access_request_approved_by_dinkes_in_another_tab(context: Any, server: LiveServer) -> None:
    from playwright.sync_api import expect

    dinkes = Phone.open(context, server, DINKES)  # open first: the request arrives live
    person = Phone.open(context, server, new_person=True)
    name = "Nurul Hidayah"

    person.start()
    person.command("daftar")
    person.expect_last(re.compile(r"nama", re.I))
    person.send(name)
    # The phone is asked for with Telegram's share-contact button (a reply keyboard).
    share = person.page.get_by_test_id("share-contact")
    expect(share).to_be_visible()
    person.shot("10-signup-share-contact")
    person.share_contact()
    expect(person.page.get_by_test_id("contact")).to_be_visible()
    person.send("3273P001")
    person.expect_last("Puskesmas Garuda")
    person.press(ID["signup.yes"])
    person.press(ID["access.role.meja1"])
    person.press(ID["signup.done"])
    person.press(ID["signup.submit"])
    person.expect_last(re.compile("Dinkes|Kota Bandung"))
    person.shot("11-signup-sent")

    # The Dinkes admin's tab got the request with its buttons, live.
    card = dinkes.expect_any(name)
    dinkes.shot("12-dinkes-request")
    dinkes.press(ID["admin.approve"], within=card)
    toast = dinkes.page.get_by_test_id("toast")
    expect(toast).to_be_visible()  # the pop-up answer to the press
    expect(toast).to_contain_text(name)
    dinkes.shot("13-dinkes-approved")

    # The new staff member's tab: told, and the command menu changed (set for this chat by the notifier).
    person.expect_any(re.compile("disetujui|approved", re.I))
    commands = person.menu_commands()
    assert "cari" in commands and "daftar" not in commands, commands
    person.page.get_by_test_id("menu-button").click()
    person.shot("14-new-staff-menu")


# =============================================================================
# The whole visit: meja 1 → meja 2 → meja 4 (+ observation), each desk its own persona and tab
# =============================================================================


def test_full_visit_by_three_desks(context: Any, server: LiveServer, demo_db: Path, clock: FixedClock) -> None:
    from playwright.sync_api import expect

    target = demo_target(demo_db, offset=1)
    first_name = target["name"]

    # Meja 1: look up the ticket, Registrasi.
    rina = Phone.open(context, server, MEJA1)
    budi = Phone.open(context, server, MEJA2)
    sari = Phone.open(context, server, MEJA4)
    rina.start()
    rina.send(target["ticket"])
    rina.expect_last(first_name)
    rina.press(ID["card.btn_register"])
    expect(rina.last_bot()).to_have_attribute("data-edited", "true")  # the card is edited in place
    rina.expect_last(re.compile(r"terdaftar", re.I))
    expect(rina.page.get_by_test_id("toast")).to_be_visible()
    expect(rina.page.get_by_test_id("toast")).to_contain_text(ID["meja1.registered_short"])
    rina.shot("20-meja1-registered")
    rina.command("antrian")  # the Daftar Penerima Vaksin, refreshed below once meja 2 has screened
    queue = rina.last_bot()
    queue_id = queue.get_attribute("data-id")
    rina.expect_last(first_name)

    # Meja 2: /skrining, the person from the queue, vitals, the checklist, save.
    budi.start()
    budi.command("skrining")
    budi.press(first_name)
    budi.expect_last(re.compile(r"suhu", re.I))
    budi.send("36,5")
    budi.expect_last(re.compile(r"tekanan darah", re.I))
    budi.send("120/80")
    budi.press(ID["meja2.all_no"])
    budi.expect_last(re.compile("LANJUT"))
    budi.shot("21-meja2-review")
    picture = budi.shot("sandbox-mid-visit")  # the README's picture (docs/sandbox-mid-visit.png)
    if os.environ.get("UPDATE_SANDBOX_PICTURE") == "1":
        shutil.copyfile(picture, DOCS_PICTURE)
    budi.press(ID["meja2.button_save"])
    budi.expect_any(re.compile(r"Tersimpan.*LANJUT", re.S))
    budi.shot("22-meja2-saved")

    # Meja 1 presses Refresh: the same list message is edited in place, now counting one waiting at meja 4.
    messages = rina.page.get_by_test_id("message").count()
    rina.press("Refresh", within=rina.page.locator(f'[data-testid="message"][data-id="{queue_id}"]'))
    queue = rina.page.locator(f'[data-testid="message"][data-id="{queue_id}"]')
    expect(queue).to_have_attribute("data-edited", "true")
    expect(queue).to_contain_text(re.compile(r"Vaksin 1\b"))
    assert rina.page.get_by_test_id("message").count() == messages
    rina.shot("26-meja1-antrian-refreshed")

    # Meja 4: /vaksinasi, the person, product, batch, expiry, the last four digits of the NIK.
    sari.start()
    sari.command("vaksinasi")
    sari.press(first_name)
    sari.press(re.compile("CoronaVac|Sinovac"))
    sari.expect_last(re.compile(r"batch", re.I))
    sari.send("AB1234")
    sari.expect_last(re.compile(r"kedaluwarsa|Lewati", re.I))
    sari.send("06/2027")
    sari.expect_last(re.compile(r"4 angka", re.I))
    sari.send(target["nik"][-4:])
    sari.expect_any(re.compile(r"Tersimpan.*Observasi", re.S))
    sari.shot("23-meja4-vaccinated")

    # Thirty minutes later: record the observation (no KIPI).
    clock.advance(minutes=31)
    sari.command("vaksinasi")
    sari.press(first_name)
    sari.press(ID["meja4.button_kipi_none"])
    sari.expect_any(re.compile(r"observasi selesai", re.I))
    sari.shot("24-meja4-observed")

    # Back at meja 1: the card shows dose 1 done.
    rina.send(target["ticket"])
    rina.expect_last(re.compile(r"Dosis 1: ✅"))
    rina.shot("25-meja1-card-after")


# =============================================================================
# From a fresh clone: `frontdesk serve` (what `make run` runs) on an empty database
# =============================================================================


def test_frontdesk_serve_prints_the_sandbox_and_shows_personas(browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("TELEGRAM_BOT_TOKEN", "SANDBOX_ENABLED", "WEBHOOK_URL")}
    env.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'frontdesk.db'}",
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="WARNING",
    )
    frontdesk = Path(sys.executable).parent / "frontdesk"
    started = time.perf_counter()
    proc = subprocess.Popen(  # our own entry point
        [str(frontdesk), "serve", "--seed-if-empty", "--port", str(port)],
        cwd=tmp_path,  # no stray .env
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        url = _wait_for_line(proc, lines, lambda line: "/sandbox" in line and "SIMULASI" in line, 90)
        address = re.search(r"http://\S+/sandbox", url)
        assert address, lines
        assert address.group(0) == f"http://127.0.0.1:{port}/sandbox"
        ctx = browser.new_context(locale="id-ID", **PHONE)
        page = ctx.new_page()
        _goto_when_up(page, address.group(0))
        expect(page.get_by_test_id("persona")).to_have_count(9, timeout=60_000)
        TIMINGS["fresh_serve_to_personas_s"] = round(time.perf_counter() - started, 3)
        # Leave a chat open (a long poll in flight): Ctrl+C must still stop the server at once.
        page.locator('[data-testid="persona"][data-telegram-id="910010"]').click()
        page.get_by_test_id("start").wait_for()
        page.wait_for_timeout(300)
        stopping = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
        TIMINGS["ctrl_c_with_open_page_s"] = round(time.perf_counter() - stopping, 3)
        ctx.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        rest = proc.stdout.read() if proc.stdout else ""
        (ARTIFACTS / "frontdesk-serve.log").write_text("".join(lines) + rest, encoding="utf-8")


def _wait_for_line(proc: subprocess.Popen[str], lines: list[str], match: Callable[[str], bool], seconds: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise AssertionError(f"frontdesk serve exited with {proc.returncode}:\n{''.join(lines)}")
            continue
        lines.append(line)
        if match(line):
            return line
    raise AssertionError(f"no sandbox address printed:\n{''.join(lines)}")


def _goto_when_up(page: Any, url: str) -> None:
    from playwright.sync_api import Error

    deadline = time.monotonic() + 60
    while True:
        try:
            page.goto(url)
            return
        except Error:
            if time.monotonic() > deadline:
                raise
            page.wait_for_timeout(200)
