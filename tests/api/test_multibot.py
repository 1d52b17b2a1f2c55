"""Several bots in one deployment (TELEGRAM_BOT_TOKENS): one dispatcher, a webhook route per bot, and each
person's notifications through the bot they use (bot/routing.py).

The bots use aiogram's real HTTP session against a Bot API-compatible server on loopback
(tests/fake_bot_api.py), so which token a message left through is what Telegram would see.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from api.main import create_app
from api.routes.webhook import SECRET_HEADER, drain_webhook_tasks
from bot.factory import OFFLINE_TOKEN, build_bot
from bot.routing import BotDirectory
from core.config import Settings
from core.db import models
from tests.fake_bot_api import Call, Chat, FakeBotApi

# The first bot is the default; the requester's faskes (3273P001) is in province 32, served by "jabar".
SULSEL, JABAR = "222222:sulsel-bot-token", "111111:jabar-bot-token"
TOKENS = f"sulsel={SULSEL},jabar={JABAR}"
PROVINCES = "jabar=32,sulsel=73"
SECRET = "multi-bot-Secret_1"
URL = "https://frontdesk.example/telegram/webhook"

NUR = Chat(930001, "Nur")  # a stranger: asks for access with /daftar
DINKES = Chat(910010, "Dinkes")  # Dinkes admin of Kota Bandung (3273, province 32)
CENTRAL = 910099  # central account: no province


@dataclass
class Deployment:
    app: FastAPI
    client: httpx.AsyncClient
    api: FakeBotApi

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    async def post(self, bot_key: str | None, update: dict[str, Any], secret: str | None = SECRET) -> httpx.Response:
        path = "/telegram/webhook" if bot_key is None else f"/telegram/webhook/{bot_key}"
        headers = {SECRET_HEADER: secret} if secret is not None else {}
        response = await self.client.post(path, json=update, headers=headers)
        await drain_webhook_tasks(self.app)
        return response

    async def send(self, bot_key: str, update: dict[str, Any]) -> list[Call]:
        """Deliver an update to a bot's webhook; returns the Bot API calls it caused."""
        since = self.api.last_seq
        assert (await self.post(bot_key, update)).status_code == 200
        return [c for c in self.api.calls if c.seq > since]


def settings_for(db_url: str, api: FakeBotApi, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "redis_url": None,
        "telegram_bot_tokens": TOKENS,
        "telegram_bot_provinces": PROVINCES,
        "telegram_api_base": api.base_url,
        "webhook_url": URL,
        "webhook_secret": SECRET,
        "sandbox_enabled": False,
        "telegram_chat_rate": 100.0,  # the limits have their own tests; these flows should not wait
        **extra,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as server:
        yield server


@pytest.fixture
async def deployment(demo_db_url: str, clock: Any, api: FakeBotApi) -> AsyncIterator[Deployment]:
    app = create_app(settings_for(demo_db_url, api), clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://frontdesk") as client:
            yield Deployment(app, client, api)


async def bot_key_of(deployment: Deployment, telegram_id: int) -> str | None:
    async with deployment.runtime.services.ctx.sessions() as s:
        return (
            await s.execute(select(models.Account.bot_key).where(models.Account.telegram_id == telegram_id))
        ).scalar_one_or_none()


def sent_via(calls: list[Call], chat_id: int, method: str = "sendMessage") -> list[str]:
    """The tokens that the messages of ``method`` to ``chat_id`` left through."""
    return [c.token for c in calls if c.method == method and c.chat_id == chat_id]


# --- configuration ------------------------------------------------------------------------------


def test_settings_read_many_tokens_and_keep_the_single_token(api: FakeBotApi) -> None:
    many = settings_for("sqlite+aiosqlite://", api)
    assert list(many.bot_tokens) == ["sulsel", "jabar"] and many.bot_provinces == {"32": "jabar", "73": "sulsel"}
    assert many.multi_bot and many.bot_mode == "webhook"
    assert many.telegram_bot_token is not None  # "a token is set": the sandbox's safety rule still sees it
    assert many.webhook_url_for("jabar") == f"{URL}/jabar"
    one = Settings(_env_file=None, telegram_bot_token=JABAR, webhook_url=URL)  # type: ignore[call-arg]
    assert one.bot_tokens == {"main": JABAR} and not one.multi_bot and one.webhook_url_for("main") == URL


@pytest.mark.parametrize(
    ("tokens", "provinces", "problem"),
    [
        ("jabar", None, "key=value"),
        ("jabar=not-a-token", None, "not a bot token"),
        (f"jabar={JABAR},jabar={SULSEL}", None, "appears twice"),
        (f"jabar={JABAR},copy={JABAR}", None, "configured twice"),
        ("Ja bar=1:x", None, "bot key"),
        (TOKENS, "jabar=32,sulsel=32", "two bots"),
        (TOKENS, "banten=36", "lacks"),
        (TOKENS, "jabar=Jawa Barat", "2-digit"),
    ],
)
def test_bad_bot_configuration_is_refused_without_echoing_tokens(
    tokens: str, provinces: str | None, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem) as raised:
        Settings(_env_file=None, telegram_bot_tokens=tokens, telegram_bot_provinces=provinces)  # type: ignore[call-arg]
    assert "bot-token" not in str(raised.value)


def test_the_single_token_may_only_repeat_one_of_many() -> None:
    with pytest.raises(ValueError, match="disagree"):
        Settings(_env_file=None, telegram_bot_token="333:other", telegram_bot_tokens=TOKENS)  # type: ignore[call-arg]
    same = Settings(_env_file=None, telegram_bot_token=JABAR, telegram_bot_tokens=TOKENS)  # type: ignore[call-arg]
    assert list(same.bot_tokens) == ["sulsel", "jabar"]


def test_the_directory_routes_by_last_bot_then_province_then_first() -> None:
    bots = {key: build_bot(f"{n}:{OFFLINE_TOKEN.split(':')[1]}") for n, key in ((1, "a"), (2, "b"), (3, "c"))}
    directory = BotDirectory(bots, {"32": "b", "73": "c", "99": "gone"})
    assert directory.choose("c", "32") is bots["c"]  # the bot they last wrote to
    assert directory.choose(None, "32") is bots["b"]  # else their province's
    assert directory.choose("removed-bot", "73") is bots["c"]  # a bot no longer configured is skipped
    assert directory.choose(None, "11") is bots["a"] and directory.choose(None, None) is bots["a"]  # else the first
    assert directory.choose(None, "99") is bots["a"]  # a mapping to an unknown bot is ignored
    assert directory.key_of(bots["b"]) == "b" and directory.several


# --- webhook routes -----------------------------------------------------------------------------


async def test_each_bot_gets_its_webhook_route_with_the_secret(deployment: Deployment) -> None:
    calls = {c.token: c.params for c in deployment.api.of("setWebhook")}
    assert calls[SULSEL]["url"] == f"{URL}/sulsel" and calls[JABAR]["url"] == f"{URL}/jabar"
    assert {p["secret_token"] for p in calls.values()} == {SECRET}
    start = DINKES.message("/start")
    assert (await deployment.post("jabar", start, secret=None)).status_code == 401
    assert (await deployment.post("jabar", start, secret="wrong")).status_code == 403
    assert (await deployment.post("banten", start)).status_code == 404  # no such bot (told after the secret)
    assert (await deployment.post(None, start)).status_code == 404  # several bots: no unkeyed route
    assert deployment.api.of("sendMessage") == []


async def test_a_reply_leaves_through_the_bot_that_got_the_update(deployment: Deployment) -> None:
    on_jabar = await deployment.send("jabar", DINKES.message("/start"))
    on_sulsel = await deployment.send("sulsel", DINKES.message("/start"))
    assert set(sent_via(on_jabar, DINKES.user["id"])) == {JABAR}
    assert set(sent_via(on_sulsel, DINKES.user["id"])) == {SULSEL}
    assert await bot_key_of(deployment, DINKES.user["id"]) == "sulsel"  # the last one written to


# --- notifications through the person's bot -----------------------------------------------------


async def signup(deployment: Deployment, bot_key: str, person: Chat) -> list[Call]:
    """/daftar to the end on one bot; returns the calls of the final submit."""
    for update in (
        person.message("/daftar"),
        person.message("Nur Aini"),
        person.contact("6281234567890"),
        person.message("3273 p001"),
        person.press("su:fy:"),
        person.press("su:rt:meja1"),
        person.press("su:rt:meja4"),
        person.press("su:rd:"),
    ):
        calls = await deployment.send(bot_key, update)
        assert calls, f"no answer to {update}"
    return await deployment.send(bot_key, person.press("su:ok:"))


async def test_a_request_on_bot_a_approved_on_bot_b_notifies_each_through_their_bot(deployment: Deployment) -> None:
    nur, dinkes = NUR.user["id"], DINKES.user["id"]
    # The admin uses the Jabar bot; the stranger writes to the Sulsel bot (though his faskes is in Jawa Barat).
    await deployment.send("jabar", DINKES.message("/start"))
    submitted = await signup(deployment, "sulsel", NUR)
    (note,) = [c for c in submitted if c.method == "sendMessage" and c.chat_id == dinkes]
    assert note.token == JABAR and "Nur Aini" in note.text  # the admin's notification: through bot B
    assert {c.token for c in submitted if c.chat_id != dinkes} == {SULSEL}  # the requester's own answers: bot A
    assert await bot_key_of(deployment, nur) == "sulsel"  # recorded once /daftar created the account

    approve = next(data for _, data in note.buttons if data.startswith("ar:ok:"))
    approved = await deployment.send("jabar", DINKES.press(approve, message_id=1))
    answers = [c for c in approved if c.chat_id == dinkes or c.method == "answerCallbackQuery"]
    assert answers and {c.token for c in answers} == {JABAR}  # the admin's answers: bot B
    (told,) = [c for c in approved if c.method == "sendMessage" and c.chat_id == nur]
    assert told.token == SULSEL and "disetujui" in told.text  # the requester's notification: through bot A
    menus = [c for c in approved if c.method == "setMyCommands" and c.params["scope"]["chat_id"] == nur]
    assert [c.token for c in menus] == [SULSEL]  # and the menu of that chat


async def test_without_a_recorded_bot_the_province_then_the_first_bot_is_used(deployment: Deployment) -> None:
    notifier = deployment.runtime.services.ctx.notifier
    since = deployment.api.last_seq
    await notifier.notify(DINKES.user["id"], "error.stale_button")  # never wrote: province 32
    await notifier.notify(CENTRAL, "error.stale_button")  # no province: the first bot
    calls = [c for c in deployment.api.calls if c.seq > since]
    assert sent_via(calls, DINKES.user["id"]) == [JABAR]
    assert sent_via(calls, CENTRAL) == [SULSEL]
    # Writing to the other bot moves the person's notifications there.
    await deployment.send("sulsel", DINKES.message("/start"))
    since = deployment.api.last_seq
    await notifier.notify(DINKES.user["id"], "error.stale_button")
    assert sent_via([c for c in deployment.api.calls if c.seq > since], DINKES.user["id"]) == [SULSEL]


async def test_the_bot_is_recorded_only_when_it_changes(deployment: Deployment) -> None:
    channels = deployment.runtime.channels
    writes: list[tuple[int, str]] = []
    remember = channels.remember

    async def counting(telegram_id: int, bot_key: str) -> bool:
        writes.append((telegram_id, bot_key))
        return await remember(telegram_id, bot_key)

    channels.remember = counting
    for _ in range(3):
        await deployment.send("jabar", DINKES.message("/start"))
    assert writes == [(DINKES.user["id"], "jabar")]  # once per worker, not once per update
    await deployment.send("sulsel", DINKES.message("/start"))
    assert writes[-1] == (DINKES.user["id"], "sulsel")
    assert await channels.remember(DINKES.user["id"], "sulsel") is False  # PL agrees already: no row written


# --- polling with several bots ------------------------------------------------------------------


async def test_polling_reads_every_bot(demo_db_url: str, clock: Any, api: FakeBotApi) -> None:
    settings = settings_for(demo_db_url, api, webhook_url=None)
    api.queue_update(JABAR, DINKES.message("/start"))
    api.queue_update(SULSEL, Chat(910002, "Budi").message("/start"))
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        assert app.state.runtime.mode == "polling"
        await api.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == DINKES.user["id"])
        await api.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == 910002)
        await asyncio.sleep(0)
    assert {c.token for c in api.of("deleteWebhook")} == {JABAR, SULSEL}
    assert sent_via(api.calls, DINKES.user["id"]) == [JABAR]
    assert sent_via(api.calls, 910002) == [SULSEL]
