"""Callback data shared between features. Short prefixes; every value is untrusted input that core re-checks."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class TargetAction(CallbackData, prefix="t"):
    """A button on a target card. ``version`` is the target version the person saw."""

    action: str  # register | phone | verify | card
    target_id: int
    version: int = 0


class VisitAction(CallbackData, prefix="v"):
    """Open the next step for a visit: from the Daftar Penerima Vaksin or after a previous step."""

    action: str  # screen | vaccinate | observe | card
    visit_id: int
