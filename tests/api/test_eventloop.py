"""The event loop: ``frontdesk serve``, the benchmark and this test suite run on the same one (api/eventloop.py).

The served processes say which loop they run on in ``GET /metrics`` (tests/api/test_support_api.py for the app,
tests/api/test_workers.py for two real worker processes of ``frontdesk serve --workers 2``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from api.eventloop import loop_factory, loop_name, run, running_loop_name
from core.config import Settings


def test_uvloop_is_installed_where_it_is_built() -> None:
    # The lock installs it; the product serves on it by default. Without it the product still runs (asyncio).
    if sys.platform == "win32":
        pytest.skip("uvloop is not built for Windows")
    assert importlib.util.find_spec("uvloop") is not None
    assert loop_name() == loop_name("auto") == "uvloop"
    assert Settings(_env_file=None).event_loop == "auto"  # type: ignore[call-arg]


async def test_the_suite_runs_on_the_loop_the_product_serves_on() -> None:
    # tests/conftest.py hands pytest-asyncio api.eventloop's factory.
    assert running_loop_name() == loop_name(os.environ.get("EVENT_LOOP", "auto"))


@pytest.mark.parametrize("choice", ["auto", "uvloop", "asyncio"])
def test_run_runs_on_the_loop_chosen(choice: str) -> None:
    async def which() -> str:
        await asyncio.sleep(0)
        return running_loop_name()

    assert run(which(), choice) == loop_name(choice)
    loop = loop_factory(choice)()
    try:
        assert type(loop).__module__.partition(".")[0] == loop_name(choice)
    finally:
        loop.close()


@pytest.fixture
def without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    """This interpreter as one without uvloop (Windows, or a slimmed image)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvloop" else real(name, *a))


@pytest.fixture
def serve_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`frontdesk serve` offline on a SQLite file of its own (returned; not created yet), no stray .env."""
    db = tmp_path / "serve.db"
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_BOT_TOKENS", "WEBHOOK_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{db}")
    monkeypatch.chdir(tmp_path)
    # `serve` points the root logger at the runner's stderr, which is closed afterwards: keep pytest's set-up.
    monkeypatch.setattr("api.cli._configure_logging", lambda level: None)
    return db


def test_without_uvloop_auto_falls_back_and_uvloop_refuses(without_uvloop: None) -> None:
    assert loop_name("auto") == "asyncio"
    assert loop_factory("auto") is asyncio.new_event_loop
    with pytest.raises(RuntimeError, match="uvloop is not installed"):
        loop_name("uvloop")
    with pytest.raises(ValueError, match="auto, uvloop or asyncio"):
        loop_name("trio")


def test_a_wrong_event_loop_setting_is_refused_when_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_LOOP", "tokio")
    with pytest.raises(ValueError, match="event_loop"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_serve_without_uvloop_when_it_is_required_stops_before_migrating(
    serve_env: Path, without_uvloop: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENT_LOOP", "uvloop")
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2 and "uvloop is not installed" in result.output, result.output
    assert not serve_env.exists()


@pytest.mark.parametrize("choice", ["auto", "asyncio"])
def test_serve_hands_the_chosen_loop_to_uvicorn(serve_env: Path, monkeypatch: pytest.MonkeyPatch, choice: str) -> None:
    monkeypatch.setenv("EVENT_LOOP", choice)
    served: dict[str, object] = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: served.update(kw))
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 0, result.output
    assert served["loop"] == loop_name(choice)
    assert f"event loop: {loop_name(choice)}" in result.output


def test_webhooks_are_parsed_by_httptools() -> None:
    # uvicorn's C HTTP parser where it is installed (a dependency): about 0.07 ms less server CPU per webhook
    # request than h11 (python -m bench.http_layer; docs/performance.md, round nine).
    from uvicorn.protocols.http.auto import AutoHTTPProtocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    assert AutoHTTPProtocol is HttpToolsProtocol
