"""Prometheus metrics of the front desk, in a registry of the app's own (``GET /metrics``).

What is measured, and where it is hooked in (the composition root calls the ``install``/``instrument``
functions once, after building the runtime):

* Telegram updates per type, handler latency, refusals and errors: :func:`install_metrics` adds an outer
  middleware to ``dispatcher.update`` (right inside aiogram's error middleware, so it times the actor
  middleware and the handler, and sees every exception before the error handler answers it).
* Audited writes per action (the desk actions ``visit.*`` among them): :func:`instrument_core` counts
  a unit of work's audit entries once it has committed, so a rolled-back transaction counts nothing.
* Reference-source (JKN, Dukcapil) latency and failures: :func:`instrument_references` wraps the sources.
* Rows of imported target lists per outcome: :func:`record_import`.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from aiogram import BaseMiddleware, Dispatcher
from aiogram.dispatcher.middlewares.error import ErrorsMiddleware
from aiogram.types import TelegramObject, Update
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from bot.dedup import DuplicateUpdate
from core.domain.errors import FrontdeskError, Unavailable
from core.domain.reference import ReferenceRecord
from core.ports import ReferenceSource
from core.services.context import CoreContext
from core.services.imports import ImportReport

__all__ = [
    "METRICS",
    "InstrumentedReference",
    "Metrics",
    "UpdateMetricsMiddleware",
    "install_metrics",
    "instrument_core",
    "instrument_references",
    "record_import",
]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The collectors, registered in ``registry`` (a fresh one by default, not the global one)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.updates = Counter("frontdesk_updates", "Telegram updates handled, by update type.", ["type"], registry=r)
        self.update_seconds = Histogram(
            "frontdesk_update_handler_seconds",
            "Time to handle one Telegram update (actor look-up, state and handler), by update type.",
            ["type"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.updates_waiting = Gauge(
            "frontdesk_updates_waiting",
            "Telegram updates waiting for a place in this process (UPDATES_IN_FLIGHT), new or back from the network.",
            registry=r,
        )
        self.update_refusals = Counter(
            "frontdesk_update_refusals",
            "Updates answered with a domain refusal or invalid input (a typed core error), by type and code.",
            ["type", "code"],
            registry=r,
        )
        self.update_errors = Counter(
            "frontdesk_update_errors",
            "Updates whose handling failed (unexpected exception or PL unreachable), by type and error class.",
            ["type", "error"],
            registry=r,
        )
        self.actions = Counter(
            "frontdesk_actions",
            "Audited writes committed to PL (desk actions visit.*, corrections, accounts, imports), by action.",
            ["action"],
            registry=r,
        )
        self.reference_seconds = Histogram(
            "frontdesk_reference_seconds",
            "Reference source (JKN master file, Dukcapil) look-up time, by source.",
            ["source"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.reference_failures = Counter(
            "frontdesk_reference_failures",
            "Reference look-ups that gave no answer (timeout, down, refused), by source and reason.",
            ["source", "reason"],
            registry=r,
        )
        self.import_rows = Counter(
            "frontdesk_import_rows",
            "Rows of imported target lists, by outcome (created, updated, unchanged, locked, rejected).",
            ["outcome"],
            registry=r,
        )
        self.event_loop = Info(
            "frontdesk_event_loop", "The event loop this process serves on (EVENT_LOOP, api/eventloop.py).", registry=r
        )
        if process:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)


#: The app's metrics: ``GET /metrics`` serves this registry.
METRICS = Metrics()


# --------------------------------------------------------------------------------------------
# Telegram updates
# --------------------------------------------------------------------------------------------

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


def _update_type(event: TelegramObject) -> str:
    if isinstance(event, Update):
        try:
            return event.event_type
        except Exception:  # noqa: BLE001 - aiogram raises for update types it does not know
            return "unknown"
    return type(event).__name__.lower()


class UpdateMetricsMiddleware(BaseMiddleware):
    """Counts each update by type, times its handling, and counts refusals and errors (re-raised)."""

    def __init__(self, metrics: Metrics = METRICS) -> None:
        self.metrics = metrics

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        kind = _update_type(event)
        m = self.metrics
        m.updates.labels(kind).inc()
        start = time.perf_counter()
        try:
            return await handler(event, data)
        except DuplicateUpdate:  # a repeated delivery, refused by the conversation store's lock: not an error
            raise
        except Unavailable as exc:
            m.update_errors.labels(kind, f"Unavailable.{exc.reason or ''}".rstrip(".")).inc()
            raise
        except FrontdeskError as exc:
            m.update_refusals.labels(kind, exc.code).inc()
            raise
        except Exception as exc:
            m.update_errors.labels(kind, type(exc).__name__).inc()
            raise
        finally:
            m.update_seconds.labels(kind).observe(time.perf_counter() - start)


def install_metrics(dispatcher: Dispatcher, metrics: Metrics = METRICS) -> UpdateMetricsMiddleware:
    """Add the update metrics middleware to ``dispatcher.update``, just inside aiogram's error middleware
    (so that it measures the whole handling and sees exceptions before they are answered). Idempotent."""
    manager = dispatcher.update.outer_middleware
    for existing in manager:
        if isinstance(existing, UpdateMetricsMiddleware):
            return existing
    middleware = UpdateMetricsMiddleware(metrics)
    rest = [m for m in manager if not isinstance(m, ErrorsMiddleware)]
    for m in rest:
        manager.unregister(m)
    manager.register(middleware)
    for m in rest:
        manager.register(m)
    return middleware


# --------------------------------------------------------------------------------------------
# Audited writes
# --------------------------------------------------------------------------------------------


class _ActionCounter:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def __call__(self, actions: Sequence[str]) -> None:
        for action, count in Tally(actions).items():
            self.metrics.actions.labels(action).inc(count)


def instrument_core(ctx: CoreContext, metrics: Metrics = METRICS) -> None:
    """Count audit events by action when their unit of work commits (idempotent per context)."""
    if not any(isinstance(listener, _ActionCounter) and listener.metrics is metrics for listener in ctx.committed):
        ctx.committed.append(_ActionCounter(metrics))


# --------------------------------------------------------------------------------------------
# Reference sources
# --------------------------------------------------------------------------------------------


class InstrumentedReference:
    """A reference source that reports its latency and failures; otherwise the source itself."""

    def __init__(self, inner: ReferenceSource, metrics: Metrics = METRICS) -> None:
        self.inner = inner
        self.source = inner.source
        self.metrics = metrics

    async def fetch(self, nik: str) -> ReferenceRecord | None:
        label = str(getattr(self.source, "value", self.source))
        start = time.perf_counter()
        try:
            return await self.inner.fetch(nik)
        except Unavailable as exc:
            self.metrics.reference_failures.labels(label, exc.reason or "unavailable").inc()
            raise
        except Exception as exc:
            self.metrics.reference_failures.labels(label, type(exc).__name__).inc()
            raise
        finally:
            self.metrics.reference_seconds.labels(label).observe(time.perf_counter() - start)

    async def aclose(self) -> None:
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()


def instrument_references(
    sources: Iterable[ReferenceSource], metrics: Metrics = METRICS
) -> tuple[ReferenceSource, ...]:
    return tuple(InstrumentedReference(s, metrics) for s in sources)


def record_import(report: ImportReport, metrics: Metrics = METRICS) -> None:
    if report.dry_run:
        return
    for outcome in ("created", "updated", "unchanged", "locked", "rejected"):
        count = getattr(report, outcome)
        if count:
            metrics.import_rows.labels(outcome).inc(count)
