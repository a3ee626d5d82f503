"""`nlistral diff A B`: what changed between two exports (pipeline/dataset_diff.py)."""
from __future__ import annotations

import json
from typing import Annotated

import typer

from pipeline.cli.common import DEFAULT_DB_PATH, DbOption, console, open_store


def register(app: typer.Typer) -> None:
    """Add diff to the CLI."""
    app.command("diff")(diff)


def diff(
    a: Annotated[str, typer.Argument(help="The earlier export: export:ID (`nlistral exports` lists them) or a file "
                                     "`nlistral export` wrote.", show_default=False)],
    b: Annotated[str, typer.Argument(help="The later export, the same way.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (keys sorted): a, b, added, "
                       "removed, changed (count, examples), balance (a, b, share_1_shift), reasons.")] = False,
    examples: Annotated[int, typer.Option(min=0, help="How many rows of each change to show.")] = 3,
    db: DbOption = DEFAULT_DB_PATH,
) -> None:
    """Compare two exports: rows added, removed and changed, label balance, and selection reasons.

    Rows are matched by the example id every export line carries; a row changed when the same example
    has another target (another thought or label; for DPO, other chosen/rejected pairs). Selection
    reasons (rows by source, examples left out by reason) come from each export's manifest.
    """
    from pipeline.dataset_diff import diff_exports

    store = open_store(db, create=False, read_only=True) if db.exists() else None
    result = diff_exports(a, b, store).as_dict(examples)
    if as_json:
        console.print_json(json.dumps(result, ensure_ascii=False, sort_keys=True), highlight=False,
                           sort_keys=True)
        return
    from pipeline.views.diff import render_diff

    console.print(render_diff(result))
