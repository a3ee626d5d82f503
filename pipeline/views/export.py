"""Exports as `nlistral export`, `nlistral exports` and the review app's export screen show them.

Every name from the store (dataset, split, model, path) and every reason a reviewer typed goes in as Text,
never as markup, its control characters shown.
"""
from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text

from exports import REASONS, ExportPlan, ExportRecord
from pipeline.control_chars import shown
from pipeline.views.tables import pct

MAX_IDS_SHOWN = 8  # left-out example ids listed per reason
MAX_CROSS_SPLIT_SHOWN = 10  # cross-split pairs listed one per line
_STATE_NOTES = {"missing": "missing", "changed": "changed since export: not the recorded content",
                "unchecked": "unchecked: exported before sizes were recorded; --verify hashes it"}


def unit(kind: str) -> str:
    """What one written line of an export of this kind is called."""
    return "pairs" if kind == "dpo" else "rows"


def plan_summary(plan: ExportPlan) -> Text:
    """A plan in one line: what it writes from what, by which rule and length measure, at which review event."""
    return Text(f"{plan.rows:,} {unit(plan.kind)} from {plan.examples:,} of {plan.considered:,} examples · rule "
                f"{plan.rule} · lengths by {plan.length_measure} (max {plan.max_tokens}) · review log at event "
                f"{plan.review_log_position}")


def plan_view(plan: ExportPlan) -> Group:
    """The counts of a plan (or a written export) as a table, left-out reasons in words, cross-split warnings."""
    table = Table(title=f"{plan.kind} export, rule {plan.rule}", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_column("detail")
    table.add_row("examples considered", str(plan.considered), "")
    table.add_row(f"{unit(plan.kind)} written", str(plan.rows), f"from {plan.examples} examples")
    balance = plan.label_balance()
    for label, n in plan.by_label.items():
        table.add_row(f"  label {label}", str(n), pct(balance.get(label, 0.0)))
    for title, counts in (("source", plan.by_source), ("model", plan.by_model), ("split", plan.by_split)):
        for name, n in counts.items():
            table.add_row(Text(f"  {title} {name}"), str(n), "")
    for reason, n in plan.left_out.items():
        ids = plan.left_out_ids.get(reason, [])
        listed = ", ".join(map(str, ids[:MAX_IDS_SHOWN])) + (" ..." if n > MAX_IDS_SHOWN else "")
        table.add_row(f"left out: {reason}", str(n), Text(f"{REASONS.get(reason, '')}; ids {listed}"))
    for outcome, reasons in plan.reasons.items():
        for reason, n in reasons.items():
            table.add_row(Text(f"reason given ({outcome}): {shown(reason)}"), str(n),
                          "reviewers' decisions giving this reason")
    parts: list[Table | Text] = [table,
                                 Text(f"Lengths: {plan.length_measure}, at most {plan.max_tokens} tokens.")]
    for item in plan.cross_split[:MAX_CROSS_SPLIT_SHOWN]:
        parts.append(Text(f"warning: example {item.example_id} ({item.scope}) is also in {', '.join(item.also_in)}",
                          style="yellow"))
    if len(plan.cross_split) > MAX_CROSS_SPLIT_SHOWN:
        parts.append(Text(f"warning: ... {len(plan.cross_split) - MAX_CROSS_SPLIT_SHOWN} more pairs present in two "
                          "splits."))
    return Group(*parts)


def export_entry(record: ExportRecord, state: str) -> Group:
    """One recorded export: its facts on one line, its path (never cut) and what is wrong with its file on the next."""
    superseded = f" · superseded by #{record.superseded_by}" if record.superseded_by is not None else ""
    head = Text.assemble(
        (f"#{record.id}", "bold"), f"  {record.kind} · rule {record.rule} · {record.format} · {record.rows:,} "
        f"{unit(record.kind)} · review log {record.review_log_position} · sha256 {record.sha256[:12]} · "
        f"{record.created_at[:16].replace('T', ' ')} UTC", (superseded, "yellow"))
    no_manifest = record.present and not record.manifest_present
    words = [_STATE_NOTES[state]] if state in _STATE_NOTES else []
    if no_manifest:
        words.append("manifest missing")
    line = Text(f"    {record.path}")
    if words:
        line.append(f" ({'; '.join(words)})", style="dim" if state == "unchecked" and not no_manifest else "red")
    return Group(head, line)


def exports_view(records: Sequence[ExportRecord], states: dict[int, str]) -> Group:
    """The recorded exports, newest first, one entry each (export_entry); states: record id -> a key of STATES."""
    if not records:
        return Group(Text("No exports yet. Write one with `nlistral export sft --out FILE`."))
    heading = Text(f"{len(records)} export{'' if len(records) == 1 else 's'}, newest first")
    return Group(heading, *(export_entry(r, states[r.id]) for r in records))
