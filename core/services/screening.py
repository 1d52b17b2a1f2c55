"""(placeholder: built by its issue)"""

from __future__ import annotations

from core.services.context import CoreContext


class ScreeningService:
    def __init__(self, ctx: CoreContext) -> None:
        self.ctx = ctx
