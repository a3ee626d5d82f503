"""What every `nlistral` command shares: the --db option, opening the store, printing errors."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

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


class ProgressBar:
    """A transient progress bar on stderr for long work: update(done, total) moves it, note(message)
    prints a line above it (literally, never as markup). Quiet (for --json) or off a terminal it
    shows nothing (notes are still printed)."""

    def __init__(self, what: str, quiet: bool = False):
        self.what, self.quiet = what, quiet
        self._bar: Any = None

    def __enter__(self) -> ProgressBar:
        if not self.quiet and err_console.is_terminal:  # off a terminal Rich would still print a newline
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn(self.what, markup=False), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.what, total=None)
        return self

    def update(self, done: int, total: int | None = None) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total)

    def note(self, message: str) -> None:
        (self._bar.console if self._bar is not None else err_console).print(message, markup=False, highlight=False)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
