"""`nlistral assign`, `nlistral agreement` and `nlistral sample`: several reviewers on one store."""
from __future__ import annotations

import json
from typing import Annotated

import typer

from db.tx import when_unlocked
from pipeline.cli.common import DEFAULT_DB_PATH, DbOption, console, open_store, waiting_notice

QueueOption = Annotated[str, typer.Option("--queue", help="Only this review queue's examples (as the review app "
                                          "names them: all, disagreements, needs_reflection, pending, ...).")]
DatasetOption = Annotated[str | None, typer.Option("--dataset", help="Only this dataset's examples.")]
SplitOption = Annotated[str | None, typer.Option("--split", help="Only this split's examples.")]
SeedOption = Annotated[int, typer.Option("--seed", help="The random seed: the same seed and store, the same result.")]


def register(app: typer.Typer) -> None:
    """Add assign, agreement and sample to the CLI."""
    app.command("assign")(assign)
    app.command("agreement")(agreement)
    app.command("sample")(sample)


def assign(
    reviewers: Annotated[str, typer.Option("--reviewers", help="The reviewers' names, comma-separated "
                         "(e.g. ada,bob,cy); each must match the name the reviewer reviews under (config "
                         "`reviewer`, or NLISTRAL_REVIEWER).")],
    overlap: Annotated[float, typer.Option("--overlap", help="The share of examples (0 to 1) that also goes to a "
                       "second reviewer, so agreement can be measured (needs two reviewers or more).")] = 0.0,
    queue: QueueOption = "all",
    dataset: DatasetOption = None,
    split: SplitOption = None,
    seed: SeedOption = 0,
    replace: Annotated[bool, typer.Option("--replace", help="Assign examples already assigned again (their "
                       "assignments are deleted first); by default they are kept as they are.")] = False,
    db: DbOption = DEFAULT_DB_PATH,
) -> None:
    """Split examples over reviewers: each to one reviewer, the overlap share to two.

    The chosen examples (all, or those of --queue, --dataset, --split) are shuffled with --seed and dealt
    round-robin; the first --overlap share of them also goes to a second reviewer (the next one, then the one
    after, so every pair shares some). The review app's "mine" queue shows each reviewer what is assigned to
    them and not yet decided by them. Written in one transaction; decisions are never touched.
    """
    from db.assignments import assign as assign_examples
    from db.queues import QueueFilter
    from pipeline.views.team import assigned_view

    names = [n.strip() for n in reviewers.split(",") if n.strip()]
    store, chosen = open_store(db, create=False), QueueFilter(queue=queue, dataset=dataset, split=split)
    done = when_unlocked(lambda: assign_examples(store, chosen, names, overlap, seed=seed, replace=replace),
                         on_wait=waiting_notice(db, "assignment"))
    console.print(assigned_view(done))


def agreement(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables: pairs "
                       "[{a, b, shared, agreement, kappa}] and alpha for decisions, the same under flags and "
                       "relabels, and reviewers.")] = False,
    db: DbOption = DEFAULT_DB_PATH,
) -> None:
    """Agreement between reviewers on the examples they share.

    For every pair of reviewers who both decided some examples: how many they share, the share they agree
    on and Cohen's kappa over the decision (accept / reject / edit / flag); Krippendorff's alpha (nominal)
    over all reviewers; the same for bias flags and suggested relabels; and per reviewer: decisions, median
    seconds per decision, accept rate. Kappa is undefined (null) when both reviewers used one and the same
    category only.
    """
    from pipeline.agreement import agreement_report

    report = agreement_report(open_store(db, read_only=True))
    if as_json:
        console.print_json(json.dumps(report.as_dict()))
        return
    from pipeline.views.team import agreement_view

    console.print(agreement_view(report))


def sample(
    n: Annotated[int, typer.Option("--n", help="How many examples to sample (all of them when fewer match).")],
    stratify: Annotated[str, typer.Option("--stratify", help="Stratify over these keys, comma-separated: gold, "
                        "queue, dataset, split (proportional allocation, at least one from each stratum when "
                        "--n allows). 'queue' is an example's primary queue: needs_reflection (thought label "
                        "not gold, no reflection), else disagreements (not gold), else all (the rest).")] = "",
    queue: QueueOption = "all",
    dataset: DatasetOption = None,
    split: SplitOption = None,
    name: Annotated[str, typer.Option("--name", help="The sample's name (the review app shows it as a queue).")]
    = "audit",
    seed: SeedOption = 0,
    replace: Annotated[bool, typer.Option("--replace", help="Replace a sample of that name.")] = False,
    db: DbOption = DEFAULT_DB_PATH,
) -> None:
    """Draw a random or stratified audit sample of examples and store it under a name.

    Without --stratify: a simple random sample. The sample is seeded (--seed), stored in the store (table
    samples) and shown by the review app as a queue; a name already taken is refused unless --replace.
    """
    from db.queues import QueueFilter
    from pipeline.sample import parse_keys, take_sample
    from pipeline.views.team import strata_table

    keys = parse_keys(stratify)
    store, chosen = open_store(db, create=False), QueueFilter(queue=queue, dataset=dataset, split=split)
    drawn = when_unlocked(lambda: take_sample(store, name, chosen, n, keys, seed=seed, replace=replace),
                          on_wait=waiting_notice(db, "sample"))
    if drawn.replaced:
        console.print(f"Replaced the sample {name!r} ({drawn.replaced} examples).", markup=False)
    console.print(strata_table(drawn.name, drawn.strata, drawn.keys))
