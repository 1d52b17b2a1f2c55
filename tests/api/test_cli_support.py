"""The command line of the support API: ``frontdesk token create | list | revoke`` and ``import FILE``."""

from __future__ import annotations

import asyncio
import random
import re

import pytest
import typer
from typer.testing import CliRunner

from api.cli import app as frontdesk
from api.cli_import import import_file
from core.db.engine import create_engine, create_sessionmaker
from core.ports import SystemClock
from core.services.context import CoreContext, NullNotifier
from core.services.tokens import TokenService
from tests.core.services.test_imports import person, write_csv

runner = CliRunner()


@pytest.fixture
def database(demo_db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", demo_db_url)
    return demo_db_url


def _verify(url: str, token: str):
    async def main():
        engine = create_engine(url)
        try:
            ctx = CoreContext(sessions=create_sessionmaker(engine), clock=SystemClock(), notifier=NullNotifier())
            return await TokenService(ctx).verify(token)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def test_token_create_list_revoke(database: str) -> None:
    created = runner.invoke(
        frontdesk,
        [
            "token",
            "create",
            "--name",
            "BPJS KC Bandung",
            "--scope",
            "read_progress",
            "--scope",
            "read_audit",
            "--region",
            "32",
            "--region",
            "7371",
        ],
    )
    assert created.exit_code == 0, created.output
    token = re.search(r"^(pfd_\S+)$", created.output, re.MULTILINE)
    assert token is not None and "shown once" in created.output
    principal = _verify(database, token[1])
    assert principal is not None and principal.scopes == {"read_progress", "read_audit"}

    listed = runner.invoke(frontdesk, ["token", "list"])
    assert listed.exit_code == 0 and "BPJS KC Bandung" in listed.output and token[1] not in listed.output
    assert "32,7371" in listed.output and "active" in listed.output

    revoked = runner.invoke(frontdesk, ["token", "revoke", str(principal.token_id)])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert _verify(database, token[1]) is None


def test_token_create_refuses_bad_input(database: str) -> None:
    result = runner.invoke(frontdesk, ["token", "create", "--name", "x", "--scope", "everything", "--region", "*"])
    assert result.exit_code == 1 and "invalid.scope" in result.output
    result = runner.invoke(frontdesk, ["token", "revoke", "4242"])
    assert result.exit_code == 1 and "not_found.token" in result.output


def test_import_command(database: str, tmp_path) -> None:
    cli = typer.Typer()
    cli.command("import")(import_file)
    cli.command("other")(lambda: None)  # a group, so that "import" is a subcommand as in frontdesk
    rng = random.Random(9)
    rows = [*(person(i, rng) for i in range(12)), ["x", "1", "", "", "", "", "", ""]]
    path = write_csv(tmp_path / "sasaran.csv", rows)
    result = runner.invoke(cli, ["import", str(path)])
    assert result.exit_code == 0, result.output
    assert "created 12" in result.output and "rejected 1" in result.output and "nik.length: 1" in result.output
    report = tmp_path / "sasaran.csv.report.csv"
    assert report.exists() and "nik.length" in report.read_text(encoding="utf-8-sig")

    again = runner.invoke(cli, ["import", str(path), "--report", str(tmp_path / "again.xlsx")])
    assert again.exit_code == 0 and "created 0" in again.output and "unchanged 12" in again.output
    assert (tmp_path / "again.xlsx").read_bytes()[:2] == b"PK"

    missing = runner.invoke(cli, ["import", str(tmp_path / "nope.csv")])
    assert missing.exit_code != 0
