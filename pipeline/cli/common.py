"""What every `nlistral` command shares: the --db option, opening the store, printing safely, errors."""
from __future__ import annotations

import json as jsonlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, NoReturn, Protocol, Self

import typer
from rich.console import Console, ConsoleOptions, RenderableType
from rich.highlighter import JSONHighlighter, NullHighlighter
from rich.segment import Segment
from rich.text import Text
from sqlite_utils import Database
from typer.core import TyperGroup

from db.connection import DEFAULT_DB
from db.errors import NlistralError
from pipeline.control_chars import UNSAFE, json_escaped, shown


class SafeConsole(Console):
    """A Console that never sends a control character of what it prints to the terminal.

    Rich drops BEL and a few others but passes ESC, C1 controls and bidi overrides through, so a
    dataset name holding ESC ]0;... would retitle the terminal and swallow output. Plain strings are
    made visible before layout (render_str, also used for table cells); everything else, Text built
    anywhere included, is cleaned segment by segment in render, which every print, log, table cell
    and progress bar goes through. Rich's own control segments (cursor moves) pass untouched.
    """

    def render_str(self, text: str, **kwargs: Any) -> Text:
        """A string as Text, with control characters shown as glyphs (see pipeline/control_chars.py)."""
        return super().render_str(shown(text), **kwargs)

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        """Render as Rich does, then show any control character left in the text as a glyph."""
        for segment in super().render(renderable, options):
            if segment.control or not UNSAFE.search(segment.text):
                yield segment
            else:
                yield Segment(shown(segment.text), segment.style)

    def print_json(self, json: str | None = None, *, data: Any = None, indent: None | int | str = 2,
                   highlight: bool = True, skip_keys: bool = False, ensure_ascii: bool = False,
                   check_circular: bool = True, allow_nan: bool = True, default: Any = None,
                   sort_keys: bool = False) -> None:
        """Pretty JSON whose unsafe characters are \\u escapes: the same JSON value, safe to show."""
        value = jsonlib.loads(json) if json is not None else data
        text = json_escaped(jsonlib.dumps(value, indent=indent, skipkeys=skip_keys, ensure_ascii=ensure_ascii,
                                          check_circular=check_circular, allow_nan=allow_nan, default=default,
                                          sort_keys=sort_keys))
        rendered = (JSONHighlighter() if highlight else NullHighlighter())(text)
        rendered.no_wrap, rendered.overflow = True, None
        self.print(rendered, soft_wrap=True)


console = SafeConsole(highlight=False, soft_wrap=True)
err_console = SafeConsole(stderr=True, highlight=False, soft_wrap=True)


class _Sourced(Protocol):
    """A click context, as Typer's own and its bundled click's both are: it knows where a value came from."""

    def get_parameter_source(self, name: str) -> Any: ...


def _typed(ctx: _Sourced, name: str) -> bool:
    """Whether the option name was given on the command line (not from the environment or a default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"  # by name: Typer may bundle its own click


def db_callback(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Path:
    """--db after the command wins, then --db before it, then NLISTRAL_DB, then the default."""
    root = ctx.find_root()
    path = Path(value)
    if root is ctx or param.name is None:
        return path
    given = root.params.get("db")
    before = Path(given) if given is not None and _typed(root, "db") else None
    if _typed(ctx, param.name):
        if before is not None and before != path:
            err_console.print(f"note: using --db {path} (given after the command); --db {before} before the "
                              "command is ignored.", markup=False)
        return path
    return before or path


DbOption = Annotated[
    Path,
    typer.Option(
        "--db",
        envvar="NLISTRAL_DB",
        callback=db_callback,
        help="The database file. Also taken before the command (nlistral --db FILE COMMAND); given in both "
        "places, the one after the command wins. Only import, demo, generate, reflect, judge and train "
        "create a missing one.",
        show_default=True,
    ),
]
DEFAULT_DB_PATH = Path(DEFAULT_DB)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error (never markup-interpreted, control characters shown) to stderr and exit."""
    err_console.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


class Commands(TyperGroup):
    """The root command group: an NlistralError that a command lets through is shown as its message
    (never a traceback), and the command exits with the error's exit_code (db/errors.py)."""

    def invoke(self, ctx: Any) -> Any:
        """Run the command; turn an NlistralError into its message and exit code."""
        try:
            return super().invoke(ctx)
        except NlistralError as exc:
            fail(str(exc), exc.exit_code)


def open_store(path: Path, *, create: bool = True, read_only: bool = False) -> Database:
    """Open the database, telling stderr about an upgrade or an interrupted run; a StoreError says what to fix.

    create=False: a missing store is an error (nothing is created); read_only=True (never creates): the
    command only reads, so a store it may not write is read if SQLite can.
    """
    from db.connection import open_db

    return open_db(path, notify=lambda message: err_console.print(message, markup=False),
                   create=create and not read_only, read_only=read_only)


def waiting_notice(db: Path, what: str) -> Callable[[], None]:
    """An on_wait for db.tx.when_unlocked: says once, on stderr, that `what` waits for another process's write."""
    told: list[bool] = []

    def waiting() -> None:
        if not told:
            told.append(True)
            err_console.print(f"waiting: another process is writing to {db}; the {what} starts when it is done "
                              "(Ctrl-C to stop).", markup=False)
    return waiting


def require_train_extra(command: str, modules: tuple[str, ...] | None = None) -> None:
    """Exit 2, saying what to install, when the modules of the train extra that command needs are missing."""
    from pipeline.train_extra import TRAIN_MODULES, missing_message, missing_modules

    missing = missing_modules(modules or TRAIN_MODULES)
    if missing:
        fail(missing_message(f"`nlistral {command}`", missing), 2)


class ProgressBar:
    """A transient progress bar on stderr for long work: update(done, total) moves it, note(message)
    prints a line above it (literally, never as markup). Quiet (for --json) or off a terminal it
    shows nothing (notes are still printed)."""

    def __init__(self, what: str, quiet: bool = False):
        self.what, self.quiet = what, quiet
        self._bar: Any = None

    def __enter__(self) -> Self:
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
