"""`nlistral triage`: how many examples fall in each outcome cell (db/outcomes.py), as tables or JSON."""
from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from pipeline.cli.common import DEFAULT_DB_PATH, DbOption, console, open_store, waiting_notice
from pipeline.cli.team import DatasetOption, SplitOption


def register(app: typer.Typer) -> None:
    """Add triage to the CLI."""
    app.command("triage")(triage)


def triage(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables: cells (named "
                       "cell -> count), grid [{thought, reflection, prediction, count}], suspects [{id, dataset, "
                       "split, source_id, gold, score, reasons [{signal, weight, points, detail}]}] and weights.")
                       ] = False,
    top: Annotated[int, typer.Option("--top", min=0, help="How many of the most suspect examples to list.")] = 20,
    dataset: DatasetOption = None,
    split: SplitOption = None,
    db: DbOption = DEFAULT_DB_PATH,
) -> None:
    """Count the examples in each outcome cell, and rank the examples whose gold label looks most suspect.

    Cells: the thought is right, wrong, unparsed or none; the reflection reaches gold, not gold, is unparsed or
    none (with a blind reflection, `reflect --blind`: robust, rationalised, or doubts gold); the latest
    prediction of any evaluate run is right, wrong, unparsed or none (no_gold on any axis: the example has no
    gold label). Named cells such as thought_right, fixed_by_reflection, reflection_not_gold and
    needs_reflection are listed with their meaning, then every full cell.

    Suspects: the gold-suspicion score adds, for each signal an example shows, its weight (settings
    [suspicion]): the thought or the reflection disagrees with gold, the blind reflection disagrees, a label
    contradicts its reasoning, a low judge score, a reviewer's flag, adapter errors across evaluate runs,
    hard-to-learn in training (cartography). A rank for review, not a probability that gold is wrong. The
    ranking of the whole store is stored (the review app's suspect-gold queue, key t, reads it in order);
    the list shows the top of it within --dataset / --split.
    """
    from dataclasses import asdict as as_dict

    from db import suspicion
    from db.outcomes import outcomes
    from db.scope import Scope
    from db.tx import when_unlocked
    from pipeline.settings import load_settings

    settings = load_settings()
    weights = as_dict(settings.suspicion)
    thresholds = settings.cartography
    scope = Scope(datasets=(dataset,) if dataset else (), splits=(split,) if split else ())
    store = open_store(db, create=False)
    result = outcomes(store, scope)
    ranked = when_unlocked(lambda: suspicion.refresh(store, weights, thresholds), on_wait=waiting_notice(db, "ranking"))
    where, args = scope.where("e")
    inside = {i for (i,) in store.execute(f"SELECT e.id FROM examples e WHERE {where}", args)} if args else None
    chosen = [s for s in ranked if inside is None or s.example_id in inside][:top]
    pairs = {int(r[0]): r[1:] for r in store.execute(
        f"SELECT id, dataset, split, source_id, gold_label, hypothesis FROM examples WHERE id IN "
        f"({', '.join(str(s.example_id) for s in chosen) or 'NULL'})")}
    if as_json:
        listed = [{"id": s.example_id, "dataset": pairs[s.example_id][0], "split": pairs[s.example_id][1],
                   "source_id": pairs[s.example_id][2], "gold": pairs[s.example_id][3], "score": s.score,
                   "reasons": [as_dict(r) for r in s.reasons]} for s in chosen]
        console.print_json(json.dumps({"cells": result.cells, "grid": [asdict(g) for g in result.grid],
                                       "suspects": listed, "weights": weights}))
        return
    from pipeline.views.suspects import suspects_table
    from pipeline.views.triage import render_triage

    console.print(render_triage(result))
    console.print(suspects_table(chosen, {i: (f"{d}/{sp}:{src}", "-" if g is None else str(g))
                                          for i, (d, sp, src, g, _hyp) in pairs.items()}, weights))
    console.print(f"{len(ranked):,} examples ranked in all; the review app shows them in order (key t, "
                  "suspect gold).", markup=False)
