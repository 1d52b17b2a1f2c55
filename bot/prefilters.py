"""One cheap check per router before aiogram walks its handlers, derived from the handlers' own filters.

aiogram offers an update to each router in turn and, inside a router, checks each handler's filters
until one matches. A meja 2 button therefore went through every callback handler of the sign-up, admin,
review, Antrian and meja 1 routers first: about 35 handler checks per desk update (bench census), each a
call through aiogram's keyword preparation, and a ``CallbackData.unpack`` (often raising) for a button.

:func:`add_router_prefilters` looks at each router's message and callback-query handlers once, at build
time. A handler can only match when one of its filters holds; some filters name exactly what they accept:

- a :class:`~aiogram.filters.state.StateFilter`, a ``State`` or a ``StatesGroup``: those conversation states;
- a :class:`~aiogram.filters.command.Command` (``CommandStart`` too): a text or caption that begins with the
  command prefix;
- a ``CallbackData.filter()``: callback data that begins with the class's prefix and separator.

When every handler of a router's observer has such a filter, the observer gets one filter in front
(``router.message.filter``) that lets an update in only if at least one handler could match it. A handler
whose filters name nothing (``F.text | F.contact``, no filter at all, ``"*"``) leaves its router's observer
as it was, so the pre-filter never turns away an update a handler would have taken: it is a necessary
condition of the handlers' own filters, which still run in full. A router that includes other routers
is left as it is: when a router's own filters say no, aiogram does not offer the update to those either.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from inspect import isclass
from typing import Any

from aiogram import Router
from aiogram.dispatcher.event.handler import HandlerObject
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackQueryFilter
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

__all__ = ["Admits", "add_router_prefilters", "admits_of"]

_ANY = object()  # a filter that names no bound on what it accepts


@dataclass
class Admits:
    """What an observer's handlers can take, together: conversation states, command prefixes, button prefixes."""

    states: set[str | None] = field(default_factory=set)
    command_prefixes: set[str] = field(default_factory=set)
    callback_prefixes: set[tuple[str, str]] = field(default_factory=set)  # (prefix, separator)

    async def message(self, message: Message, raw_state: str | None = None) -> bool:
        if raw_state in self.states:
            return True
        if self.command_prefixes:
            text = (message.text or message.caption or "").lstrip()
            return text[:1] in self.command_prefixes
        return False

    async def callback(self, query: CallbackQuery) -> bool:
        data = query.data
        if not data:
            return False
        return any(
            data.startswith(prefix) and data[len(prefix) : len(prefix) + len(sep)] == sep
            for prefix, sep in self.callback_prefixes
        )


def _states(value: Any) -> set[str | None] | object:
    """The raw states a state-like filter value accepts, or ``_ANY``."""
    if value is None:
        return {None}
    if isinstance(value, str):
        return _ANY if value == "*" else {value}
    if isinstance(value, State):
        return _ANY if value.state == "*" else {value.state}
    if isinstance(value, StatesGroup):
        return set(type(value).__all_states_names__)
    if isclass(value) and issubclass(value, StatesGroup):
        return set(value.__all_states_names__)
    return _ANY


def _handler_admits(handler: HandlerObject, event: str) -> Admits | None:
    """What one handler can take, by the first of its filters that names it; None: anything."""
    for f in handler.filters or ():
        callback = f.callback
        if event == "message":
            if isinstance(callback, (StateFilter, State, StatesGroup)) or (
                isclass(callback) and issubclass(callback, StatesGroup)
            ):
                values: Iterable[Any] = callback.states if isinstance(callback, StateFilter) else (callback,)
                accepted = [_states(v) for v in values]
                if all(isinstance(a, set) for a in accepted):  # else "*" is among them: no bound named
                    return Admits(states=set().union(*accepted))
            elif isinstance(callback, Command):
                return Admits(command_prefixes=set(callback.prefix))
        elif event == "callback_query" and isinstance(callback, CallbackQueryFilter):
            cls = callback.callback_data
            return Admits(callback_prefixes={(cls.__prefix__, cls.__separator__)})
    return None


def admits_of(router: Router, event: str) -> Admits | None:
    """What the router's ``event`` handlers can take together; None when one of them can take anything."""
    out = Admits()
    for handler in router.observers[event].handlers:
        one = _handler_admits(handler, event)
        if one is None:
            return None
        out.states |= one.states
        out.command_prefixes |= one.command_prefixes
        out.callback_prefixes |= one.callback_prefixes
    return out


def add_router_prefilters(root: Router) -> dict[str, dict[str, Admits]]:
    """Put each router's pre-filter in front of its message and callback-query handlers (see the module).

    Call it after every router is included and before filters are wrapped (``call_sync_filters_inline``).
    Returns what was added, by router name and event.
    """
    added: dict[str, dict[str, Admits]] = {}
    for router in root.chain_tail:
        if router.sub_routers:  # aiogram skips them too when the router's own filters say no
            continue
        for event in ("message", "callback_query"):
            observer = router.observers[event]
            if not observer.handlers:
                continue
            admits = admits_of(router, event)
            if admits is None:
                continue
            # In front of the router's own filters: a cheap "no" spares the rest.
            observer.filter(admits.message if event == "message" else admits.callback)
            own = observer._handler.filters
            assert own is not None
            own.insert(0, own.pop())
            added.setdefault(router.name, {})[event] = admits
    return added
