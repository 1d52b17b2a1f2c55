"""Each router's pre-filter (bot/prefilters.py): one check in front of its handlers, never a different answer.

The routes are taken through aiogram's own walk (``Dispatcher.propagate_event``) over the bot's real routers,
with the handlers replaced by a recorder: the same update must reach the same handler with and without the
pre-filters, and a desk update must no longer be offered to the handlers of the routers before its own.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.dispatcher.event.handler import HandlerObject
from aiogram.filters import Command, CommandStart, StateFilter
from aiogram.filters.callback_data import CallbackData, CallbackQueryFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import CallbackQuery, Chat, Contact, Message, User

from bot.factory import FEATURES, call_sync_filters_inline
from bot.handlers import common
from bot.prefilters import Admits, add_router_prefilters, admits_of
from core.domain.accounts import AccountKind, AccountState, Actor, Role
from tests.bot.harness import Harness

USER = User(id=5150, is_bot=False, first_name="Rina", language_code="id")
CHAT = Chat(id=5150, type="private")
BOT = Bot(token="42:TEST")
ACTIVE = Actor(5150, 1, "Rina", AccountKind.FASKES, AccountState.ACTIVE, frozenset({Role.MEJA2}), "0101")
REVOKED = Actor(5150, 1, "Rina", AccountKind.FASKES, AccountState.REVOKED, frozenset({Role.MEJA2}), "0101")
STRANGER = Actor(5150)
TEXTS = ["halo", "36,5", "120/80", "3201010101010001", "/batal", "/skrining", " /start", "/tidak_ada", "/", ""]
_ids = itertools.count(1)


class Group(StatesGroup):
    one = State()
    two = State()


class Other(StatesGroup):
    three = State()


class Button(CallbackData, prefix="bt"):
    action: str
    n: int


def _message(text: str | None = None, contact: Contact | None = None, caption: str | None = None) -> Message:
    return Message(
        message_id=next(_ids),
        date=datetime.now(UTC),
        chat=CHAT,
        from_user=USER,
        text=text or None,
        contact=contact,
        caption=caption,
    )


def _query(data: str) -> CallbackQuery:
    return CallbackQuery(id=str(next(_ids)), from_user=USER, chat_instance="t", data=data, message=_message("…"))


def _bot_routers() -> Dispatcher:
    dp = Dispatcher()
    for feature in FEATURES:
        dp.include_router(feature.build_router())
    dp.include_router(common.build_fallback_router())
    return dp


def _bot_dispatcher(*, prefilters: bool) -> Dispatcher:
    """The bot's routers as ``build_dispatcher`` includes them, with or without the pre-filters."""
    dp = _bot_routers()
    if prefilters:
        add_router_prefilters(dp)
    call_sync_filters_inline(dp)
    return dp


class Walk:
    """aiogram's walk with the handlers recorded instead of run, and every handler check counted."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reached: list[str] = []
        self.checked: list[str] = []
        original_check = HandlerObject.check
        walk = self

        # ``self``: aiogram passes the handler as a keyword named ``handler`` too.
        async def check(self: HandlerObject, *args: Any, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
            if self.callback.__name__ != "<lambda>":  # an observer's own filters (its callback is never run)
                walk.checked.append(self.callback.__module__)
            return await original_check(self, *args, **kwargs)

        async def call(self: HandlerObject, *args: Any, **kwargs: Any) -> str:
            walk.reached.append(f"{self.callback.__module__}.{self.callback.__qualname__}")
            return "handled"

        monkeypatch.setattr(HandlerObject, "check", check)
        monkeypatch.setattr(HandlerObject, "call", call)

    async def route(
        self, dp: Dispatcher, event: Message | CallbackQuery, raw_state: str | None, actor: Actor
    ) -> str | None:
        self.reached.clear()
        self.checked.clear()
        kind = "message" if isinstance(event, Message) else "callback_query"
        state = FSMContext(storage=MemoryStorage(), key=StorageKey(bot_id=42, chat_id=CHAT.id, user_id=USER.id))
        await dp.propagate_event(
            kind, event, bot=BOT, raw_state=raw_state, state=state, actor=actor, event_from_user=USER, event_chat=CHAT
        )
        assert len(self.reached) <= 1
        return self.reached[0] if self.reached else None


def _bot_states() -> set[str | None]:
    """Every state the bot's message handlers name (read before their filters are wrapped), and two more."""
    states: set[str | None] = {None, "Elsewhere:nowhere"}
    for router in _bot_routers().chain_tail:
        admits = admits_of(router, "message")
        if admits is not None:
            states |= admits.states
    return states


# --- what a router's handlers admit ------------------------------------------------------------------


def test_admits_are_derived_from_states_commands_and_button_prefixes() -> None:
    router = Router()

    async def handler() -> None:
        return None

    router.message.register(handler, Command("batal"))
    router.message.register(handler, CommandStart())
    router.message.register(handler, Group.one, F.text)
    router.message.register(handler, StateFilter(Other, None))
    router.message.register(handler, F.text, StateFilter(Group))  # the first filter that names something
    router.callback_query.register(handler, Button.filter(F.action == "ok"))
    assert admits_of(router, "message") == Admits(
        states={"Group:one", "Group:two", "Other:three", None}, command_prefixes={"/"}
    )
    assert admits_of(router, "callback_query") == Admits(callback_prefixes={("bt", ":")})


@pytest.mark.parametrize(
    "filters",
    [
        (F.text,),  # names nothing
        (StateFilter("*"),),  # any state
        (State("*"),),
        (),  # no filter at all
    ],
    ids=["magic", "any-state-filter", "any-state", "none"],
)
def test_a_handler_that_can_take_anything_leaves_its_router_unfiltered(filters: tuple[Any, ...]) -> None:
    router = Router()

    async def handler() -> None:
        return None

    router.message.register(handler, Command("batal"))
    router.message.register(handler, *filters)
    assert admits_of(router, "message") is None
    assert add_router_prefilters(router) == {}
    assert router.message._handler.filters == []


def test_a_router_with_routers_inside_is_left_unfiltered() -> None:
    """aiogram skips a router's sub-routers too when its own filters say no."""
    outer, inner = Router(name="outer"), Router(name="inner")

    async def handler() -> None:
        return None

    outer.message.register(handler, Command("batal"))
    inner.message.register(handler, F.text)
    outer.include_router(inner)
    assert add_router_prefilters(outer) == {}
    assert outer.message._handler.filters == []


async def test_the_prefilter_answers_like_the_handlers_could() -> None:
    admits = Admits(states={"Group:one", None}, command_prefixes={"/"}, callback_prefixes={("bt", ":")})
    assert await admits.message(_message("36,5"), "Group:one")
    assert await admits.message(_message("36,5"), None)
    assert not await admits.message(_message("36,5"), "Group:two")
    assert await admits.message(_message("/batal"), "Group:two")
    assert await admits.message(_message(" /batal"), "Group:two")  # aiogram's Command splits the text first
    assert await admits.message(_message(caption="/batal"), "Group:two")  # and reads a caption too
    assert not await admits.message(_message(contact=Contact(phone_number="0812", first_name="R")), "Group:two")
    assert await admits.callback(_query(Button(action="ok", n=1).pack()))
    assert not await admits.callback(_query("btx:ok:1"))  # another class whose prefix begins alike
    assert not await admits.callback(_query("b:ok:1"))


def test_build_dispatcher_puts_a_prefilter_in_front_of_each_router_but_the_fallback(harness: Harness) -> None:
    fronts: dict[tuple[str, str], Any] = {}
    for router in harness.dispatcher.chain_tail:
        for event in ("message", "callback_query"):
            observer = router.observers[event]
            if observer.handlers:
                own = observer._handler.filters or []
                fronts[(router.name, event)] = getattr(own[0].callback, "__self__", None) if own else None
    filtered = {key for key, front in fronts.items() if isinstance(front, Admits)}
    assert filtered == set(fronts) - {("fallback", "message"), ("fallback", "callback_query")}
    assert len(filtered) == 19  # ten routers, each with messages and buttons but common (commands only)


# --- the same routes, fewer checks --------------------------------------------------------------------


async def test_every_message_reaches_the_same_handler_with_and_without_prefilters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain, filtered = _bot_dispatcher(prefilters=False), _bot_dispatcher(prefilters=True)
    walk = Walk(monkeypatch)
    contact = Contact(phone_number="081234567890", first_name="Rina", user_id=USER.id)
    events = [_message(t) for t in TEXTS] + [_message(contact=contact), _message(caption="/batal")]
    compared = 0
    for raw_state in sorted(_bot_states(), key=str):
        for actor in (ACTIVE, REVOKED, STRANGER):
            for event in events:
                expected = await walk.route(plain, event, raw_state, actor)
                assert await walk.route(filtered, event, raw_state, actor) == expected, (raw_state, actor, event)
                compared += 1
    assert compared > 500  # every state of every flow, three kinds of person, twelve messages


async def test_every_button_reaches_the_same_handler_with_and_without_prefilters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain, filtered = _bot_dispatcher(prefilters=False), _bot_dispatcher(prefilters=True)
    walk = Walk(monkeypatch)
    datas: set[str] = {"", "x", "zz:1", "v", "v:"}
    # Every button class the routers know, with each action any handler names (an equality in its rule).
    for router in plain.chain_tail:
        for handler in router.callback_query.handlers:
            for f in handler.filters or ():
                if isinstance(f.callback, CallbackQueryFilter):
                    datas |= set(_packed(f.callback))
    reached: set[str | None] = set()
    for data in sorted(datas):
        for raw_state in (None, "Meja2:checklist", "Meja4:code"):
            expected = await walk.route(plain, _query(data), raw_state, ACTIVE)
            assert await walk.route(filtered, _query(data), raw_state, ACTIVE) == expected, (data, raw_state)
            reached.add(expected)
    assert len(reached) > 30  # most button handlers really were reached


def _packed(f: CallbackQueryFilter) -> list[str]:
    """Data strings for ``f``'s class: its prefix, then each field a sample (an action as its rule names it)."""
    cls = f.callback_data
    actions = {"x"}
    for op in getattr(f.rule, "_operations", ()):
        right = getattr(op, "right", None)
        if isinstance(right, str):
            actions.add(right)
    out = []
    for action in actions:
        parts = [action if name == "action" else "1" for name in cls.model_fields]
        out.append(cls.__separator__.join([cls.__prefix__, *parts]))
    return out


async def test_a_meja2_button_is_offered_only_to_the_routers_that_take_its_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain, filtered = _bot_dispatcher(prefilters=False), _bot_dispatcher(prefilters=True)
    walk = Walk(monkeypatch)
    data = "m2:tog:1:0"
    before = await walk.route(plain, _query(data), "Meja2:checklist", ACTIVE)
    checked_before = set(walk.checked)
    after = await walk.route(filtered, _query(data), "Meja2:checklist", ACTIVE)
    assert before == after == "bot.flows.meja2.toggle"
    assert {
        "bot.flows.signup",
        "bot.handlers.admin",
        "bot.flows.review",
        "bot.flows.antrian",
        "bot.flows.meja1",
    } <= checked_before
    assert set(walk.checked) == {"bot.flows.meja2"}


async def test_a_temperature_is_offered_only_to_the_routers_of_its_state(monkeypatch: pytest.MonkeyPatch) -> None:
    plain, filtered = _bot_dispatcher(prefilters=False), _bot_dispatcher(prefilters=True)
    walk = Walk(monkeypatch)
    before = await walk.route(plain, _message("36,5"), "Meja2:temperature", ACTIVE)
    n_before = len(walk.checked)
    after = await walk.route(filtered, _message("36,5"), "Meja2:temperature", ACTIVE)
    assert before == after == "bot.flows.meja2.temperature"
    assert set(walk.checked) == {"bot.flows.meja2"}
    assert len(walk.checked) < n_before / 3
