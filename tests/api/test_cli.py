"""The command line: db upgrade, seed-demo (once), audit verify."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "cli.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{db}")
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    return db


def test_seed_demo_migrates_seeds_and_refuses_to_seed_twice(env: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["seed-demo", "--targets", "200"])
    assert first.exit_code == 0, first.output
    assert "demo data seeded" in first.output
    with sqlite3.connect(env) as conn:
        assert conn.execute("select count(*) from targets").fetchone()[0] == 200
        assert conn.execute("select count(*) from accounts").fetchone()[0] >= 9
    again = runner.invoke(app, ["seed-demo", "--targets", "200"])
    assert again.exit_code == 0 and "seeded" not in again.output
    with sqlite3.connect(env) as conn:
        assert conn.execute("select count(*) from targets").fetchone()[0] == 200


def test_audit_verify_reports_a_broken_chain(env: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    ok = runner.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0 and "intact: 0 events" in ok.output
    with sqlite3.connect(env) as conn:  # a forged event that does not chain to the head
        conn.execute(
            "insert into audit_events (seq, at, actor_role, action, entity, entity_id, prev_hash, hash)"
            " values (1, '2026-11-26 03:00:00', 'x', 'forged', 'target', '1', :p, :h)",
            {"p": "0" * 64, "h": "1" * 64},
        )
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1
    assert "BROKEN at event 1" in broken.output
