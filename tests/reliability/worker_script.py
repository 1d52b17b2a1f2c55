"""A worker process for tests/reliability/test_kill9.py: the real runtime, fed a few updates.

    python tests/reliability/worker_script.py PHASE DATABASE_URL REDIS_URL NOW VISIT_ID FIRST_UPDATE_ID

It builds the system exactly as ``frontdesk serve`` does without a token (``api.runtime.build_runtime``:
SQL engine, Redis conversation state and deduplicator, the dispatcher; replies stay in process through
``LocalSession``) and plays Budi (meja 2) on one visit:

* ``first``: opens the screening and sends the temperature (37,2), prints ``READY`` and then waits to
  be killed (``kill -9`` by the test): the state lives only in Redis from here on;
* ``second``: a fresh process sends the blood pressure, taps "Semua tidak" and "Simpan", closes the
  runtime and exits 0.

Every reply is printed as one JSON line (``{"update": ..., "texts": [...], "buttons": [...]}``).
Update ids come from the command line: Telegram's ids only grow, and the Redis deduplicator would drop
a second process' update that reused an id of the first.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiogram.types import CallbackQuery, Chat, Message, Update, User  # noqa: E402

from api.runtime import build_runtime  # noqa: E402
from bot.callbacks import VisitAction  # noqa: E402
from bot.flows.meja2 import Screen  # noqa: E402
from bot.local_session import LocalSession  # noqa: E402
from core.config import Settings  # noqa: E402
from core.ports import FixedClock  # noqa: E402
from tests.bot.harness import Harness  # noqa: E402

BUDI = User(id=910002, is_bot=False, first_name="Budi", language_code="id")
CHAT = Chat(id=910002, type="private")


def main() -> None:
    phase, database_url, redis_url, now, visit_id, first_update = sys.argv[1:7]
    asyncio.run(run(phase, database_url, redis_url, datetime.fromisoformat(now), int(visit_id), int(first_update)))


async def run(phase: str, database_url: str, redis_url: str, now: datetime, visit_id: int, first_update: int) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=database_url, redis_url=redis_url, telegram_bot_token=None, webhook_url=None
    )
    runtime = build_runtime(settings, clock=FixedClock(now))
    session = runtime.bot.session
    assert isinstance(session, LocalSession)
    ids = itertools.count(first_update)

    async def feed(update: Update) -> None:
        start = len(session.calls)
        await runtime.dispatcher.feed_update(runtime.bot, update)
        calls = session.calls[start:]
        line = {"update": update.update_id, "texts": Harness.texts(calls), "buttons": Harness.buttons(calls)}
        print(json.dumps(line), flush=True)

    def message(text: str) -> Update:
        n = next(ids)
        msg = Message(message_id=n, date=datetime.now(UTC), chat=CHAT, from_user=BUDI, text=text)
        return Update(update_id=n, message=msg)

    def press(data: str) -> Update:
        n = next(ids)
        msg = Message(message_id=n, date=datetime.now(UTC), chat=CHAT, text="…")
        query = CallbackQuery(id=str(n), from_user=BUDI, chat_instance="ci", data=data, message=msg)
        return Update(update_id=n, callback_query=query)

    if phase == "first":
        await feed(press(VisitAction(action="screen", visit_id=visit_id).pack()))
        await feed(message("37,2"))
        print("READY", flush=True)
        await asyncio.sleep(3600)  # killed here (kill -9): nothing is closed, nothing is flushed
        return
    try:
        await feed(message("120/80"))
        await feed(press(Screen(action="done", visit_id=visit_id).pack()))
        await feed(press(Screen(action="save", visit_id=visit_id).pack()))
    finally:
        await runtime.close()


if __name__ == "__main__":
    main()
