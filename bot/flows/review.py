"""(placeholder: built by its issue)"""

from __future__ import annotations

from collections.abc import Mapping

from aiogram import Router

from bot.notifier import Renderer

NOTIFICATIONS: Mapping[str, Renderer] = {}


def build_router() -> Router:
    return Router(name="review")
