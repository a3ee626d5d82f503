"""What every `nlistral` command shares: the --db option, opening the store, printing errors."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from sqlite_utils import Database

from db.connection import DEFAULT_DB
from db.errors import StoreError

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

DbOption = Annotated[
    Path,
    typer.Option(
        "--db",
        envvar="NLISTRAL_DB",
        help="The database file (created if missing).",
        show_default=True,
    ),
]
DEFAULT_DB_PATH = Path(DEFAULT_DB)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error (never markup-interpreted) to stderr and exit."""
    err_console.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


def open_store(path: Path) -> Database:
    """Open the database or exit with a message that says what to fix."""
    from db.connection import open_db

    try:
        return open_db(path, notify=lambda message: err_console.print(message, markup=False))
    except StoreError as exc:
        fail(str(exc), 2)
