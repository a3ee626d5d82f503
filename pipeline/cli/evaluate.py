"""`nlistral evaluate` and `nlistral compare` (heavy imports stay inside the commands)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import (
    DEFAULT_DB_PATH,
    DbOption,
    ProgressBar,
    console,
    fail,
    open_store,
    require_train_extra,
)


def register(app: typer.Typer) -> None:
    """Add the evaluate and compare commands to the CLI."""
    app.command("evaluate")(evaluate)
    app.command("compare")(compare)


def evaluate(
    adapter: Annotated[Path | None, typer.Option(help="A trained LoRA adapter folder. Without it, --base "
                       "alone is evaluated (the 'before fine-tuning' row).")] = None,
    base: Annotated[str | None, typer.Option(help="The base model folder [default: the one the adapter's "
                    "adapter_config.json names].")] = None,
    db: DbOption = DEFAULT_DB_PATH,
    dataset: Annotated[list[str] | None, typer.Option(help="Only this dataset (repeatable) [default: all].")] = None,
    split: Annotated[list[str] | None, typer.Option(help="Only this split (repeatable), e.g. dev or test "
                     "[default: all].")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many examples (the first by id).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Prompts per batch [default: 8 on CPU; on CUDA as "
                          "many as the free GPU memory holds, up to 1024].")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Stop an answer after this many tokens (answers also stop "
                              "at the end of their JSON object or at EOS).")] = 512,
    no_thought: Annotated[bool, typer.Option("--no-thought", help="Ablation: the label-only prompt (the "
                          "label-only training target); answers need no thought_process.")] = False,
    shuffle_thoughts: Annotated[bool, typer.Option("--shuffle-thoughts", help="Ablation: does the reasoning "
                                "matter? Each example gets the usual prompt and a forced answer start "
                                "{\"thought_process\": T, \"predicted_label\": where T is the thought this same "
                                "model wrote for ANOTHER example (from its latest completed plain evaluate run "
                                "on these examples; a seeded derangement); the model decodes only the label. "
                                "If accuracy barely drops, the labels do not depend on the thoughts.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the --shuffle-thoughts pairing.")] = 0,
    no_merge: Annotated[bool, typer.Option("--no-merge", help="On CUDA, compute with the 4-bit base as training "
                        "did (much slower) instead of dequantising it once into bf16 (the adapter is applied "
                        "unmerged either way). Chosen by itself when the bf16 copy would not fit the card.")] = False,
    max_memory: Annotated[float | None, typer.Option(help="On a GPU: the GiB of its memory evaluation may hold at most "
                          "(weights, caches, activations) [default: what the card has free].", min=0.5)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the latest unfinished evaluate run with the "
                      "same settings, skipping examples it already stored.")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Where to write the metrics JSON "
                        "[default: runs/evaluate-RUN.json].")] = None,
    backend: Annotated[str, typer.Option(help="'local' (the adapter or base in this process) or 'openai' (an "
                       "OpenAI-compatible server such as vLLM serves --model; needs --server-url; key "
                       "OPENAI_API_KEY, none for a local server).")] = "local",
    server_url: Annotated[list[str] | None, typer.Option(help="With --backend openai: the server, e.g. "
                          "http://localhost:8000/v1; repeat it to spread requests over several.")] = None,
    model: Annotated[str | None, typer.Option(help="With --backend openai: the served model or LoRA module name "
                     "(vLLM: --lora-modules NAME=ADAPTER_DIR).")] = None,
    rps: Annotated[float | None, typer.Option(help="With --backend openai: requests per second at most "
                   "[default: no limit].")] = None,
    max_concurrency: Annotated[int, typer.Option(help="With --backend openai: requests in flight at most.")] = 32,
) -> None:
    """Evaluate an adapter (or a base model) on labelled examples of the database.

    Greedy decoding with the exact training prompt; answers are parsed by the project's one parser and an
    unparseable answer counts as wrong (never a default label). Predictions are stored (kind
    'prediction'), so the review app's "model errors" queue shows each wrong or failed one beside gold,
    the teacher's thought and the reflection. Prints accuracy, precision/recall/F1 for label 1, macro
    F1, the confusion matrix, the parse-failure rate and accuracy by thought length; warns when the
    evaluated examples overlap the adapter's training or early-stopping data. With --backend openai the same
    prompts go, one chat message each, to an OpenAI-compatible server (vLLM) that serves --model.
    """
    from pipeline.evaluate.errors import EvaluationError
    from pipeline.evaluate.runner import EvalOptions, run_evaluation
    from pipeline.settings import Api, load_settings
    from pipeline.train_extra import EVALUATE_MODULES
    from pipeline.views.evaluate import render_summary

    served = backend != "local"
    if adapter is None and base is None and not served:
        raise typer.BadParameter("pass --adapter DIR, or --base PATH to evaluate a base model alone (or "
                                 "--backend openai --server-url URL --model NAME)", param_hint="--adapter")
    if batch_size is not None and (batch_size < 1 or served):
        raise typer.BadParameter(f"{batch_size} is not a batch size; use 1 or more (with --backend openai, "
                                 "--max-concurrency instead)", param_hint="--batch-size")
    api = load_settings().api if served else Api()  # timeouts and retries of the openai client
    try:
        options = EvalOptions(
            adapter=str(adapter) if adapter else None, base=base, datasets=tuple(dataset or ()),
            splits=tuple(split or ()), limit=limit, max_new_tokens=max_new_tokens, with_thought=not no_thought,
            shuffle_thoughts=shuffle_thoughts, seed=seed, merge=False if no_merge else None, batch_size=batch_size,
            max_memory_gib=max_memory,
            backend=backend, servers=tuple(server_url or ()), model=model, rps=rps, max_concurrency=max_concurrency,
            timeout_s=api.timeout_s, max_retries=api.max_retries)
    except EvaluationError as exc:
        raise typer.BadParameter(str(exc)) from None
    if not served:
        require_train_extra("evaluate", EVALUATE_MODULES)
    store = open_store(db, create=False)
    with ProgressBar("evaluating") as bar:
        try:
            result = run_evaluation(store, options, resume=resume, json_path=json_out, notify=bar.note,
                                    progress=bar.update)
        except KeyboardInterrupt:  # an EvaluationError, LoadError or MergeError goes to the one handler
            fail("Interrupted: the predictions of finished batches are stored; run the same command with "
                 "--resume to continue.", 130)
    console.print(render_summary(result.summary))
    console.print(f"Metrics written to {result.json_path}; predictions stored under run {result.run_id}.",
                  markup=False)


def compare(
    run_a: Annotated[int, typer.Argument(help="An evaluate run id.", show_default=False)],
    run_b: Annotated[int, typer.Argument(help="Another evaluate run id.", show_default=False)],
    db: DbOption = DEFAULT_DB_PATH,
    show: Annotated[int, typer.Option(help="List at most this many differing examples.")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
) -> None:
    """Two evaluate runs side by side: metrics, and the examples where their answers differ."""
    from pipeline.evaluate.compare import compare_runs
    from pipeline.views.evaluate import render_comparison

    comparison = compare_runs(open_store(db, read_only=True), run_a, run_b)  # errors: the one handler
    if as_json:
        console.print_json(json.dumps(comparison.as_dict()))
    else:
        console.print(render_comparison(comparison, show))
