"""Settings, read from the environment and an optional ``.env`` file (pydantic-settings)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Locale(StrEnum):
    ID = "id"
    EN = "en"


class Settings(BaseSettings):
    """Everything the composition root needs; nothing is built at import time."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = Field(
        default=f"sqlite+aiosqlite:///{Path('frontdesk.db').resolve()}",
        description="The PL database. Default: a SQLite file in the working directory.",
    )
    redis_url: str | None = Field(
        default=None, description="Conversation state in Redis; unset: in-memory state."
    )
    telegram_bot_token: SecretStr | None = None
    telegram_api_base: str | None = Field(
        default=None, description="A Bot API-compatible server other than Telegram's."
    )
    webhook_url: str | None = Field(default=None, description="Public URL of POST /telegram/webhook.")
    webhook_secret: SecretStr | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    default_locale: Locale = Locale.ID
    sandbox_enabled: bool | None = Field(
        default=None,
        description="None: on exactly when no token is set. True with a token needs a separate database.",
    )
    log_level: str = "INFO"
    lookup_rate_per_minute: int = Field(default=60, ge=1)
    conversation_ttl_seconds: int = Field(default=3600, ge=60)
    reference_timeout_seconds: float = Field(default=3.0, gt=0)
    jkn_base_url: str | None = None
    jkn_api_key: SecretStr | None = None
    dukcapil_base_url: str | None = None
    dukcapil_api_key: SecretStr | None = None

    @property
    def bot_mode(self) -> str:
        """offline (no token: sandbox and tests), webhook (token and URL) or polling (token only)."""
        if self.telegram_bot_token is None:
            return "offline"
        return "webhook" if self.webhook_url else "polling"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
