"""`nlistral generate`, `reflect` (and `reflect --blind`) and `judge`: thin commands over pipeline.generate."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pipeline.cli.common import DEFAULT_DB_PATH, DbOption, console, err_console, fail

if TYPE_CHECKING:
    from pipeline.generate import Estimate, RunResult, Selection, StageOptions

DatasetOpt = Annotated[str | None, typer.Option(help="Only examples of this dataset.")]
SplitOpt = Annotated[str | None, typer.Option(help="Only examples of this split.")]
IdsOpt = Annotated[str | None, typer.Option(help="Only these example ids, e.g. '3,7,10-20'.")]
LimitOpt = Annotated[int | None, typer.Option(min=0, help="At most this many requests.")]
ModelOpt = Annotated[str | None, typer.Option(help="Model name; with --backend local, a Hugging Face model folder "
                                              "[default: [models] in the config file].")]
ServerOpt = Annotated[list[str] | None, typer.Option(
    help="The server: Mistral-compatible (--backend mistral), or OpenAI-compatible (--backend openai), e.g. vLLM "
         "at http://localhost:8000/v1; repeat it to spread requests over several OpenAI-compatible servers "
         "[default: [api] server_url, else the Mistral API].")]
BackendOpt = Annotated[str | None, typer.Option(
    help="'mistral' (the mistralai SDK: the Mistral API or a Mistral-compatible server) or 'openai' (the openai "
         "SDK: vLLM, SGLang, llama.cpp's server, Ollama; needs --server-url; key OPENAI_API_KEY, none for a local "
         "server) or 'local' (--model DIR, a Hugging Face folder, run in this process with its own chat template: "
         "GPU when present; --max-concurrency is the batch size; --rps does not apply) "
         "[default: [api] backend, else mistral].")]
RpsOpt = Annotated[float | None, typer.Option(help="Requests per second; ignored by --backend local, which is never "
                                            "throttled [default: [api] rps].")]
ConcOpt = Annotated[int | None, typer.Option(help="Requests in flight at most; with --backend local, the batch size "
                                             "[default: [api] max_concurrency].")]
DryOpt = Annotated[bool, typer.Option("--dry-run", help="Print how many requests would be sent, with estimated "
                                      "tokens and cost; send nothing.")]
RetryOpt = Annotated[bool, typer.Option("--retry-failed", help="Also re-send examples whose stored answer did not "
                                        "parse (normally a stored answer, even a failed one, is never paid twice).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")]


HELP = {
    "thought": "Stage 1: a thought (reasoning + label) for every example that has none from this model and "
               "prompt.\n\nResumable: each answer is stored as it arrives; re-run the same command after a crash "
               "or Ctrl-C.",
    "reflection": "Stages 2-3: a reflection for every example whose current thought disagrees with gold.\n\n"
                  "Skips thoughts that already have a reflection from this model and prompt. The reflection's "
                  "label is stored as written; one that does not reach gold is flagged, never forced.\n\n"
                  "--blind runs the rationalisation test instead: the reflection model re-derives the answer from "
                  "the premise, the hypothesis and the same thought, presented as an earlier attempt that may or "
                  "may not be right, WITHOUT being shown the gold label (gold only picks the thoughts to ask "
                  "about). A blind reflection is stored apart: it never becomes the example's reflection and is "
                  "never exported. `nlistral triage` then tells apart a reflection that reaches gold whether "
                  "shown it or not (robust) from one that reaches gold only once shown it (the "
                  "reflection_rationalises cell), and finds examples where neither reaches gold "
                  "(reflections_doubt_gold: the gold label may be wrong).",
}
BlindOpt = Annotated[bool, typer.Option("--blind", help="The rationalisation test: re-derive the answer without "
                                        "being shown gold (model: [models] reflection unless --model); stored as a "
                                        "blind reflection, never the example's reflection (see above).")]


def register(app: typer.Typer) -> None:
    """Add generate, reflect (with --blind) and judge to the CLI."""

    @app.command("generate", help=HELP["thought"])
    def generate(db: DbOption = DEFAULT_DB_PATH, dataset: DatasetOpt = None, split: SplitOpt = None,
                 ids: IdsOpt = None, limit: LimitOpt = None, model: ModelOpt = None, server_url: ServerOpt = None,
                 backend: BackendOpt = None, rps: RpsOpt = None, max_concurrency: ConcOpt = None,
                 dry_run: DryOpt = False, retry_failed: RetryOpt = False, as_json: JsonOpt = False) -> None:
        _run("thought", db, _selection(dataset, split, ids, limit), model, (backend, server_url), rps,
             max_concurrency, dry_run, retry_failed, as_json)

    @app.command("reflect", help=HELP["reflection"])
    def reflect(db: DbOption = DEFAULT_DB_PATH, dataset: DatasetOpt = None, split: SplitOpt = None,
                ids: IdsOpt = None, limit: LimitOpt = None, model: ModelOpt = None, server_url: ServerOpt = None,
                backend: BackendOpt = None, rps: RpsOpt = None, max_concurrency: ConcOpt = None,
                dry_run: DryOpt = False, retry_failed: RetryOpt = False, as_json: JsonOpt = False,
                blind: BlindOpt = False) -> None:
        _run("blind_reflection" if blind else "reflection", db, _selection(dataset, split, ids, limit), model,
             (backend, server_url), rps, max_concurrency, dry_run, retry_failed, as_json)

    @app.command()
    def judge(db: DbOption = DEFAULT_DB_PATH, dataset: DatasetOpt = None, split: SplitOpt = None,
              ids: IdsOpt = None, limit: LimitOpt = None, model: ModelOpt = None, server_url: ServerOpt = None,
              backend: BackendOpt = None, rps: RpsOpt = None, max_concurrency: ConcOpt = None,
              dry_run: DryOpt = False, retry_failed: RetryOpt = False, as_json: JsonOpt = False,
              target: Annotated[str, typer.Option(help="What to score: 'thought' or 'reflection' (the current "
                                                  "one of each example).")] = "thought") -> None:
        """Optional LLM-as-judge: score current thoughts or reflections 1-5 with a short rationale."""
        _run("judge", db, _selection(dataset, split, ids, limit), model, (backend, server_url), rps,
             max_concurrency, dry_run, retry_failed, as_json, target)


def parse_ids(spec: str | None) -> tuple[int, ...] | None:
    """'3,7,10-12' -> (3, 7, 10, 11, 12); None stays None."""
    if spec is None:
        return None
    ids: list[int] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
            raise typer.BadParameter(f"{part!r} is not an id or a range like 10-20", param_hint="--ids")
        ids.extend(range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1))
    return tuple(ids)


def _selection(dataset: str | None, split: str | None, ids: str | None, limit: int | None) -> Selection:
    from pipeline.generate import Selection

    return Selection(dataset, split, parse_ids(ids), limit)


def _run(stage: str, db: Path, selection: Selection, model: str | None,
         server: tuple[str | None, list[str] | None], rps: float | None, max_concurrency: int | None,
         dry_run: bool, retry_failed: bool, as_json: bool, target: str = "thought") -> None:
    from pipeline.api.endpoint import ClientConfigError
    from pipeline.cli.common import open_store
    from pipeline.generate import GenerateError, estimate, run_stage, stage_options
    from pipeline.settings import load_settings
    from pipeline.views.generate import RUN_TITLES, RunProgress

    open_store(db, create=not dry_run).conn.close()  # a clear error for a bad --db before anything else
    try:
        opts = stage_options(stage, load_settings(), model=model, backend=server[0], server_url=server[1], rps=rps,
                             max_concurrency=max_concurrency, retry_failed=retry_failed, judge_target=target,
                             need_endpoint=not dry_run)
    except GenerateError as exc:  # a ClientConfigError or SettingsError goes to the one handler: exit 2
        raise typer.BadParameter(str(exc)) from None
    if dry_run:
        _print_estimate(estimate(db, opts, selection), as_json)
        return
    bar = RunProgress(opts, err_console)
    try:
        with bar:
            result = run_stage(db, opts, selection, on_start=bar.start, on_progress=bar.update, notify=bar.note)
    except ClientConfigError as exc:  # includes AuthError: nothing else would succeed
        fail(f"{exc}\nAnswers stored before this are kept; fix the key and re-run.", 2)
    except KeyboardInterrupt:  # a GenerateError goes to the one handler (cli/common.py)
        err_console.print("Interrupted. Every answer received so far is stored; re-run the same command to "
                          "continue.", markup=False)
        raise typer.Exit(130) from None
    _print_summary(result, opts, as_json)
    if opts.cost_note and not as_json:
        console.print(f"Note: {opts.cost_note}", markup=False)
    if result.status == "failed":
        fail(f"{RUN_TITLES[stage]} run {result.run_id} failed: {result.error}")


def _print_estimate(est: Estimate, as_json: bool) -> None:
    from pipeline.views.generate import render_estimate

    if as_json:
        console.print_json(json.dumps(est.as_dict()))
    else:
        console.print(render_estimate(est))
        if est.cost_note:
            console.print(f"Note: {est.cost_note}", markup=False)


def _print_summary(result: RunResult, opts: StageOptions, as_json: bool) -> None:
    from pipeline.views.generate import render_summary

    if as_json:
        console.print_json(json.dumps(result.as_dict(), default=str))
    else:
        console.print(render_summary(result, opts))
