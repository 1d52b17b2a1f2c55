"""docker-compose.yml, Dockerfile and .env.example cannot run here (no Docker engine): check what can be.

The compose file parses, has PostgreSQL 15, Redis 7 and the app with 4 workers, and gives the app only
variables that core/config.py reads (a typo there would be silently ignored by pydantic-settings); every
``${VAR}`` it needs is in .env.example.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from core.config import Settings

ROOT = Path(__file__).resolve().parents[1]
yaml = pytest.importorskip("yaml", reason="PyYAML is not installed: docker-compose.yml not checked")

SETTINGS_VARIABLES = {name.upper() for name in Settings.model_fields}
COMPOSE_ONLY = {"POSTGRES_PASSWORD"}  # read by the postgres service and interpolated into DATABASE_URL


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_has_postgres_redis_and_the_app_with_four_workers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"
    app = services["app"]
    assert app["build"] == "." and "frontdesk" in app["command"] and "serve" in app["command"]
    command = app["command"]
    assert command[command.index("--workers") + 1] == "4"
    assert set(app["depends_on"]) == {"postgres", "redis"}
    assert all(dep["condition"] == "service_healthy" for dep in app["depends_on"].values())
    assert set(compose["volumes"]) == {"pgdata", "redisdata"}


def test_the_app_gets_only_variables_that_settings_read(compose: dict[str, Any]) -> None:
    environment = compose["services"]["app"]["environment"]
    unknown = sorted(set(environment) - SETTINGS_VARIABLES)
    assert not unknown, f"core/config.py reads none of {unknown}"
    required = {"DATABASE_URL", "REDIS_URL", "TELEGRAM_BOT_TOKENS", "WEBHOOK_URL", "WEBHOOK_SECRET"}
    assert required <= set(environment)
    assert (
        environment["DATABASE_URL"].startswith("postgresql+asyncpg://")
        and "@postgres:5432/" in environment["DATABASE_URL"]
    )
    assert environment["REDIS_URL"] == "redis://redis:6379/0"
    assert environment["SANDBOX_ENABLED"] == "false"
    assert environment["WEB_CONCURRENCY"] == "4"


def test_every_interpolated_variable_is_in_the_example_env_and_means_something() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    referenced = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    example = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert referenced == example
    assert referenced <= SETTINGS_VARIABLES | COMPOSE_ONLY


def test_the_example_bot_settings_are_valid() -> None:
    values = dict(
        line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines() if line and line[0] != "#"
    )
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        telegram_bot_tokens=values["TELEGRAM_BOT_TOKENS"],
        telegram_bot_provinces=values["TELEGRAM_BOT_PROVINCES"],
        webhook_url=values["WEBHOOK_URL"],
    )
    assert list(settings.bot_tokens) == ["jabar", "sulsel"] and settings.bot_mode == "webhook"


def test_the_image_installs_from_the_lock_and_runs_as_a_user() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    first = next(line for line in lines if line and not line.startswith("#"))
    assert first == "FROM python:3.11-slim"
    assert any("pip install -r requirements.lock" in line for line in lines)
    user = [line for line in lines if line.startswith("USER ")]
    assert user and user[-1] not in ("USER root", "USER 0")
    assert lines.index(user[-1]) < lines.index(next(line for line in lines if line.startswith("CMD ")))
