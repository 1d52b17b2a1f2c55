"""Metrics: update errors and refusals, audited writes counted at commit, reference-source latency/failures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiogram.types import Chat, Message, Update, User

from api.metrics import Metrics, install_metrics, instrument_core, instrument_references
from core.db.engine import create_sessionmaker
from core.domain.audit import AuditDraft
from core.domain.errors import Refused, Unavailable
from core.domain.reference import Source
from core.services.context import CoreContext, NullNotifier


def _value(metric, *labels) -> float:
    return metric.labels(*labels)._value.get()


def _message_update(update_id: int) -> Update:
    user = User(id=1, is_bot=False, first_name="A")
    msg = Message(message_id=1, date=datetime.now(UTC), chat=Chat(id=1, type="private"), from_user=user, text="hi")
    return Update(update_id=update_id, message=msg)


@pytest.mark.parametrize(
    ("exc", "counter", "labels"),
    [
        (RuntimeError("boom"), "update_errors", ("message", "RuntimeError")),
        (Refused("series_complete"), "update_refusals", ("message", "refused")),
        (Unavailable("database"), "update_errors", ("message", "Unavailable.database")),
    ],
)
async def test_update_errors_and_refusals_are_counted(exc, counter, labels) -> None:
    from aiogram import Dispatcher

    from bot.factory import build_bot
    from bot.local_session import LocalSession

    metrics = Metrics(process=False)
    dp = Dispatcher()
    install_metrics(dp, metrics)

    @dp.message()
    async def handler(message: Message) -> None:
        raise exc

    bot = build_bot(None, session=LocalSession())
    with pytest.raises(type(exc)):
        await dp.feed_update(bot, _message_update(1))
    assert _value(getattr(metrics, counter), *labels) == 1
    assert _value(metrics.updates, "message") == 1
    assert metrics.update_seconds.labels("message")._sum.get() >= 0


async def test_audited_writes_are_counted_when_committed(engine, clock) -> None:
    metrics = Metrics(process=False)
    ctx = CoreContext(sessions=create_sessionmaker(engine), clock=clock, notifier=NullNotifier())
    instrument_core(ctx, metrics)
    instrument_core(ctx, metrics)  # idempotent
    async with ctx.uow() as uow:
        uow.audit(AuditDraft(action="visit.register", entity="visit", entity_id="1"))
        uow.audit(AuditDraft(action="visit.register", entity="visit", entity_id="2"))
        await uow.commit()
    async with ctx.uow() as uow:  # written, then rolled back (left without a commit): not counted
        uow.audit(AuditDraft(action="visit.screen", entity="visit", entity_id="3"))
        await uow._append_audit()
    assert _value(metrics.actions, "visit.register") == 2
    assert _value(metrics.actions, "visit.screen") == 0


class _Source:
    def __init__(self, source: Source, fail: BaseException | None) -> None:
        self.source, self.fail = source, fail

    async def fetch(self, nik: str):
        if self.fail:
            raise self.fail
        return None


async def test_reference_sources_report_latency_and_failures() -> None:
    metrics = Metrics(process=False)
    jkn, dukcapil = instrument_references(
        [_Source(Source.JKN, None), _Source(Source.DUKCAPIL, Unavailable("timeout"))], metrics
    )
    assert jkn.source is Source.JKN and await jkn.fetch("3273010101900001") is None
    with pytest.raises(Unavailable):
        await dukcapil.fetch("3273010101900001")
    jkn_label, dukcapil_label = Source.JKN.value, Source.DUKCAPIL.value
    assert metrics.reference_seconds.labels(jkn_label)._sum.get() >= 0
    assert _value(metrics.reference_failures, dukcapil_label, "timeout") == 1
    assert _value(metrics.reference_failures, jkn_label, "timeout") == 0
