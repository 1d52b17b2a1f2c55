"""``frontdesk serve --workers N``: what may run in several processes, and the workers' factory.

The processes themselves run in tests/api/test_workers.py (slow, PostgreSQL and Redis).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from api import main
from api.cli import app, multi_worker_problem
from core.config import Settings
from core.db.migrate import current_revision

TOKEN = "123456:serve-workers-token"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "serve.db"
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_BOT_TOKENS", "WEBHOOK_URL", "WEBHOOK_SECRET", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{db}")
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    # `serve` points the root logger at the runner's stderr, which is closed afterwards: keep pytest's set-up.
    monkeypatch.setattr("api.cli._configure_logging", lambda level: None)
    return db


@pytest.mark.parametrize(
    ("variables", "problem"),
    [
        ({"TELEGRAM_BOT_TOKEN": TOKEN}, "polling has one getUpdates reader"),
        ({"TELEGRAM_BOT_TOKEN": TOKEN, "WEBHOOK_URL": "https://x/telegram/webhook"}, "REDIS_URL"),
        ({}, "sandbox"),  # no token, SQLite: the sandbox would run, and it lives in one process
    ],
)
def test_settings_that_cannot_run_in_several_workers_are_refused_before_anything_starts(
    env: Path, monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], problem: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["serve", "--workers", "2"])
    assert result.exit_code == 2 and problem in result.output, result.output
    assert not env.exists()  # refused before migrating


def test_webhook_mode_with_redis_and_the_api_alone_may_scale_out() -> None:
    webhook = Settings(  # type: ignore[call-arg]
        _env_file=None,
        telegram_bot_token=TOKEN,
        webhook_url="https://x/telegram/webhook",
        webhook_secret="s",
        redis_url="redis://127.0.0.1:1/0",
    )
    assert multi_worker_problem(webhook) is None
    api_only = Settings(_env_file=None, sandbox_enabled=False)  # type: ignore[call-arg]
    assert multi_worker_problem(api_only) is None


async def test_the_workers_factory_reads_the_environment_and_never_migrates(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("api.logging.configure_logging", lambda level: None)  # as above, for the factory
    monkeypatch.setenv("SANDBOX_ENABLED", "false")
    monkeypatch.setenv("LOOKUP_RATE_PER_MINUTE", "7")
    worker = main.app_from_env()
    async with worker.router.lifespan_context(worker):
        assert worker.state.runtime.settings.lookup_rate_per_minute == 7
        assert worker.state.runtime.mode == "offline"
    assert await current_revision(f"sqlite+aiosqlite:///{env}") is None  # `serve` migrates once, not each worker
