"""The dependency rules of docs/architecture.md hold (import-linter contracts in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_core_never_builds_clients_at_import_time() -> None:
    """Importing every core and bot module creates no engine, Redis client or bot (one composition root)."""
    code = (
        "import pkgutil, importlib, gc, core, bot\n"
        "from sqlalchemy.ext.asyncio import AsyncEngine\n"
        "from aiogram import Bot\n"
        "for pkg in (core, bot):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        if '.migrations' not in m.name: importlib.import_module(m.name)\n"
        "live = [o for o in gc.get_objects() if isinstance(o, (AsyncEngine, Bot))]\n"
        "print(len(live))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"
