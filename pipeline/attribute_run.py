"""`nlistral attribute`: label attribution of an evaluate run's own answers, stored per example and run.

The answers are an in-process evaluate run's predictions with thoughts (the model's own thought and label);
the model is loaded as the teacher-forced check loads it (pipeline.evaluate.teacher_forced: the base as the
adapter's training recorded, the adapter unmerged on it). Each batch is stored as it finishes, so an
interrupted run loses at most the batch in flight, and the same command continues it.
"""
from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from db import attributions
from db.queues import QueueFilter, UnknownQueueError, ids
from db.runs import finish_run, reopen_run, start_run
from db.tx import when_unlocked
from pipeline.attribution import DEFAULT_STEPS, MAX_STEPS, SEGMENTS, Answer, attribute, full_precision, prepare
from pipeline.evaluate.errors import EvaluationError
from pipeline.evaluate.loading import LoadedModel, load_model


@dataclass(frozen=True)
class AttributeOptions:
    """Which answers to attribute, with which model and how finely."""

    adapter: str | None = None  # the adapter whose answers are explained
    base: str | None = None  # a base alone (or the adapter's base, overriding its record)
    eval_run: int | None = None  # the evaluate run; default: the latest completed one of this adapter/base
    example_ids: tuple[int, ...] = ()
    queue: str | None = None  # a review queue narrowing the answers
    limit: int | None = None
    steps: int = DEFAULT_STEPS
    max_steps: int = MAX_STEPS  # unconverged answers are integrated again at twice the steps, up to this
    rows_per_batch: int = 4
    device: str | None = None


@dataclass(frozen=True)
class AttributeResult:
    run_id: int
    resumed: bool
    attributed: int  # answers attributed by this call
    skipped: list[str]  # answers that could not be attributed, with why
    summary: attributions.RunShares | None
    seconds: float


def find_eval_run(db: Database, options: AttributeOptions) -> tuple[int, dict[str, Any]]:
    """The evaluate run whose answers are attributed, and its config."""
    if options.eval_run is not None:
        row = db.execute("SELECT kind, config FROM runs WHERE id = ?", [options.eval_run]).fetchone()
        if row is None or row[0] != "evaluate":
            raise EvaluationError(f"run {options.eval_run} is not an evaluate run; see `nlistral runs --kind evaluate`")
        return options.eval_run, _checked(options.eval_run, json.loads(row[1] or "{}"))
    adapter = str(Path(options.adapter).resolve()) if options.adapter else None
    for run_id, config in db.execute("SELECT id, config FROM runs WHERE kind = 'evaluate' AND status = 'completed' "
                                     "ORDER BY id DESC"):
        settings = json.loads(config or "{}")
        same = settings.get("adapter") == adapter if adapter else (
            not settings.get("adapter") and settings.get("base") == options.base)
        if same and settings.get("with_thought", True) and settings.get("backend", "local") == "local":
            return run_id, settings
    model = options.adapter or options.base
    raise EvaluationError(f"no completed in-process evaluate run with thoughts of {model}: attribution explains the "
                          f"model's own answers, so run `nlistral evaluate --{'adapter' if adapter else 'base'} "
                          f"{model}` first (or name a run with --run)")


def _checked(run_id: int, config: dict[str, Any]) -> dict[str, Any]:
    if not config.get("with_thought", True) or config.get("backend", "local") != "local":
        raise EvaluationError(f"run {run_id} is not an in-process evaluate run with thoughts: attribution needs the "
                              "model's own thought, from a model loaded here")
    return config


def answers_of(db: Database, eval_run: int, options: AttributeOptions) -> list[tuple[int, Answer]]:
    """(prediction id, answer) of the run's parsed answers with a thought, narrowed by ids, queue and limit."""
    rows = db.execute("SELECT g.id, e.id, e.premise, e.hypothesis, g.thought_process, g.predicted_label "
                      "FROM generations g JOIN examples e ON e.id = g.example_id WHERE g.kind = 'prediction' "
                      "AND g.run_id = ? AND g.predicted_label IS NOT NULL AND g.thought_process IS NOT NULL "
                      "AND g.id IN (SELECT max(id) FROM generations WHERE kind = 'prediction' AND run_id = ? "
                      "GROUP BY example_id) ORDER BY e.id", [eval_run, eval_run]).fetchall()
    wanted: set[int] | None = set(options.example_ids) if options.example_ids else None
    if options.queue is not None:
        try:
            in_queue = set(ids(db, QueueFilter(queue=options.queue)))
        except UnknownQueueError as exc:
            raise EvaluationError(str(exc)) from None
        wanted = in_queue if wanted is None else wanted & in_queue
    found = [(gid, Answer(eid, p, h, t, int(label))) for gid, eid, p, h, t, label in rows
             if wanted is None or eid in wanted]
    return found[:options.limit] if options.limit else found


def run_attribution(db: Database, options: AttributeOptions, *, loader: Callable[..., LoadedModel] = load_model,
                    progress: Callable[[int, int], None] = lambda done, total: None,
                    notify: Callable[[str], None] = lambda message: None) -> AttributeResult:
    """Attribute the answers, storing each batch; continues an unfinished run of the same settings."""
    started = time.perf_counter()
    eval_run, config = find_eval_run(db, options)
    chosen = answers_of(db, eval_run, options)
    if not chosen:
        raise EvaluationError(f"evaluate run {eval_run} has no parsed answer with a thought among the examples "
                              "asked for (--ids, --queue)")
    identity = {"eval_run": eval_run, "adapter": config.get("adapter"), "base": options.base or config.get("base"),
                "steps": options.steps, "max_steps": options.max_steps, "segments": SEGMENTS,
                "examples": sorted(a.example_id for _, a in chosen)}
    found = _unfinished(db, identity)
    if found is not None:
        run_id = found
        reopen_run(db, run_id)
        notify(f"Resuming attribute run {run_id}.")
    else:
        run_id = start_run(db, "attribute", {**identity, "examples": len(chosen), "example_ids": identity["examples"]})
    done = attributions.done_ids(db, run_id)
    todo = [(gid, a) for gid, a in chosen if a.example_id not in done]
    skipped: list[str] = []
    try:
        progress(len(chosen) - len(todo), len(chosen))
        if todo:
            adapter = Path(config["adapter"]) if config.get("adapter") else None
            loaded = loader(adapter, options.base or config.get("base"), device=options.device, merge=False)
            full_precision(loaded.model)
            rows, skipped = prepare(loaded.tokenizer, [a for _, a in todo])
            generation = {a.example_id: gid for gid, a in todo}
            for start in range(0, len(rows), options.rows_per_batch * 4):  # stored every few batches
                part = rows[start:start + options.rows_per_batch * 4]
                results = attribute(loaded.model, part, steps=options.steps, max_steps=options.max_steps,
                                    rows_per_batch=options.rows_per_batch)
                stored = [_row(run_id, generation, r) for r in results]
                when_unlocked(functools.partial(attributions.store, db, stored))
                progress(len(chosen) - len(todo) + start + len(part), len(chosen))
        summary = next((s for s in attributions.run_shares(db) if s.run_id == run_id), None)
        finish_run(db, run_id, "completed", metrics={
            "attributed": summary.examples if summary else 0, "skipped": skipped,
            "thought_share": summary.thought if summary else None,
            "premise_hypothesis_share": summary.premise_hypothesis if summary else None,
            "worst_relative_delta": summary.worst_delta if summary else None,
            "unconverged": summary.unconverged if summary else None})
    except BaseException as exc:
        finish_run(db, run_id, "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed",
                   error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    return AttributeResult(run_id, found is not None, len(todo) - len(skipped), skipped, summary,
                           time.perf_counter() - started)


def _row(run_id: int, generation: dict[int, int], a: Any) -> dict[str, Any]:
    return {"run_id": run_id, "example_id": a.example_id, "generation_id": generation[a.example_id],
            "label": a.label, "logprob": a.logprob, "baseline_logprob": a.baseline_logprob, "delta": a.delta,
            "premise": a.regions["premise"], "hypothesis": a.regions["hypothesis"], "thought": a.regions["thought"],
            "tokens": [[s, e, round(x, 6)] for s, e, x in a.tokens]}


def _unfinished(db: Database, identity: dict[str, Any]) -> int | None:
    """An attribute run with these settings that did not complete (to continue), if any."""
    for run_id, config in db.execute("SELECT id, config FROM runs WHERE kind = 'attribute' AND status != 'completed' "
                                     "AND status != 'running' ORDER BY id DESC"):
        settings = json.loads(config or "{}")
        if all(settings.get(k) == v for k, v in identity.items() if k != "examples") and \
                settings.get("example_ids") == identity["examples"]:
            return int(run_id)
    return None
