"""``frontdesk import FILE``: import a target list and generate its tickets, with a progress bar.

Registered in api/cli.py as ``app.command("import")(import_file)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.cli_tokens import run_with_context
from core.services.imports import ImportReport, ImportService, report_csv, report_xlsx


def import_file(
    path: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="A CSV, xlsx, xls or ods file.")
    ],
    update_existing: Annotated[
        bool, typer.Option("--update-existing", help="Update targets already in PL (only those without a desk entry).")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and report; write nothing.")] = False,
    source: Annotated[str | None, typer.Option(help="sisdmk or excel (default: told by the header).")] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="Where to write the report (.csv or .xlsx; default: FILE.report.csv when rows failed)."),
    ] = None,
) -> None:
    """Import a SISDMK export or an Excel/CSV target list: valid new targets get tickets, all in one
    transaction; rows for NIKs already in PL change nothing unless --update-existing."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(f"importing {path.name}", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        result: ImportReport = run_with_context(
            lambda ctx: ImportService(ctx).run(
                path, update_existing=update_existing, dry_run=dry_run, source=source, progress=progress
            )
        )
    _print(result)
    target = report or (path.with_name(path.name + ".report.csv") if result.issues else None)
    if target is not None:
        if target.suffix.lower() == ".xlsx":
            target.write_bytes(report_xlsx(result))
        else:
            target.write_text(report_csv(result), encoding="utf-8-sig")
        typer.echo(f"report: {target}")
    if result.rows and result.rejected == result.rows:  # not one usable row: most likely the wrong file
        raise typer.Exit(2)


def _print(r: ImportReport) -> None:
    mode = " (dry run: nothing written)" if r.dry_run else ""
    typer.secho(f"{r.filename}: {r.format}, source {r.source}, header on line {r.header_line}{mode}", bold=True)
    typer.echo(
        f"  rows {r.rows}: created {r.created}, updated {r.updated}, unchanged {r.unchanged}, "
        f"locked {r.locked}, rejected {r.rejected}; warnings {r.warnings}"
    )
    rate = r.rows / r.seconds if r.seconds > 0 else 0.0
    typer.echo(f"  {r.seconds:.1f} s ({rate:,.0f} rows/s)")
    for reason, count in sorted(r.by_reason.items(), key=lambda kv: -kv[1]):
        typer.echo(f"  {reason}: {count}")
