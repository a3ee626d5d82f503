"""What a run reports when it ends: its counters, quality figures over its answers, and why it failed."""
from __future__ import annotations

import json
from collections import Counter
from typing import Any

from sqlite_utils import Database

from db.generations import latest_answers, thoughts_without_label
from db.outcomes import outcomes
from pipeline.generate.options import Selection, StageOptions
from pipeline.generate.send import Counters
from pipeline.metrics import BinaryMetrics

BLIND_OUTCOMES = ("robust", "rationalised", "doubts_gold")  # the reflection values a blind reflection adds


def run_summary(db: Database, opts: StageOptions, selection: Selection, counters: Counters) -> dict[str, Any]:
    """This run's counters, plus quality figures over every answer of this model and prompt version
    in the selection (so a resumed run reports the whole)."""
    scope = selection.scope
    rows = latest_answers(db, scope, opts.stage, opts.model, opts.prompt.version)
    summary: dict[str, Any] = {"run": counters.as_dict(), "answers": len(rows)}
    if opts.cost_note:
        summary["cost_note"] = opts.cost_note
    labelled = [(r["gold_label"], r["predicted_label"]) for r in rows if r["gold_label"] is not None]
    flags = Counter(f for r in rows for f in json.loads(r["flags"] or "[]"))
    summary["parse_failed"] = sum(r["parse_status"] == "failed" for r in rows)
    summary["flags"] = dict(flags)
    if opts.stage == "thought":
        summary["against_gold"] = BinaryMetrics.from_pairs(labelled).as_dict()
    elif opts.stage in ("reflection", "blind_reflection"):
        summary["reached_gold"] = sum(g == p for g, p in labelled)
        summary["not_gold"] = sum(p is not None and g != p for g, p in labelled)
        summary["thoughts_without_label"] = thoughts_without_label(db, scope)
        if opts.stage == "blind_reflection":  # what the test found, as `nlistral triage` counts it
            grid = outcomes(db, scope).grid
            summary["blind_outcomes"] = {value: sum(g.count for g in grid if g.reflection == value)
                                         for value in BLIND_OUTCOMES}
    else:
        scores = [r["score"] for r in rows if r["score"] is not None]
        summary["mean_score"] = round(sum(scores) / len(scores), 3) if scores else None
        summary["scores"] = {str(s): scores.count(s) for s in sorted(set(scores))}
    return summary


# What to check when every request failed, by the commonest kind of failure.
FAILURE_HINTS = {
    "connection": "check that the server at {url} is running and reachable (--server-url / [api] server_url)",
    "timeout": "the server at {url} did not answer in time: check that it is up, or raise [api] timeout_s",
    "server_error": "the server at {url} answered with errors: check its status (or its log, for your own "
                    "server) and try again later",
    "rate_limited": "the server kept refusing over rate limits: lower --rps (or [api] rps) to your plan's limit, "
                    "or try again later",
    "local_model": "the model run in this process failed (the error above): check --model and that the "
                   "machine has the memory for it (a smaller --max-concurrency decodes smaller batches)",
    "bad_request": "the server rejected the requests: check --model (or [models] in the config file) and "
                   "--server-url",
}


def all_failed_message(opts: StageOptions, counters: Counters) -> str:
    """Why a run in which every request failed stored nothing, and what to check."""
    n = sum(counters.failures.values())
    kinds = ", ".join(f"{kind} {count}" for kind, count in counters.failures.most_common())
    kind = counters.failures.most_common(1)[0][0]
    url = ", ".join(e.label for e in opts.endpoints) or "(none)"
    hint = FAILURE_HINTS.get(kind, "check --server-url and --model").format(url=url)
    return (f"every request failed ({n} given up: {kinds}), so nothing was stored. The last error: "
            f"{counters.last_error}. {hint[0].upper()}{hint[1:]}; then re-run the same command.")
