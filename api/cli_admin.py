"""(placeholder: built by its issue)"""

from __future__ import annotations

import typer

admin_app = typer.Typer(no_args_is_help=True)
