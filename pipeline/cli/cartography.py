"""`nlistral cartography`: a train run's training dynamics (db/cartography.py) as regions, a data map and
the most confidently hard-to-learn examples, or JSON."""
from __future__ import annotations

import json
from typing import Annotated

import typer

from pipeline.cli.common import DEFAULT_DB_PATH, DbOption, console, fail, open_store


def register(app: typer.Typer) -> None:
    """Add cartography to the CLI."""
    app.command("cartography")(cartography)


def cartography(
    run: Annotated[int | None, typer.Argument(help="A train run id, as `nlistral train` prints it (run ID: "
                                              "logging to ...); default: the latest train run with dynamics.",
                                              show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object: run, checkpoints, thresholds, "
                       "regions (region -> count) and examples [{id, confidence, variability, correctness, "
                       "region}].")] = False,
    top: Annotated[int, typer.Option("--top", min=0, help="How many of the most confidently hard-to-learn "
                   "examples to list.")] = 15,
    db: DbOption = DEFAULT_DB_PATH,
) -> None:
    """Show where a training run's examples fall on the data map (Dataset Cartography).

    `nlistral train` (sft and label-only, `cartography: true` by default) scores the probability of each
    training example's gold label token at every epoch's end. Confidence is its mean over those
    checkpoints, variability its population standard deviation, correctness the share of checkpoints at
    which gold outscored the other label. Regions: ambiguous when variability >= ambiguous_variability;
    otherwise hard_to_learn when confidence < hard_confidence; otherwise easy (thresholds: [cartography]
    in the config file). Hard-to-learn examples with low variability (the model is consistently sure
    gold is wrong) are the classic mislabel signal: they are listed first.
    """
    from db.cartography import dynamics_runs, example_rows, run_summary
    from db.runs import get_run
    from pipeline.settings import config_path, load_settings

    settings = load_settings()
    thresholds = settings.cartography
    source = (f"[cartography] in {settings.path}" if settings.path else
              f"the defaults; set them under [cartography] in {config_path()}")
    store = open_store(db, read_only=True)
    with_dynamics = dynamics_runs(store)
    if run is None:
        if not with_dynamics:
            fail(f"{db} holds no training dynamics: no train run stored any. Train with `nlistral train --config "
                 "FILE` (method sft or label-only; cartography: true is the default), then run this again.")
        run = with_dynamics[0]
    try:
        found = get_run(store, run)
    except KeyError:
        fail(f"run {run} does not exist in {db}; train runs with dynamics: {_ids(with_dynamics)}", 2)
    if found.kind != "train":
        fail(f"run {run} is of kind {found.kind!r}, not a train run; train runs with dynamics: "
             f"{_ids(with_dynamics)}", 2)
    summary = run_summary(store, run, thresholds)
    if summary is None:
        fail(f"run {run} has no training dynamics ({_why_none(found.status, found.config)}). Train again with "
             f"cartography on (the default for sft and label-only), or pick a run that has them: "
             f"{_ids(with_dynamics)}")
    rows = example_rows(store, run, thresholds, with_text=False)
    if as_json:
        console.print_json(json.dumps({
            "run": run, "checkpoints": summary.checkpoints,
            "thresholds": {"ambiguous_variability": thresholds.ambiguous_variability,
                           "hard_confidence": thresholds.hard_confidence, "source": source},
            "regions": summary.regions,
            "examples": [{"id": r.example_id, "confidence": r.confidence, "variability": r.variability,
                          "correctness": r.correctness, "region": r.region} for r in rows]}))
        return
    from pipeline.views.cartography import render_cartography

    hardest = example_rows(store, run, thresholds, region="hard_to_learn", order="mislabel", limit=top)
    console.print(render_cartography(summary, rows, hardest, thresholds, source, min(console.width, 120)))


def _ids(runs: list[int]) -> str:
    return ", ".join(str(r) for r in runs[:10]) + (" ..." if len(runs) > 10 else "") if runs else "none yet"


def _why_none(status: str, config: dict[str, object]) -> str:
    if config.get("method") == "dpo":
        return "it is a DPO run: cartography scores sft and label-only runs"
    if config.get("cartography") is False:
        return "it was trained with cartography: false"
    if "cartography" not in config:
        return "it was trained before cartography existed"
    if status != "completed":
        return f"it is {status}: dynamics are stored when a run completes; `--resume` it to finish"
    return "no training row carried an example id of this store"
