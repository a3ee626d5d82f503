"""What `nlistral generate`, `reflect` and `judge` show: the progress bar, the dry-run estimate, the run summary."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from pipeline.views.tables import pct

if TYPE_CHECKING:
    from pipeline.generate import Counters, Estimate, RunResult, StageOptions

RUN_TITLES = {"thought": "Generate", "reflection": "Reflect", "blind_reflection": "Blind reflect", "judge": "Judge"}


class RunProgress:
    """A progress bar for a run, with rate, ETA, failures and estimated cost; note() prints a line above it."""

    def __init__(self, opts: StageOptions, console: Console) -> None:
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
            console=console, transient=False)
        self.task_id: Any = None

    def __enter__(self) -> Self:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def note(self, message: str) -> None:
        """A line above the bar (literally, never as markup)."""
        self.progress.console.print(message, markup=False, highlight=False)

    def start(self, counters: Counters) -> None:
        """Show the bar for a run of counters.total requests."""
        self.task_id = self.progress.add_task(self._description(counters), total=counters.total,
                                              rate="0.0", failed=0, retries=0, cost="0.0000")

    def _description(self, counters: Counters) -> str:
        waiting = "  waiting: another process is writing" if counters.waiting_for_store else ""
        return f"{self.opts.stage.replace('_', ' ')}s ({self.opts.model}){waiting}"

    def update(self, counters: Counters) -> None:
        """Move the bar to what the run has done so far."""
        stats = counters.as_dict()
        self.progress.update(self.task_id, description=self._description(counters), completed=counters.finished,
                             rate=f"{stats['requests_per_s'] or 0:.1f}",
                             failed=counters.failed, retries=sum(counters.retries.values()),
                             cost=f"{counters.cost_usd:.4f}")


def render_estimate(est: Estimate) -> Text:
    """The dry-run estimate as a sentence."""
    cost = "unknown (no price for this model)" if est.cost_usd is None else f"about ${est.cost_usd:.4f}"
    return Text(f"Dry run: {est.requests} requests to {est.model} (prompt {est.prompt_version}); about "
                f"{est.tokens_in:,} input and {est.tokens_out:,} output tokens; cost {cost}. Nothing was sent.")


def render_summary(result: RunResult, opts: StageOptions) -> Group:
    """The run's table, then what to do about requests that failed or were refused over rate limits."""
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
    parts: list[Any] = [table]
    given_up = sum(run["failures"].values())
    if given_up and result.status == "completed":
        parts.append(Text(f"{given_up} of {given_up + run['stored']} requests failed and were not stored (the rest "
                          f"were). Last error: {result.counters.last_error}"))
        parts.append(Text("Re-run the same command to send the failed ones again."))
    if run["retries"].get("rate_limited", 0) > max(5, run["requests"] // 10):
        parts.append(Text("Many 429s: lower --rps (or [api] rps) to your plan's limit."))
    return Group(*parts)


def _quality_rows(stage: str, summary: dict[str, Any]) -> list[tuple[str, Any]]:
    flags = summary.get("flags", {})
    if stage == "thought":
        m = summary["against_gold"]
        return [("thought accuracy vs gold", pct(m["accuracy"])), ("precision / recall (label 1)",
                f"{pct(m['precision'])} / {pct(m['recall'])}"), ("mismatches (to reflect on)", m["mismatches"]),
                ("did not parse", summary["parse_failed"]),
                ("thought/label inconsistent", flags.get("label_inconsistent", 0))]
    if stage == "reflection":
        return [("reflections reaching gold", summary["reached_gold"]),
                ("not reaching gold (flagged)", summary["not_gold"]),
                ("did not parse", summary["parse_failed"]),
                ("thought/label inconsistent", flags.get("label_inconsistent", 0)),
                ("thoughts without a label (generate --retry-failed)", summary["thoughts_without_label"])]
    if stage == "blind_reflection":
        found = summary["blind_outcomes"]
        return [("blind reflections reaching gold", summary["reached_gold"]),
                ("not reaching gold", summary["not_gold"]),
                ("did not parse", summary["parse_failed"]),
                ("robust: both reflections reach gold", found["robust"]),
                ("rationalised: only the one shown gold does", found["rationalised"]),
                ("gold doubted: neither reaches it", found["doubts_gold"])]
    return [("mean score", summary["mean_score"]), ("scores", summary["scores"]),
            ("did not parse", summary["parse_failed"])]
