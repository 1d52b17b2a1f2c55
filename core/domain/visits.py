"""The visit: one attempt at one dose, and the states it moves through."""

from __future__ import annotations

from enum import StrEnum


class VisitStatus(StrEnum):
    MENUNGGU_SKRINING = "menunggu_skrining"  # registered at meja 1, waiting for meja 2
    MENUNGGU_VAKSINASI = "menunggu_vaksinasi"  # screened Lanjut, waiting for meja 3/4
    OBSERVASI = "observasi"  # vaccinated, 30-minute observation not yet recorded
    SELESAI = "selesai"  # vaccinated and observed
    TUNDA = "tunda"  # screening postponed the dose: visit closed
    TIDAK_DIBERIKAN = "tidak_diberikan"  # screening refused the dose: visit closed


# Visits that still wait for the dose. At most one per target (a partial unique index in PL).
WAITING = frozenset({VisitStatus.MENUNGGU_SKRINING, VisitStatus.MENUNGGU_VAKSINASI})
VACCINATED = frozenset({VisitStatus.OBSERVASI, VisitStatus.SELESAI})
CLOSED_WITHOUT_DOSE = frozenset({VisitStatus.TUNDA, VisitStatus.TIDAK_DIBERIKAN})
# Opened and not finished: waiting for a desk, or vaccinated without the observation recorded. Left so past the
# visit's day, a visit is "stuck" (the support API's list, which partial indexes on visits serve).
UNFINISHED = (VisitStatus.MENUNGGU_SKRINING, VisitStatus.MENUNGGU_VAKSINASI, VisitStatus.OBSERVASI)


class KipiOutcome(StrEnum):
    NONE = "none"
    MILD = "mild"
    SERIOUS = "serious"
