"""``frontdesk admin``: create Dinkes admins (and the first central admin) from the command line.

The system acts here (no chat account is needed to run it); core records an audit event with the actor
``system``. Errors are printed plainly and exit with status 1: an unknown kabupaten/kota, a Telegram id that
already has an account, a name that is not a name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import typer

from core.config import Settings
from core.domain.errors import FrontdeskError
from core.services.access import AccountView
from core.services.registry import Services

admin_app = typer.Typer(no_args_is_help=True)

# The CLI speaks to the operator in English, like the rest of ``frontdesk``.
_MESSAGES = {
    "not_found.kabkota_code": "unknown kabupaten/kota code {code}",
    "refused.account_exists": "Telegram id {telegram_id} already has an account ({name})",
    "invalid.requester_name": "the name must have at least 2 characters, with letters",
    "invalid.requester_name_long": "the name is too long (at most {max} characters)",
    "invalid.telegram_id": "the Telegram id must be a positive number",
    "unavailable.database": "the PL database cannot be reached; nothing was saved",
}


def _explain(err: FrontdeskError) -> str:
    template = _MESSAGES.get(err.key)
    if template is None:
        return err.key
    try:
        return template.format(**err.params)
    except (KeyError, IndexError):
        return err.key


async def _with_services(work: Callable[[Services], Awaitable[AccountView]]) -> AccountView:
    from core.db.engine import create_engine
    from core.db.migrate import upgrade
    from core.services.registry import build_services

    settings = Settings()
    await upgrade(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        return await work(build_services(engine))
    finally:
        await engine.dispose()


def _run(work: Callable[[Services], Awaitable[AccountView]]) -> AccountView:
    try:
        return asyncio.run(_with_services(work))
    except FrontdeskError as err:
        typer.echo(f"error: {_explain(err)}", err=True)
        raise typer.Exit(1) from None


@admin_app.command("add-dinkes")
def add_dinkes(
    telegram_id: int = typer.Option(..., "--telegram-id", help="The admin's numeric Telegram user id."),
    kabkota: str = typer.Option(..., "--kabkota", help="The kabupaten/kota code (4 digits, e.g. 3273)."),
    name: str = typer.Option(..., "--name", help="Name shown in chat, e.g. 'Dinkes Kota Bandung'."),
) -> None:
    """Create an active Dinkes Kab/Kota admin: they decide access requests of that district in chat."""
    view = _run(lambda services: services.access.add_dinkes(telegram_id, kabkota.strip(), name))
    typer.echo(
        f"Dinkes admin created: account {view.account_id}, Telegram {view.telegram_id}, "
        f"{view.name}, {view.kabkota_name} ({view.kabkota_code})"
    )


@admin_app.command("add-central")
def add_central(
    telegram_id: int = typer.Option(..., "--telegram-id", help="The admin's numeric Telegram user id."),
    name: str = typer.Option(..., "--name", help="Name shown in chat."),
) -> None:
    """Create an active central admin (the first one; more can be added the same way)."""
    view = _run(lambda services: services.access.add_central(telegram_id, name))
    typer.echo(f"central admin created: account {view.account_id}, Telegram {view.telegram_id}, {view.name}")
