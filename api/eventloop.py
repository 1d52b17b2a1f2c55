"""The event loop a serving process runs on: uvloop where it is installed, else Python's own asyncio loop.

A desk update waits on sockets five or six times (Redis, PostgreSQL, Telegram) and resumes a deep chain of
coroutines each time; asyncio's loop does that bookkeeping in Python, uvloop (libuv, written in Cython) in C.
Measured on the desk with PostgreSQL and Redis (docs/performance.md, round nine): about 5 % less of the bot's
CPU per update in one process; nothing that shows on two workers sharing two cores with PostgreSQL and Redis.

``EVENT_LOOP`` (core/config.py) chooses: ``auto`` (uvloop when importable; it is not built for Windows),
``uvloop`` (refuse to start without it) or ``asyncio``. ``frontdesk serve`` hands the choice to uvicorn, the
benchmark's measuring processes and the test suite use the same rule, so what is measured and tested is
what runs.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

__all__ = ["loop_factory", "loop_name", "run", "running_loop_name"]

T = TypeVar("T")
LoopName = Literal["uvloop", "asyncio"]


def loop_name(choice: str = "auto") -> LoopName:
    """The loop that ``choice`` (the ``EVENT_LOOP`` setting) means on this machine."""
    if choice == "asyncio":
        return "asyncio"
    if choice not in ("auto", "uvloop"):
        raise ValueError(f"EVENT_LOOP must be auto, uvloop or asyncio, not {choice!r}")
    if importlib.util.find_spec("uvloop") is not None:
        return "uvloop"
    if choice == "uvloop":
        raise RuntimeError("EVENT_LOOP=uvloop, but uvloop is not installed (pip install uvloop; not on Windows)")
    return "asyncio"


def loop_factory(choice: str = "auto") -> Callable[[], asyncio.AbstractEventLoop]:
    """A function that makes a new loop of the kind ``choice`` means (for ``asyncio.Runner``)."""
    if loop_name(choice) == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: str = "auto") -> T:
    """``asyncio.run(main)`` on the loop ``choice`` means."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)


def running_loop_name() -> str:
    """What the running loop is: "uvloop", "asyncio" or another loop's package (GET /metrics shows it)."""
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]
