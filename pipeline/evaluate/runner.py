"""`nlistral evaluate`: select examples, generate in batches, store predictions, resume, report metrics."""
from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, cast

from sqlite_utils import Database

from db import predictions
from db.examples_read import labelled_examples
from db.generations import add_generations, dedupe_key
from db.records import Example
from db.runs import finish_run, get_run, reopen_run, start_run
from db.scope import Scope
from db.tx import when_unlocked
from exports.layout import layout_for
from pipeline.api.endpoint import Endpoint
from pipeline.evaluate.earlier_runs import resumable_run, shuffled_thoughts
from pipeline.evaluate.errors import EvaluationError
from pipeline.evaluate.loading import LoadedModel, load_model, read_layout
from pipeline.evaluate.overlap import find_overlaps
from pipeline.evaluate.prompts import forced_label_prefix, prompt_ids, prompt_version
from pipeline.evaluate.served import ask_and_store, check_served
from pipeline.evaluate.summary import EvalSummary, RunSummary, summarize
from pipeline.parsing import parse_prediction

Loader = Callable[..., LoadedModel]
SHUFFLE_MAX_NEW_TOKENS = 8  # the label and the closing brace


@dataclass(frozen=True)
class EvalOptions:
    """What to evaluate and how; every field but batch_size is part of the run's identity (for resume)."""

    adapter: str | None = None
    base: str | None = None
    datasets: tuple[str, ...] = ()
    splits: tuple[str, ...] = ()
    limit: int | None = None
    max_new_tokens: int = 512
    with_thought: bool = True
    shuffle_thoughts: bool = False
    seed: int = 0
    merge: bool | None = None  # None: merge on CUDA, not on CPU
    batch_size: int | None = field(default=None, compare=False)
    max_memory_gib: float | None = field(default=None, compare=False)  # --max-memory: the GPU memory to use at most
    # "local": the adapter in this process; "openai": a server (pipeline.evaluate.served) serves `model`
    backend: str = "local"
    servers: tuple[str, ...] = ()  # --server-url, for backend "openai"
    model: str | None = None  # the served model or LoRA module name, for backend "openai"
    rps: float | None = field(default=None, compare=False)  # None: no limit (a self-hosted server)
    max_concurrency: int = field(default=32, compare=False)
    timeout_s: float = field(default=120.0, compare=False)
    max_retries: int = field(default=6, compare=False)

    def __post_init__(self) -> None:
        if self.backend != "local":
            check_served(self)
        elif self.servers or self.model:
            raise EvaluationError("--server-url and --model are for --backend openai; in-process evaluation "
                                  "takes --adapter DIR or --base PATH")
        if self.shuffle_thoughts and not self.with_thought:
            raise EvaluationError("--shuffle-thoughts needs thoughts: drop --no-thought")
        if self.max_new_tokens < 1:
            raise EvaluationError("--max-new-tokens must be at least 1")
        if self.limit is not None and self.limit < 1:
            raise EvaluationError("--limit must be at least 1")

    def identity(self) -> dict[str, Any]:
        """The config a resumed run must match (paths resolved, lists sorted)."""
        data = asdict(self)
        for f in fields(self):
            if not f.compare:
                data.pop(f.name)
        if self.backend == "local":  # in-process runs keep the identity they always had (resume across versions)
            for name in ("backend", "servers", "model"):
                data.pop(name)
        else:
            data["servers"] = sorted(Endpoint(url).label for url in self.servers)
        data["adapter"] = str(Path(self.adapter).resolve()) if self.adapter else None
        data["datasets"], data["splits"] = sorted(self.datasets), sorted(self.splits)
        data["prompt_version"] = prompt_version(with_thought=self.with_thought,
                                                shuffle_thoughts=self.shuffle_thoughts)
        return data


@dataclass
class EvalResult:
    """What one evaluate call did and found."""

    run_id: int
    resumed: bool
    generated_now: int
    summary: RunSummary
    json_path: Path
    warnings: list[str]


def select_examples(db: Database, datasets: Sequence[str], splits: Sequence[str],
                    limit: int | None) -> tuple[list[Example], int]:
    """Labelled examples of the datasets/splits (all when empty), by id; and how many unlabelled were left out."""
    return labelled_examples(db, Scope(tuple(datasets), tuple(splits), limit=limit or None))


def run_evaluation(
    db: Database,
    options: EvalOptions,
    *,
    resume: bool = False,
    json_path: Path | None = None,
    loader: Loader = load_model,
    notify: Callable[[str], None] = lambda message: None,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> EvalResult:
    """Evaluate, storing each finished batch at once; the metrics cover every prediction of the run."""
    examples, unlabelled = select_examples(db, options.datasets, options.splits, options.limit)
    if not examples:
        raise EvaluationError("no labelled examples match the --dataset/--split filters; see `nlistral stats`")
    if unlabelled:
        notify(f"{unlabelled} unlabelled examples left out (no gold label to score against).")
    identity = options.identity()
    adapter = Path(options.adapter) if options.adapter else None
    if options.backend == "local" and (layout := read_layout(adapter, options.base)) is not None:
        # the prompt as this model sees it: a chat-template model's differs from the [INST] one identity() names
        identity["prompt_version"] = prompt_version(with_thought=options.with_thought,
                                                    shuffle_thoughts=options.shuffle_thoughts, layout=layout)
    overlaps, notes = find_overlaps(db, adapter, {e.content_hash for e in examples})
    warnings = [o.message() for o in overlaps]
    for line in warnings:
        notify(f"WARNING: {line}")
    for line in notes:
        notify(f"note: {line}")
    shuffled = shuffled_thoughts(db, identity, examples, options.seed) if options.shuffle_thoughts else {}

    found = resumable_run(db, identity) if resume else None
    resumed = found is not None
    if found is not None:
        run_id = found
        reopen_run(db, run_id)
        notify(f"Resuming evaluate run {run_id}.")
    else:
        if not resume and (older := resumable_run(db, identity)) is not None:
            notify(f"note: unfinished run {older} has the same settings; pass --resume to continue it instead.")
        run_id = start_run(db, "evaluate", {**identity, "examples": len(examples), "warnings": warnings})
    done = predictions.predicted_ids(db, run_id)
    todo = [e for e in examples if e.id not in done]
    progress(len(examples) - len(todo), len(examples))
    generated = 0
    try:
        step = lambda n: progress(len(examples) - len(todo) + n, len(examples))  # counts every example
        if todo and options.backend != "local":
            generated = ask_and_store(db, run_id, options, todo, step)
        elif todo:
            generated = _generate_and_store(db, run_id, options, identity, todo, shuffled, loader, step, notify)
        model = identity.get("model") or identity["adapter"] or identity["base"]
        summary = RunSummary(**summarize(db, run_id), run_id=run_id, model=model,
                             config=identity, warnings=warnings, notes=notes, unlabelled_left_out=unlabelled)
        path = json_path or Path("runs") / f"evaluate-{run_id}.json"
        write_json(path, cast(dict[str, Any], summary))
        finish_run(db, run_id, "completed", metrics={k: v for k, v in summary.items() if k != "config"},
                   artifacts={"metrics_json": str(path.resolve()), "adapter": identity["adapter"]})
    except BaseException as exc:
        status = "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"
        finish_run(db, run_id, status, error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    return EvalResult(run_id, resumed, generated, summary, path, warnings)


def _generate_and_store(db: Database, run_id: int, options: EvalOptions, identity: dict[str, Any],
                        todo: list[Example], shuffled: dict[int, tuple[str, int, int]], loader: Loader,
                        progress: Callable[[int], None], notify: Callable[[str], None]) -> int:
    from pipeline.evaluate.generation import generate

    loaded = loader(Path(options.adapter) if options.adapter else None, options.base, merge=options.merge,
                    max_memory_gib=options.max_memory_gib)
    if loaded.warning:
        notify(f"WARNING: {loaded.warning}")
    layout = layout_for(loaded.tokenizer, loaded.base)  # the prompt layout training used for this base
    version = prompt_version(with_thought=options.with_thought, shuffle_thoughts=options.shuffle_thoughts,
                             layout=layout)
    forced = [forced_label_prefix(shuffled[e.id][0], layout) if shuffled else "" for e in todo]
    prompts = prompt_ids(layout, [(e.premise, e.hypothesis) for e in todo], with_thought=options.with_thought,
                         forced=forced)
    max_new = SHUFFLE_MAX_NEW_TOKENS if shuffled else options.max_new_tokens
    stored = 0
    for batch in generate(loaded.model, loaded.tokenizer, prompts, max_new_tokens=max_new,
                          batch_size=options.batch_size, max_memory_gib=options.max_memory_gib,
                          forced=forced if shuffled else None,
                          stop_ids=layout.stop_ids):
        rows = []
        for i, out in zip(batch.indices, batch.outputs):
            example = todo[i]
            raw = forced[i].lstrip() + out.text
            parsed = parse_prediction(raw, with_thought=options.with_thought)
            params: dict[str, Any] = {"stop": out.stop, "max_new_tokens": max_new, "decoding": "greedy",
                                      "mode": loaded.mode, "problems": list(parsed.problems)}
            if shuffled:
                _, source, source_run = shuffled[example.id]
                params.update(thought_from_example=source, thought_from_run=source_run)
            rows.append({
                "example_id": example.id, "kind": "prediction", "model": loaded.name, "backend": "local",
                "prompt_version": version, "params": params,
                "thought_process": parsed.thought, "predicted_label": parsed.label, "raw_response": raw,
                "parse_status": parsed.status, "flags": list(parsed.flags), "tokens_in": out.prompt_tokens,
                "tokens_out": len(out.token_ids), "latency_ms": 1000 * batch.seconds / len(batch.indices),
                "run_id": run_id, "dedupe_key": dedupe_key("prediction", run_id, example.id),
            })
        # One commit per batch: an interruption loses at most the batch in flight. add_generations is
        # one transaction; it waits while another process (a large import) holds the write lock.
        when_unlocked(functools.partial(add_generations, db, rows))
        stored += len(rows)
        progress(stored)
    return stored


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON through a temporary file and a rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_summary(db: Database, run_id: int) -> EvalSummary:
    """The stored summary of a completed evaluate run (its metrics row), or the live one for others."""
    run = get_run(db, run_id)
    if run.kind != "evaluate":
        raise EvaluationError(f"run {run_id} is of kind {run.kind}, not an evaluate run")
    if run.status == "completed" and run.metrics:
        return cast(EvalSummary, run.metrics)
    return summarize(db, run_id)
