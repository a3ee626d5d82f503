"""`nlistral generate`, `reflect` and `judge`: thin commands over pipeline.generate."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.table import Table
from rich.text import Text

from pipeline.cli.common import DEFAULT_DB_PATH, DbOption, console, err_console, fail

if TYPE_CHECKING:
    from pipeline.generate import Counters, RunResult, Selection, StageOptions

DatasetOpt = Annotated[Optional[str], typer.Option(help="Only examples of this dataset.")]
SplitOpt = Annotated[Optional[str], typer.Option(help="Only examples of this split.")]
IdsOpt = Annotated[Optional[str], typer.Option(help="Only these example ids, e.g. '3,7,10-20'.")]
LimitOpt = Annotated[Optional[int], typer.Option(min=0, help="At most this many requests.")]
ModelOpt = Annotated[Optional[str], typer.Option(help="Model name [default: [models] in the config file].")]
ServerOpt = Annotated[Optional[str], typer.Option(
    help="A Mistral-compatible server, e.g. a vLLM server at http://localhost:8000 [default: [api] server_url, "
         "else the Mistral API].")]
RpsOpt = Annotated[Optional[float], typer.Option(help="Requests per second [default: [api] rps].")]
ConcOpt = Annotated[Optional[int], typer.Option(help="Requests in flight at most [default: [api] max_concurrency].")]
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
                  "label is stored as written; one that does not reach gold is flagged, never forced.",
}


def register(app: typer.Typer) -> None:
    """Add generate, reflect and judge to the CLI."""
    app.command("generate", help=HELP["thought"])(_stage_command("thought"))
    app.command("reflect", help=HELP["reflection"])(_stage_command("reflection"))

    @app.command()
    def judge(db: DbOption = DEFAULT_DB_PATH, dataset: DatasetOpt = None, split: SplitOpt = None,
              ids: IdsOpt = None, limit: LimitOpt = None, model: ModelOpt = None, server_url: ServerOpt = None,
              rps: RpsOpt = None, max_concurrency: ConcOpt = None, dry_run: DryOpt = False,
              retry_failed: RetryOpt = False, as_json: JsonOpt = False,
              target: Annotated[str, typer.Option(help="What to score: 'thought' or 'reflection' (the current "
                                                  "one of each example).")] = "thought") -> None:
        """Optional LLM-as-judge: score current thoughts or reflections 1-5 with a short rationale."""
        _run("judge", db, _selection(dataset, split, ids, limit), model, server_url, rps, max_concurrency,
             dry_run, retry_failed, as_json, target)


def _stage_command(stage: str) -> Any:
    """The generate / reflect command: the same options, a different stage."""

    def command(db: DbOption = DEFAULT_DB_PATH, dataset: DatasetOpt = None, split: SplitOpt = None,
                ids: IdsOpt = None, limit: LimitOpt = None, model: ModelOpt = None, server_url: ServerOpt = None,
                rps: RpsOpt = None, max_concurrency: ConcOpt = None, dry_run: DryOpt = False,
                retry_failed: RetryOpt = False, as_json: JsonOpt = False) -> None:
        _run(stage, db, _selection(dataset, split, ids, limit), model, server_url, rps, max_concurrency,
             dry_run, retry_failed, as_json)

    return command


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


def _run(stage: str, db: Path, selection: Selection, model: str | None, server_url: str | None,
         rps: float | None, max_concurrency: int | None, dry_run: bool, retry_failed: bool, as_json: bool,
         target: str = "thought") -> None:
    from pipeline.cli.common import open_store
    from pipeline.client import ClientConfigError
    from pipeline.generate import GenerateError, estimate, run_stage, stage_options
    from pipeline.settings import SettingsError, load_settings

    open_store(db, create=not dry_run).conn.close()  # a clear error for a bad --db before anything else
    try:
        opts = stage_options(stage, load_settings(), model=model, server_url=server_url, rps=rps,
                             max_concurrency=max_concurrency, retry_failed=retry_failed, judge_target=target,
                             need_endpoint=not dry_run)
    except (ClientConfigError, SettingsError) as exc:
        fail(str(exc), 2)
    except GenerateError as exc:
        raise typer.BadParameter(str(exc)) from None
    if dry_run:
        _print_estimate(estimate(db, opts, selection), as_json)
        return
    bar = _Bar(opts)
    try:
        with bar:
            result = run_stage(db, opts, selection, on_start=bar.start, on_progress=bar.update, notify=bar.note)
    except ClientConfigError as exc:  # includes AuthError: nothing else would succeed
        fail(f"{exc}\nAnswers stored before this are kept; fix the key and re-run.", 2)
    except GenerateError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        err_console.print("Interrupted. Every answer received so far is stored; re-run the same command to "
                          "continue.", markup=False)
        raise typer.Exit(130) from None
    _print_summary(result, opts, as_json)
    if result.status == "failed":
        fail(f"{RUN_TITLES[stage]} run {result.run_id} failed: {result.error}")


class _Bar:
    """A rich progress bar with rate, ETA, failures and estimated cost."""

    def __init__(self, opts: StageOptions) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.opts = opts
        self.progress = Progress(
            TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} req/s"), TimeRemainingColumn(),
            TextColumn("failed {task.fields[failed]}  retries {task.fields[retries]}  ~${task.fields[cost]}"),
            console=err_console, transient=False)
        self.task_id: Any = None

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def note(self, message: str) -> None:
        """A line above the bar (literally, never as markup)."""
        self.progress.console.print(message, markup=False, highlight=False)

    def start(self, counters: Counters) -> None:
        self.task_id = self.progress.add_task(self._description(counters), total=counters.total,
                                              rate="0.0", failed=0, retries=0, cost="0.0000")

    def _description(self, counters: Counters) -> str:
        waiting = "  waiting: another process is writing" if counters.waiting_for_store else ""
        return f"{self.opts.stage}s ({self.opts.model}){waiting}"

    def update(self, counters: Counters) -> None:
        stats = counters.as_dict()
        self.progress.update(self.task_id, description=self._description(counters), completed=counters.finished,
                             rate=f"{stats['requests_per_s'] or 0:.1f}",
                             failed=counters.failed, retries=sum(counters.retries.values()),
                             cost=f"{counters.cost_usd:.4f}")


def _print_estimate(est: Any, as_json: bool) -> None:
    data = {"requests": est.requests, "model": est.model, "prompt_version": est.prompt_version,
            "tokens_in_estimate": est.tokens_in, "tokens_out_estimate": est.tokens_out,
            "cost_usd_estimate": None if est.cost_usd is None else round(est.cost_usd, 4)}
    if as_json:
        console.print_json(json.dumps(data))
        return
    cost = "unknown (no price for this model)" if est.cost_usd is None else f"about ${est.cost_usd:.4f}"
    console.print(f"Dry run: {est.requests} requests to {est.model} (prompt {est.prompt_version}); about "
                  f"{est.tokens_in:,} input and {est.tokens_out:,} output tokens; cost {cost}. Nothing was sent.",
                  markup=False)


def _print_summary(result: RunResult, opts: StageOptions, as_json: bool) -> None:
    summary = {"run_id": result.run_id, "status": result.status, "error": result.error, **result.summary}
    if as_json:
        console.print_json(json.dumps(summary, default=str))
        return
    run = result.summary["run"]
    table = Table(title=Text(f"{RUN_TITLES[opts.stage]} run {result.run_id} ({opts.model})"), show_header=False)
    rows = [("stored this run", run["stored"]), ("requests sent", run["requests"]),
            ("skipped (already stored)", run["already_stored"]),
            ("parse ok / repaired / failed", "{ok} / {repaired} / {failed}".format(
                **{k: run["parse"].get(k, 0) for k in ("ok", "repaired", "failed")})),
            ("requests given up", ", ".join(f"{k} {v}" for k, v in run["failures"].items()) or "0"),
            ("retries", ", ".join(f"{k} {v}" for k, v in run["retries"].items()) or "0"),
            ("tokens in / out", f"{run['tokens_in']:,} / {run['tokens_out']:,}"),
            ("estimated cost", f"${run['cost_usd_estimate']:.4f}" + (" (+ models without a price)"
                                                                     if run["cost_unknown"] else "")),
            ("all answers of this model + prompt", result.summary["answers"])]
    rows += _quality_rows(opts.stage, result.summary)
    for name, value in rows:
        table.add_row(name, Text(str(value)))
    console.print(table)
    given_up = sum(run["failures"].values())
    if given_up and result.status == "completed":
        console.print(f"{given_up} of {given_up + run['stored']} requests failed and were not stored (the rest "
                      f"were). Last error: {result.counters.last_error}", markup=False)
        console.print("Re-run the same command to send the failed ones again.", markup=False)
    if run["retries"].get("rate_limited", 0) > max(5, run["requests"] // 10):
        console.print("Many 429s: lower --rps (or [api] rps) to your plan's limit.", markup=False)


RUN_TITLES = {"thought": "Generate", "reflection": "Reflect", "judge": "Judge"}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _quality_rows(stage: str, summary: dict[str, Any]) -> list[tuple[str, Any]]:
    flags = summary.get("flags", {})
    if stage == "thought":
        m = summary["against_gold"]
        return [("thought accuracy vs gold", _pct(m["accuracy"])), ("precision / recall (label 1)",
                f"{_pct(m['precision'])} / {_pct(m['recall'])}"), ("mismatches (to reflect on)", m["mismatches"]),
                ("did not parse", summary["parse_failed"]),
                ("thought/label inconsistent", flags.get("label_inconsistent", 0))]
    if stage == "reflection":
        return [("reflections reaching gold", summary["reached_gold"]),
                ("not reaching gold (flagged)", summary["not_gold"]),
                ("did not parse", summary["parse_failed"]),
                ("thought/label inconsistent", flags.get("label_inconsistent", 0)),
                ("thoughts without a label (generate --retry-failed)", summary["thoughts_without_label"])]
    return [("mean score", summary["mean_score"]), ("scores", summary["scores"]),
            ("did not parse", summary["parse_failed"])]
