"""Rich tables for `nlistral evaluate` and `nlistral compare` (plain text: nothing is read as markup)."""
from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from pipeline.evaluate.compare import Comparison
from pipeline.evaluate.summary import RunSummary
from pipeline.views.tables import confusion_table, pct

_RATES = (("accuracy", "accuracy"), ("precision (label 1)", "precision"), ("recall (label 1)", "recall"),
          ("F1 (label 1)", "f1"), ("macro F1", "macro_f1"), ("parse failures", "parse_failure_rate"))


def render_summary(s: RunSummary) -> Group:
    """The summary of one evaluate run as tables."""
    m = s["metrics"]
    head = Text(f"Evaluate run {s['run_id']}: ", style="bold")
    head.append(Text(str(s["model"])))
    head.append(f"  ({s['predictions']} predictions)")
    rates = Table(title="Metrics (an unparseable answer counts as wrong)", title_justify="left")
    rates.add_column("metric")
    rates.add_column("value", justify="right")
    for label, key in _RATES:
        rates.add_row(label, pct(m[key]))
    confusion = confusion_table("Confusion (rows gold, columns predicted)", m["confusion"])
    lengths = Table(title="Accuracy by the length of the model's thought (words)", title_justify="left")
    for col in ("words", "examples", "accuracy"):
        lengths.add_column(col, justify="right")
    for b in s["by_thought_length"]:
        lengths.add_row(b["bucket"], str(b["examples"]), pct(b["accuracy"]))
    parse, speed = s["parse_status"], s["speed"]
    stops = ", ".join(f"{k} {v}" for k, v in sorted(s["stop_reasons"].items()))
    tail = Text(
        f"Parsing: {parse['ok']} ok, {parse['repaired']} repaired, {parse['failed']} failed. Stops: {stops}.\n"
        f"Generated {speed['generated_tokens']} tokens in {speed['generation_seconds']:.1f} s "
        f"({speed['generated_tokens_per_s'] or '-'} tokens/s, {speed['examples_per_s'] or '-'} examples/s)."
    )
    parts: list[Any] = [head, rates, confusion, lengths, tail]
    parts.extend(Text(f"WARNING: {w}", style="bold red") for w in s.get("warnings", []))
    return Group(*parts)


def render_comparison(c: Comparison, limit: int) -> Group:
    """Two runs' metrics side by side and the first `limit` examples where their answers differ."""
    table = Table(title=f"Run {c.run_a} vs run {c.run_b}", title_justify="left")
    table.add_column("metric")
    table.add_column(f"run {c.run_a}", justify="right")
    table.add_column(f"run {c.run_b}", justify="right")
    table.add_column("b - a", justify="right")
    table.add_row("model", Text(c.model_a, overflow="fold"), Text(c.model_b, overflow="fold"), "")
    table.add_row("prompt", Text(c.prompt_a, overflow="fold"), Text(c.prompt_b, overflow="fold"), "")
    table.add_row("examples", str(c.n_a), str(c.n_b), "")
    for name, a, b in c.metrics:
        delta = "-" if a is None or b is None else f"{100 * (b - a):+.1f}"
        table.add_row(name, pct(a), pct(b), delta)
    p = c.mcnemar_p
    text = Text(
        f"On the {c.common} examples both runs answered: {len(c.differences)} answers differ; only run {c.run_a} "
        f"right on {c.only_a_right}, only run {c.run_b} right on {c.only_b_right} "
        f"(exact McNemar p = {'-' if p is None else f'{p:.3g}'})."
    )
    diffs = Table(title=f"Examples where the answers differ (first {min(limit, len(c.differences))})",
                  title_justify="left")
    for col in ("example", "gold", f"run {c.run_a}", f"run {c.run_b}", "hypothesis"):
        diffs.add_column(col, justify="left" if col == "hypothesis" else "right", overflow="fold")
    for d in c.differences[:limit]:
        diffs.add_row(str(d.example_id), _label(d.gold), _label(d.label_a), _label(d.label_b), Text(d.hypothesis))
    return Group(table, text, diffs)


def _label(value: int | None) -> str:
    return "failed" if value is None else str(value)
