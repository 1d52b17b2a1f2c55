"""The command line: ``frontdesk serve | db upgrade | seed-demo``."""

from __future__ import annotations

import asyncio
import os

import typer

from core.config import Settings

app = typer.Typer(help="PCare Frontdesk: the vaccination front desk in Telegram.", no_args_is_help=True)
db_app = typer.Typer(help="The PL database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _settings() -> Settings:
    return Settings()


@app.callback()
def _every_command() -> None:
    """Every command logs through the masking filter (no whole NIK or phone number in any line)."""
    _configure_logging(os.environ.get("LOG_LEVEL", "INFO"))


def _configure_logging(level: str) -> None:
    from api.logging import configure_logging

    configure_logging(level)


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Listen address (default from API_HOST, 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default from API_PORT, 8000)."),
    seed_if_empty: bool = typer.Option(False, "--seed-if-empty", help="Seed the demo data when the database is empty."),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        help="Worker processes (default from WEB_CONCURRENCY, 1). More than one needs webhook mode (or no bot, "
        "no sandbox) and REDIS_URL.",
    ),
) -> None:
    """Migrate, then run the API and the bot (polling with a token, webhook with a URL, offline without)."""
    import uvicorn

    from api.eventloop import loop_name
    from api.main import create_app
    from api.sandbox import sandbox_note

    settings = _settings()
    _configure_logging(settings.log_level)
    workers = workers or settings.web_concurrency
    if workers > 1:
        problem = multi_worker_problem(settings)
        if problem:
            typer.echo(f"--workers {workers}: {problem}", err=True)
            raise typer.Exit(2)
    try:
        loop = loop_name(settings.event_loop)
    except RuntimeError as exc:  # EVENT_LOOP=uvloop where uvloop is missing: say so before anything starts
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    # Once, before any worker starts: workers never migrate. In a child process, so that Alembic and the
    # seeder (~10 MB) never load into the serving process (docs/performance.md, memory).
    _prepare_database_apart(settings.log_level, seed_if_empty=seed_if_empty)
    host = host or settings.api_host
    port = port or settings.api_port
    mode = settings.bot_mode
    typer.echo(
        f"PCare Frontdesk: http://{host}:{port}  (bot: {mode}, {len(settings.bot_tokens)} bot(s); "
        f"workers: {workers}; event loop: {loop}; database: {_redact(settings.database_url)})"
        + sandbox_note(settings, host, port)
    )
    level = settings.log_level.lower()
    if workers == 1:
        # log_config=None: uvicorn keeps our logging set-up (identifiers masked in every line).
        app = create_app(settings, migrate=False, settle_gc=True)
        uvicorn.run(app, host=host, port=port, log_level=level, log_config=None, loop=loop)
        return
    # Several processes: the webhook is set once here; each worker builds its own runtime from the
    # environment (api.main:app_from_env) and takes its share of Telegram's per-bot rate.
    if settings.webhook_setup:
        asyncio.run(_configure_webhook_once(settings))
    os.environ["WEBHOOK_SETUP"] = "false"
    os.environ["WEB_CONCURRENCY"] = str(workers)
    uvicorn.run(
        "api.main:app_from_env",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level=level,
        log_config=None,
        loop=loop,
    )


def _prepare_database_apart(log_level: str, *, seed_if_empty: bool) -> None:
    """Migrate (and seed an empty database) in a child interpreter, with the same environment; stop if it failed."""
    import subprocess
    import sys

    code = "import sys; from api.cli import _prepare_database; _prepare_database(sys.argv[1], sys.argv[2] == 'seed')"
    args = [sys.executable, "-c", code, log_level, "seed" if seed_if_empty else "-"]
    returncode = subprocess.run(args, check=False).returncode  # noqa: S603 - our own interpreter, fixed code
    if returncode != 0:
        typer.echo(f"migrating the database failed (exit {returncode}); not serving", err=True)
        raise typer.Exit(1)


def _prepare_database(log_level: str, seed_if_empty: bool) -> None:
    """The child of :func:`_prepare_database_apart`: the settings come from the same environment and directory."""
    from core.db.migrate import upgrade

    _configure_logging(log_level)
    settings = _settings()
    asyncio.run(upgrade(settings.database_url))
    if seed_if_empty:
        asyncio.run(_seed(settings, only_if_empty=True))


def multi_worker_problem(settings: Settings) -> str | None:
    """Why these settings cannot run in several worker processes (None: they can)."""
    from api.sandbox import decide

    if settings.bot_mode == "polling":
        return "polling has one getUpdates reader per bot; set WEBHOOK_URL (webhook mode) to run several workers"
    if settings.bot_mode == "webhook" and not settings.redis_url:
        return "conversation state, update de-duplication and limits must be shared: set REDIS_URL"
    if decide(settings).enabled:
        return "the sandbox keeps its chats in one process; set SANDBOX_ENABLED=false"
    return None


async def _configure_webhook_once(settings: Settings) -> None:
    from api.routes.webhook import configure_webhook
    from api.runtime import build_runtime

    runtime = build_runtime(settings)
    try:
        await configure_webhook(runtime)
    finally:
        await runtime.close()


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply the migrations."""
    from core.db.migrate import upgrade

    settings = _settings()
    asyncio.run(upgrade(settings.database_url, revision))
    typer.echo(f"database at {revision}: {_redact(settings.database_url)}")


async def _seed(settings: Settings, *, only_if_empty: bool, targets: int = 3000) -> None:
    from core.db.engine import create_engine
    from core.db.seed import is_empty, seed_demo

    engine = create_engine(settings.database_url)
    try:
        if only_if_empty and not await is_empty(engine):
            return
        summary = await seed_demo(engine, targets=targets)
        typer.echo(f"demo data seeded: {summary}")
    finally:
        await engine.dispose()


@app.command("seed-demo")
def seed_demo_cmd(
    targets: int = typer.Option(3000, min=1, help="How many synthetic targets."),
    force: bool = typer.Option(False, help="Seed even when the database already has data."),
) -> None:
    """Write the deterministic synthetic demo data set (regions, faskes, targets, references, accounts)."""
    from core.db.migrate import upgrade

    settings = _settings()
    asyncio.run(upgrade(settings.database_url))
    asyncio.run(_seed(settings, only_if_empty=not force, targets=targets))


def main() -> None:  # pragma: no cover - console entry point
    app()


audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify() -> None:
    """Walk the hash chain; name the first event that was altered or removed (exit 1 if any)."""
    from core.db.engine import create_engine
    from core.services.registry import build_services

    async def run() -> bool:
        engine = create_engine(_settings().database_url)
        try:
            report = await build_services(engine).audit.verify_chain()
        finally:
            await engine.dispose()
        if report.ok:
            typer.echo(f"audit chain intact: {report.checked} events")
        else:
            typer.echo(
                f"audit chain BROKEN at event {report.first_bad_seq} ({report.problem}); "
                f"{report.checked} events before it verified",
                err=True,
            )
        return report.ok

    if not asyncio.run(run()):
        raise typer.Exit(1)


def _register_subcommands() -> None:
    from api.cli_admin import admin_app
    from api.cli_import import import_file
    from api.cli_tokens import token_app

    app.command("import")(import_file)

    app.add_typer(admin_app, name="admin", help="Accounts: create Dinkes admins and the first accounts.")
    app.add_typer(token_app, name="token", help="Support API tokens.")


_register_subcommands()
