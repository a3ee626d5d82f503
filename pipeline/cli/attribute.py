"""`nlistral attribute`: integrated-gradients attribution of an adapter's own answers (pipeline/attribute_run.py)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pipeline.attribution import DEFAULT_STEPS, MAX_STEPS
from pipeline.cli.common import DEFAULT_DB_PATH, DbOption, ProgressBar, console, fail, open_store, require_train_extra


def register(app: typer.Typer) -> None:
    """Add attribute to the CLI."""
    app.command("attribute")(attribute)


def _ids(value: str | None) -> tuple[int, ...]:
    if not value:
        return ()
    try:
        return tuple(int(part) for part in value.replace(" ", "").split(",") if part)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a list of example ids; write e.g. --ids 3,17,42",
                                 param_hint="--ids") from None


def attribute(
    adapter: Annotated[Path | None, typer.Option(help="The adapter whose answers are explained (its latest "
                       "completed evaluate run with thoughts, unless --run names one).")] = None,
    base: Annotated[str | None, typer.Option(help="A base model alone (its evaluate run of --base), or the base "
                    "to load under --adapter [default: the one the adapter records].")] = None,
    run: Annotated[int | None, typer.Option("--run", help="The evaluate run whose answers are explained.")] = None,
    ids: Annotated[str | None, typer.Option("--ids", help="Only these example ids, e.g. 3,17,42.")] = None,
    queue: Annotated[str | None, typer.Option(help="Only the examples of this review queue, e.g. model_errors or "
                     "disagreements (see the app's queue list).")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many answers (the first by id).", min=1)] = None,
    steps: Annotated[int, typer.Option(help="Integration steps of the first try (Gauss-Legendre); an answer whose "
                     "attributions miss more than 5 % of the output difference is integrated again with twice "
                     "the steps.", min=4)] = DEFAULT_STEPS,
    max_steps: Annotated[int, typer.Option(help="The most steps an answer is integrated with; answers still "
                         "unconverged there are stored with their delta and counted.", min=4)] = MAX_STEPS,
    batch_size: Annotated[int, typer.Option(help="Answers per batch (each runs --steps forward and backward "
                          "passes, more for answers that need them).", min=1)] = 4,
    device: Annotated[str | None, typer.Option(help="cuda or cpu [default: cuda when there is one].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
    db: DbOption = DEFAULT_DB_PATH,
) -> None:
    """Which tokens does the label come from? Integrated gradients of the answer's label.

    For each answer of an in-process evaluate run with thoughts (the model's own thought and label), the
    log-probability of its label token, teacher-forced on that answer, is attributed to the input tokens
    with integrated gradients (Captum), from a baseline where the premise, hypothesis and thought tokens carry
    the mean embedding. The attributions sum to the difference between the two outputs (completeness; the
    stored delta is what the integral missed; an answer missing over 5 % gets more steps, up to --max-steps).
    Stored per example and run: the share falling on the thought against the premise and hypothesis, and a
    score per thought token, which the review app colours (key i). A label that follows from the thought puts
    much of its attribution there; compare with evaluate --shuffle-thoughts.
    """
    from pipeline.attribute_run import AttributeOptions, run_attribution
    from pipeline.train_extra import EVALUATE_MODULES

    if adapter is None and base is None and run is None:
        raise typer.BadParameter("pass --adapter DIR (or --base PATH, or --run ID)", param_hint="--adapter")
    if steps > max_steps:
        raise typer.BadParameter(f"--steps {steps} is more than --max-steps {max_steps}", param_hint="--steps")
    require_train_extra("attribute", (*EVALUATE_MODULES, "captum"))
    options = AttributeOptions(adapter=str(adapter) if adapter else None, base=base, eval_run=run,
                               example_ids=_ids(ids), queue=queue, limit=limit, steps=steps,
                               max_steps=max_steps, rows_per_batch=batch_size, device=device)
    store = open_store(db, create=False)
    with ProgressBar("attributing", quiet=as_json) as bar:
        try:
            result = run_attribution(store, options, progress=bar.update, notify=bar.note)
        except KeyboardInterrupt:
            fail("Interrupted: the attributions of finished batches are stored; run the same command to continue.",
                 130)
    summary = result.summary.as_dict() if result.summary else None
    if as_json:
        console.print_json(json.dumps({"run_id": result.run_id, "resumed": result.resumed,
                                       "attributed": result.attributed, "skipped": result.skipped,
                                       "seconds": round(result.seconds, 2),
                                       "summary": summary}))
        return
    for line in result.skipped:
        console.print(f"skipped: {line}", markup=False)
    if summary:
        console.print(f"Attribute run {result.run_id}: {summary['examples']} answers of {summary['model']}; on average "
                      f"{summary['thought_share']:.0%} of the label's attribution falls on the thought, "
                      f"{summary['premise_hypothesis_share']:.0%} on the premise and hypothesis; worst convergence "
                      f"delta {summary['worst_relative_delta']:.2%} of the output difference; "
                      f"{summary['unconverged']} not converged within 5 % at --max-steps {max_steps}. "
                      f"({result.seconds:.1f} s; stored, shown in the app with i.)", markup=False)
