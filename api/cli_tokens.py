"""``frontdesk token create | list | revoke``: support API tokens (see docs/support-api.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from core.config import Settings
from core.domain.errors import FrontdeskError
from core.services.context import CoreContext
from core.services.tokens import SCOPES, TokenInfo, TokenService

token_app = typer.Typer(no_args_is_help=True)

T = TypeVar("T")
_SCOPE_HELP = "Repeatable: " + ", ".join(SCOPES) + "."


def run_with_context(work: Callable[[CoreContext], Awaitable[T]]) -> T:
    """Run ``work`` against the configured PL database (system clock, nobody notified)."""
    from core.db.engine import create_engine, create_sessionmaker
    from core.ports import SystemClock
    from core.services.context import NullNotifier

    async def main() -> T:
        engine = create_engine(Settings().database_url)
        try:
            ctx = CoreContext(sessions=create_sessionmaker(engine), clock=SystemClock(), notifier=NullNotifier())
            return await work(ctx)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except FrontdeskError as exc:
        typer.secho(f"error: {exc.key} {exc.params or ''}".rstrip(), err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None


def _line(info: TokenInfo) -> str:
    state = "active" if info.active else f"revoked {info.revoked_at:%Y-%m-%d %H:%M}Z"
    used = f"{info.last_used_at:%Y-%m-%d %H:%M}Z" if info.last_used_at else "never"
    return f"{info.id:>4}  {info.name:<24}  {','.join(info.scopes):<40}  {info.regions:<16}  {state:<24}  used {used}"


@token_app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="Who holds the token (e.g. 'BPJS KC Bandung').")],
    scope: Annotated[list[str], typer.Option("--scope", help=_SCOPE_HELP)],
    region: Annotated[
        list[str],
        typer.Option("--region", help="Repeatable: a province (2 digits) or kabupaten/kota (4 digits) code, or '*'."),
    ],
) -> None:
    """Create a token. It is shown once: PL keeps only its hash."""
    info, clear = run_with_context(lambda ctx: TokenService(ctx).create(name, scope, region))
    typer.echo(_line(info))
    typer.secho("token (shown once, store it now):", bold=True)
    typer.echo(clear)


@token_app.command("list")
def list_tokens() -> None:
    """List tokens (never the tokens themselves)."""
    for info in run_with_context(lambda ctx: TokenService(ctx).list_tokens()):
        typer.echo(_line(info))


@token_app.command("revoke")
def revoke(token_id: Annotated[int, typer.Argument(help="The token's id (see `frontdesk token list`).")]) -> None:
    """Revoke a token: the next request with it gets 401."""
    info = run_with_context(lambda ctx: TokenService(ctx).revoke(token_id))
    typer.echo(_line(info))
