"""`nlistral stats`: the store's counts, as tables (pipeline/views/stats.py) or one JSON object."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import DEFAULT_DB_PATH, DbOption, console, open_store


def register(app: typer.Typer) -> None:
    """Add stats to the CLI."""
    app.command("stats")(stats)


def stats(
    db: DbOption = DEFAULT_DB_PATH,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
) -> None:
    """Counts, the thought model against gold, reflection coverage and review progress."""
    if as_json:
        from pipeline.stats import collect_stats

        console.print_json(json.dumps(collect_stats(open_store(db, read_only=True))))
        return
    print_stats(db)


def print_stats(db: Path) -> None:
    """Print the stats of the store at db as tables."""
    from pipeline.stats import collect_stats
    from pipeline.views.stats import render_stats

    console.print(render_stats(collect_stats(open_store(db, read_only=True))))
