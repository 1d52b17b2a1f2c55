"""The deployment's bots by key, and which one reaches a person.

One Telegram bot cannot carry national traffic (about 30 messages a second), so a deployment may run
several (``TELEGRAM_BOT_TOKENS="jabar=…,sulsel=…"``) behind one dispatcher. A person talks to one of
them; a notification must reach them there, since a bot cannot write to someone who never started it:

1. the bot they last wrote to (``accounts.bot_key``, kept by the actor middleware);
2. else the bot of their province (``TELEGRAM_BOT_PROVINCES``);
3. else the first bot.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiogram import Bot


class BotDirectory:
    def __init__(self, bots: Mapping[str, Bot], provinces: Mapping[str, str] | None = None) -> None:
        if not bots:
            raise ValueError("a deployment needs at least one bot")
        self.bots = dict(bots)
        self.provinces = {code: key for code, key in (provinces or {}).items() if key in self.bots}
        self._keys_by_id = {bot.id: key for key, bot in self.bots.items()}

    @property
    def primary(self) -> Bot:
        return next(iter(self.bots.values()))

    @property
    def several(self) -> bool:
        return len(self.bots) > 1

    def key_of(self, bot: Bot | None) -> str | None:
        return self._keys_by_id.get(bot.id) if bot is not None else None

    def choose(self, bot_key: str | None, province_code: str | None) -> Bot:
        """The bot that reaches a person who last wrote to ``bot_key`` and belongs to ``province_code``."""
        if bot_key is not None and bot_key in self.bots:
            return self.bots[bot_key]
        if province_code is not None and province_code in self.provinces:
            return self.bots[self.provinces[province_code]]
        return self.primary
