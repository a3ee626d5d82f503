"""What an evaluation takes from earlier evaluate runs: the unfinished one to resume, the model's own thoughts."""
from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from sqlite_utils import Database

from db import predictions
from db.records import Example
from db.runs import list_runs
from pipeline.evaluate.errors import EvaluationError

UNFINISHED = ("failed", "cancelled", "interrupted")


def resumable_run(db: Database, identity: dict[str, Any]) -> int | None:
    """The latest unfinished evaluate run with this identity that no live process runs, if any."""
    for run in list_runs(db, "evaluate"):
        if run.status in UNFINISHED and {k: run.config.get(k) for k in identity} == identity:
            return run.id
    return None


def shuffled_thoughts(db: Database, identity: dict[str, Any], examples: Sequence[Example],
                      seed: int) -> dict[int, tuple[str, int, int]]:
    """example id -> (thought, the example it was written for, its run): the model's own thoughts, deranged.

    The thoughts come from the newest completed plain (CoT, unshuffled) evaluate run of the same
    model on each example; every evaluated example gets one written for a different example.
    """
    same_model = {"adapter": identity["adapter"], "base": identity["base"]}
    own: dict[int, tuple[str, int]] = {}
    wanted = {e.id for e in examples}
    for run in list_runs(db, "evaluate"):
        stored = run.config
        if (run.status != "completed" or {k: stored.get(k) for k in same_model} != same_model
                or not stored.get("with_thought") or stored.get("shuffle_thoughts")):
            continue
        for example_id, thought in predictions.thoughts(db, run.id):
            if example_id in wanted and example_id not in own:
                own[example_id] = (thought, run.id)
    pool = sorted(own)
    if len(pool) < 2:
        raise EvaluationError(
            "--shuffle-thoughts needs the model's own thoughts on at least two of these examples: run "
            "`nlistral evaluate` with the same --adapter/--base (without --shuffle-thoughts) on them first")
    rng = random.Random(seed)
    rng.shuffle(pool)
    donor = {pool[k]: pool[(k + 1) % len(pool)] for k in range(len(pool))}  # a cycle: never itself
    out = {}
    for e in examples:
        source = donor.get(e.id) or pool[rng.randrange(len(pool))]
        out[e.id] = (own[source][0], source, own[source][1])
    return out
