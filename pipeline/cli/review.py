"""`nlistral tui` and `nlistral demo`: open the review app (imported lazily: only it needs Textual)."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import DEFAULT_DB_PATH, DbOption, console, db_callback, open_store
from pipeline.cli.stats import print_stats


def register(app: typer.Typer) -> None:
    """Add demo and tui to the CLI."""
    app.command("demo")(demo)
    app.command("tui")(tui)


def launch_tui(db_path: Path) -> None:
    """Open the review app on an existing database (the import is lazy: only the app needs Textual)."""
    open_store(db_path, create=False).conn.close()
    if importlib.util.find_spec("nlistral_tui.app") is None:
        console.print("The review app is not built yet; here are the stats instead.\n")
        print_stats(db_path)
        return
    from nlistral_tui.app import run_app

    run_app(db_path)


def demo(
    db: Annotated[Path, typer.Option("--db", callback=db_callback, help="The demo database (also taken before "
                  "the command; NLISTRAL_DB is not used, so the demo never lands in your own store).")]
    = Path("nlistral-demo.db"),
    fresh: Annotated[bool, typer.Option("--fresh", help="Rebuild the demo database, deleting its review "
                     "decisions, exports records and runs (it says how many).")] = False,
    no_tui: Annotated[bool, typer.Option("--no-tui", help="Only build (or check) the database.")] = False,
) -> None:
    """Open the review app on the demo database (45 hand-written examples), building it if missing.

    An existing demo database is opened as it is, with every review decision kept; --fresh rebuilds it.
    """
    from pipeline.demo import describe_work, open_demo

    opened = open_demo(db, fresh=fresh)
    work = describe_work(opened.work)
    if opened.deleted:
        console.print(f"Rebuilt the demo database at {db}; deleted {work or 'nothing but the demo data'}.",
                      markup=False)
    elif opened.built:
        console.print(f"Built the demo database at {db}.", markup=False)
    else:
        console.print(f"Opened the demo database at {db} as it is" + (f" ({work} kept)" if work else "")
                      + "; `nlistral demo --fresh` rebuilds it.", markup=False)
    if opened.guide is not None:
        console.print(f"Wrote the demo's review guidelines to {opened.guide} (press G in the app).", markup=False)
    if not no_tui:
        launch_tui(db)


def tui(db: DbOption = DEFAULT_DB_PATH) -> None:
    """Open the review app."""
    launch_tui(db)
