"""Shared pieces of the reliability tests: workers built by the composition root, a courier that
delivers updates (once, or several times and out of order), desks that drive a visit, PL snapshots,
and the figures each test records for docs/reliability.md."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage, TelegramMethod
from aiogram.types import Update
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.runtime import Runtime, build_runtime
from bot.local_session import LocalSession
from core.config import Settings
from core.db import models
from core.ports import Clock
from tests.bot.harness import Harness, Person

ROOT = Path(__file__).resolve().parents[2]
FIGURES_DIR = ROOT / "test-artifacts" / "reliability"

RINA, BUDI, SARI = Person(910001, "Rina"), Person(910002, "Budi"), Person(910004, "Sari")


def record_figures(name: str, **figures: Any) -> None:
    """Keep what a test injected or tried (test-artifacts/reliability/<name>.json) for docs/reliability.md."""
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    (FIGURES_DIR / f"{name}.json").write_text(json.dumps(figures, indent=2, sort_keys=True, default=str) + "\n")


def settings_for(database_url: str, redis_url: str | None = None, **extra: Any) -> Settings:
    """Settings as `frontdesk serve` would read them, offline (no token), no stray .env."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "telegram_bot_token": None,
        "webhook_url": None,
        **extra,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


# --------------------------------------------------------------------------------------------
# Workers: the real runtime (api.runtime.build_runtime), offline, replies recorded in process
# --------------------------------------------------------------------------------------------


@dataclass
class Worker:
    """One worker process' worth of the system: its own engine, storage, deduplicator and dispatcher."""

    runtime: Runtime
    name: str = "worker"

    @property
    def session(self) -> LocalSession:
        session = self.runtime.bot.session
        assert isinstance(session, LocalSession)
        return session

    async def feed(self, update: Update) -> None:
        await self.runtime.dispatcher.feed_update(self.runtime.bot, update)

    async def close(self) -> None:
        await self.runtime.close()


def start_worker(
    database_url: str,
    clock: Clock,
    redis_url: str | None = None,
    name: str = "worker",
    settings_extra: dict[str, Any] | None = None,
) -> Worker:
    runtime = build_runtime(settings_for(database_url, redis_url, **(settings_extra or {})), clock=clock)
    return Worker(runtime, name)


# --------------------------------------------------------------------------------------------
# Delivery
# --------------------------------------------------------------------------------------------


@dataclass
class DeliveryPlan:
    """How often each update arrives. ``copies(i)``: deliveries of the i-th update (1 = once);
    ``held(i)``: whether one of its copies is held back and delivered only after update i+1."""

    redeliver: bool
    seed: int = 2021

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def copies(self, index: int) -> int:
        # Alternating 2, 3, 2, 3, ...: two neighbouring updates always arrive an odd number of times
        # together, so that a pair of toggles (on, off) would end "on" if repeats were not dropped.
        return 1 if not self.redeliver else 2 + index % 2

    def held(self, index: int) -> bool:
        return self.redeliver and self._rng.random() < 0.4


@dataclass
class Courier:
    """Delivers each update to the workers as Telegram might: once, or several times, some copies late.

    With several workers every worker receives every copy (two webhook workers behind a load
    balancer, each handed the retry): the first copy goes to all of them at the same time.
    """

    workers: Sequence[Worker]
    plan: DeliveryPlan
    index: int = 0
    deliveries: int = 0
    held_back: int = 0
    late: list[Update] = field(default_factory=list)
    # calls made while handling a repeated delivery: must stay empty when repeats are dropped
    answered_repeats: list[TelegramMethod[Any]] = field(default_factory=list)
    transcript: list[list[str]] = field(default_factory=list)

    def _marks(self) -> list[int]:
        return [len(w.session.calls) for w in self.workers]

    def _since(self, marks: list[int]) -> list[TelegramMethod[Any]]:
        out: list[TelegramMethod[Any]] = []
        for w, m in zip(self.workers, marks, strict=True):
            out.extend(w.session.calls[m:])
        return out

    async def _to_all(self, update: Update) -> None:
        self.deliveries += len(self.workers)
        await asyncio.gather(*(w.feed(update) for w in self.workers))

    async def deliver(self, update: Update) -> list[TelegramMethod[Any]]:
        i = self.index
        self.index += 1
        marks = self._marks()
        await self._to_all(update)
        first = self._since(marks)
        self.transcript.append(chat_lines(first))

        repeats: list[Update] = list(self.late)  # held-back copies of the previous update: after this one
        self.late = []
        extra = self.plan.copies(i) - 1
        if extra and self.plan.held(i):
            self.late.append(update)
            self.held_back += 1
            extra -= 1
        repeats.extend([update] * extra)
        marks = self._marks()
        for again in repeats:
            await self._to_all(again)
        self.answered_repeats.extend(self._since(marks))
        return first

    async def flush(self) -> None:
        marks = self._marks()
        for again in self.late:
            await self._to_all(again)
        self.late = []
        self.answered_repeats.extend(self._since(marks))


def chat_lines(calls: Sequence[TelegramMethod[Any]]) -> list[str]:
    """What people saw, comparable between runs: chat, kind, text and buttons of every call."""
    out = []
    for c in calls:
        if isinstance(c, SendMessage | EditMessageText):
            buttons = [(label, data) for label, data in Harness.buttons([c])]
            out.append(f"{c.chat_id}|{type(c).__name__}|{c.text}|{buttons}")
        elif isinstance(c, AnswerCallbackQuery):
            out.append(f"answer|{c.text}")
    return out


class Desk:
    """One member of staff at a desk (the Desk pattern of tests/bot/test_full_visit.py), through a courier."""

    def __init__(self, courier: Courier, person: Person) -> None:
        self.courier = courier
        self.person = person
        self.last: list[TelegramMethod[Any]] = []
        # Updates are built like the harness builds them (ids from the harness' counters).
        self._builder = Harness(dispatcher=None, bot=None, session=None)  # type: ignore[arg-type]

    async def send(self, text: str) -> str:
        self.last = await self.courier.deliver(self._builder.message_update(self.person, text))
        return Harness.text(self.last)

    async def tap(self, label: str, *, exact: bool = False) -> str:
        buttons = Harness.buttons(self.last)
        found = next(
            ((t, d) for t, d in buttons if (t == label if exact else t.startswith(label))),
            None,
        )
        assert found is not None, f"no button {label!r} in {buttons}"
        self.last = await self.courier.deliver(self._builder.callback_update(self.person, found[1]))
        return Harness.text(self.last)


# --------------------------------------------------------------------------------------------
# PL snapshots
# --------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _row(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {c.key: _plain(getattr(obj, c.key)) for c in obj.__mapper__.column_attrs if c.key not in skip}


async def pl_snapshot(engine: AsyncEngine) -> dict[str, Any]:
    """Everything the desks can change in PL, normalised for comparison between two databases that
    started as copies of the same template."""
    async with engine.connect() as conn:
        from sqlalchemy.orm import Session

        def read(sync_conn: Any) -> dict[str, Any]:
            with Session(bind=sync_conn) as s:
                visits = [_row(v) for v in s.scalars(select(models.Visit).order_by(models.Visit.id))]
                touched = s.scalars(
                    select(models.Target).where(models.Target.first_desk_at.is_not(None)).order_by(models.Target.id)
                )
                targets = [_row(t) for t in touched]
                accounts = [_row(a) for a in s.scalars(select(models.Account).order_by(models.Account.id))]
                requests = [_row(r) for r in s.scalars(select(models.AccessRequest).order_by(models.AccessRequest.id))]
                corrections = [_row(c) for c in s.scalars(select(models.Correction).order_by(models.Correction.id))]
                audit = [_row(e) for e in s.scalars(select(models.AuditEvent).order_by(models.AuditEvent.seq))]
                head = s.get(models.AuditHead, 1)
                return {
                    "visits": visits,
                    "targets": targets,
                    "accounts": accounts,
                    "access_requests": requests,
                    "corrections": corrections,
                    "audit": audit,
                    "audit_actions": [e["action"] for e in audit],
                    "audit_head": (head.seq, head.hash) if head else None,
                }

        return await conn.run_sync(read)
