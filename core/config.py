"""Settings, read from the environment and an optional ``.env`` file (pydantic-settings)."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The key of the one bot of ``TELEGRAM_BOT_TOKEN`` (the single-bot case).
SINGLE_BOT_KEY = "main"
_BOT_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_TOKEN = re.compile(r"^(\d{1,20}):\S+$")
_PROVINCE = re.compile(r"^\d{2}$")


def _pairs(raw: str, what: str) -> list[tuple[str, str]]:
    """``a=1,b=2`` → [("a", "1"), ("b", "2")]; blanks around items are ignored."""
    out = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{what}: expected key=value items separated by commas, got {item.split('=')[0]!r}…")
        out.append((key.strip().lower(), value.strip()))
    return out


def parse_bot_tokens(raw: str) -> dict[str, str]:
    """``TELEGRAM_BOT_TOKENS``: ``jabar=123:AAA,sulsel=456:BBB`` → {key: token}, in the given order."""
    tokens: dict[str, str] = {}
    bot_ids: set[str] = set()
    for key, token in _pairs(raw, "TELEGRAM_BOT_TOKENS"):
        if not _BOT_KEY.match(key):
            raise ValueError(f"TELEGRAM_BOT_TOKENS: bot key {key!r} must be 1-32 of a-z, 0-9, '_' or '-'")
        match = _TOKEN.match(token)
        if match is None:
            raise ValueError(f"TELEGRAM_BOT_TOKENS: the token of {key!r} is not a bot token (<digits>:<secret>)")
        if key in tokens:
            raise ValueError(f"TELEGRAM_BOT_TOKENS: bot key {key!r} appears twice")
        if match.group(1) in bot_ids:
            raise ValueError(f"TELEGRAM_BOT_TOKENS: the bot of {key!r} is configured twice")
        bot_ids.add(match.group(1))
        tokens[key] = token
    if not tokens:
        raise ValueError("TELEGRAM_BOT_TOKENS is set but names no bot")
    return tokens


def parse_bot_provinces(raw: str) -> dict[str, str]:
    """``TELEGRAM_BOT_PROVINCES``: ``jabar=32,jabar=36,sulsel=73`` → {province code: bot key}."""
    provinces: dict[str, str] = {}
    for key, code in _pairs(raw, "TELEGRAM_BOT_PROVINCES"):
        if not _PROVINCE.match(code):
            raise ValueError(f"TELEGRAM_BOT_PROVINCES: {code!r} is not a 2-digit province code")
        if provinces.get(code, key) != key:
            raise ValueError(f"TELEGRAM_BOT_PROVINCES: province {code} is given to two bots")
        provinces[code] = key
    return provinces


class Locale(StrEnum):
    ID = "id"
    EN = "en"


class Settings(BaseSettings):
    """Everything the composition root needs; nothing is built at import time."""

    # hide_input_in_errors: a configuration error must not print tokens or database passwords.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", hide_input_in_errors=True
    )

    database_url: str = Field(
        default=f"sqlite+aiosqlite:///{Path('frontdesk.db').resolve()}",
        description="The PL database. Default: a SQLite file in the working directory.",
    )
    # Few connections per process on purpose: under load, more transactions at once only queue on PL's locks
    # (the audit chain's head) while the event loop keeps their holders waiting (docs/performance.md).
    database_pool_size: int = Field(
        default=6, ge=1, description="PostgreSQL connections each process keeps open (docs/scaling.md)."
    )
    database_max_overflow: int = Field(
        default=0, ge=0, description="Further PostgreSQL connections a process may open under load."
    )
    redis_url: str | None = Field(default=None, description="Conversation state in Redis; unset: in-memory state.")
    telegram_bot_token: SecretStr | None = Field(default=None, description="The bot (single-bot deployments).")
    telegram_bot_tokens: SecretStr | None = Field(
        default=None,
        description='Several bots, one per region: "jabar=123:AAA,sulsel=456:BBB" (key=token; the first is the '
        "default). Replaces TELEGRAM_BOT_TOKEN, which may then only repeat one of them.",
    )
    telegram_bot_provinces: str | None = Field(
        default=None,
        description="Which bot a province uses for notifications to people who never wrote to a bot: "
        '"jabar=32,jabar=36,sulsel=73".',
    )
    telegram_api_base: str | None = Field(
        default=None, description="A Bot API-compatible server other than Telegram's."
    )
    webhook_url: str | None = Field(default=None, description="Public URL of POST /telegram/webhook.")
    webhook_secret: SecretStr | None = None
    webhook_setup: bool = Field(
        default=True,
        description="Set (webhook) or delete (polling) the webhook at start. `frontdesk serve --workers N` does it "
        "once before the workers start and turns it off for them.",
    )
    webhook_max_connections: int = Field(
        default=40, ge=1, le=100, description="Parallel connections Telegram may open to a bot's webhook (1-100)."
    )
    web_concurrency: int = Field(
        default=1, ge=1, description="Worker processes of `frontdesk serve` (uvicorn's WEB_CONCURRENCY)."
    )
    telegram_global_rate: float = Field(
        default=30.0, gt=0, description="Messages per second per bot, shared by the worker processes (Telegram: ~30)."
    )
    telegram_chat_rate: float = Field(default=1.0, gt=0, description="Messages per second to one chat (Telegram: ~1).")
    telegram_chat_burst: int = Field(
        default=3, ge=1, description="Messages to one chat sent back to back before the spacing applies."
    )
    telegram_retry_attempts: int = Field(default=3, ge=0, description="Retries of a call Telegram answered with 429.")
    telegram_max_retry_after: float = Field(
        default=30.0, gt=0, description="A 429 asking to wait longer than this fails at once instead of waiting."
    )
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    default_locale: Locale = Locale.ID
    sandbox_enabled: bool | None = Field(
        default=None,
        description="None: on exactly when no token is set. True with a token needs a separate database.",
    )
    log_level: str = "INFO"
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        default="auto",
        description="The event loop of `frontdesk serve`: uvloop where it is installed (auto; api/eventloop.py), "
        "or Python's own asyncio loop.",
    )
    lookup_rate_per_minute: int = Field(default=60, ge=1)
    conversation_ttl_seconds: int = Field(default=3600, ge=60)
    actor_cache_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long a worker remembers an active account between updates (bot/actors.py); 0: read PL "
        "on every update. Core re-checks the account for every action regardless.",
    )
    updates_in_flight: int = Field(
        default=8,
        ge=0,
        description="Telegram updates a process works on at once (bot/admission.py); the others wait their turn. "
        "An update waiting on Telegram or a reference source gives its place back meanwhile. 0: no limit.",
    )
    reference_timeout_seconds: float = Field(default=3.0, gt=0)
    jkn_base_url: str | None = None
    jkn_api_key: SecretStr | None = None
    dukcapil_base_url: str | None = None
    dukcapil_api_key: SecretStr | None = None

    @model_validator(mode="after")
    def _check_bots(self) -> Self:
        if self.telegram_bot_tokens is not None:
            tokens = parse_bot_tokens(self.telegram_bot_tokens.get_secret_value())
            if self.telegram_bot_token is None:
                # Everything that asks "is a token set?" (the sandbox's safety rule) keeps the right answer.
                self.telegram_bot_token = SecretStr(next(iter(tokens.values())))
            elif self.telegram_bot_token.get_secret_value() not in tokens.values():
                raise ValueError("TELEGRAM_BOT_TOKEN and TELEGRAM_BOT_TOKENS are both set and disagree: set one")
        if self.telegram_bot_provinces:
            unknown = sorted(set(parse_bot_provinces(self.telegram_bot_provinces).values()) - set(self.bot_tokens))
            if unknown:
                raise ValueError(f"TELEGRAM_BOT_PROVINCES names bots that TELEGRAM_BOT_TOKENS lacks: {unknown}")
        return self

    @property
    def bot_tokens(self) -> dict[str, str]:
        """Every bot as {key: token}, the default bot first: TELEGRAM_BOT_TOKENS, else TELEGRAM_BOT_TOKEN as "main"."""
        if self.telegram_bot_tokens is not None:
            return parse_bot_tokens(self.telegram_bot_tokens.get_secret_value())
        if self.telegram_bot_token is not None:
            return {SINGLE_BOT_KEY: self.telegram_bot_token.get_secret_value()}
        return {}

    @property
    def bot_provinces(self) -> dict[str, str]:
        """{province code: bot key} from TELEGRAM_BOT_PROVINCES."""
        return parse_bot_provinces(self.telegram_bot_provinces) if self.telegram_bot_provinces else {}

    @property
    def multi_bot(self) -> bool:
        """Several bots (TELEGRAM_BOT_TOKENS): one webhook route per bot, notifications routed per person."""
        return self.telegram_bot_tokens is not None

    def webhook_url_for(self, bot_key: str) -> str | None:
        """Where Telegram posts a bot's updates: WEBHOOK_URL itself for the single bot, WEBHOOK_URL/<key> for many."""
        if not self.webhook_url:
            return None
        return f"{self.webhook_url.rstrip('/')}/{bot_key}" if self.multi_bot else self.webhook_url

    @property
    def bot_mode(self) -> str:
        """offline (no token: sandbox and tests), webhook (token and URL) or polling (token only)."""
        if not self.bot_tokens:
            return "offline"
        return "webhook" if self.webhook_url else "polling"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
