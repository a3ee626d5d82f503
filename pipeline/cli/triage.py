"""`nlistral triage`: how many examples fall in each outcome cell (db/outcomes.py), as tables or JSON."""
from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from pipeline.cli.common import DEFAULT_DB_PATH, DbOption, console, open_store
from pipeline.cli.team import DatasetOption, SplitOption


def register(app: typer.Typer) -> None:
    """Add triage to the CLI."""
    app.command("triage")(triage)


def triage(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables: cells (named "
                       "cell -> count), grid [{thought, reflection, prediction, count}] and suspects.")] = False,
    dataset: DatasetOption = None,
    split: SplitOption = None,
    db: DbOption = DEFAULT_DB_PATH,
) -> None:
    """Count the examples in each outcome cell: thought × reflection × latest prediction against gold.

    The thought is right, wrong, unparsed or none; the reflection reaches gold, not gold, is unparsed or
    none; the latest prediction of any evaluate run is right, wrong, unparsed or none (no_gold on any axis:
    the example has no gold label). Named cells such as thought_right, fixed_by_reflection,
    reflection_not_gold and needs_reflection are listed with their meaning, then every full cell. The
    suspect list (suspects in --json) is empty for now: it comes with the suspicion score.
    """
    from db.outcomes import outcomes
    from db.scope import Scope

    scope = Scope(datasets=(dataset,) if dataset else (), splits=(split,) if split else ())
    result = outcomes(open_store(db, read_only=True), scope)
    if as_json:
        console.print_json(json.dumps({"cells": result.cells, "grid": [asdict(g) for g in result.grid],
                                       "suspects": []}))
        return
    from pipeline.views.triage import render_triage

    console.print(render_triage(result))
