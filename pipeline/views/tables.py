"""The pieces every view shares: how a rate is written, the confusion table."""
from __future__ import annotations

from typing import Any

from rich.table import Table


def pct(value: float | None) -> str:
    """A rate as a percentage with one decimal ("-" when there is none)."""
    return "-" if value is None else f"{100 * value:.1f}%"


def confusion_table(title: str, confusion: dict[str, dict[str, Any]]) -> Table:
    """Rows gold, columns predicted label 1, 0 and failed (as Counts.confusion() gives them)."""
    table = Table(title=title, title_justify="left")
    for col in ("", "pred 1", "pred 0", "failed"):
        table.add_column(col, justify="right")
    for gold, row in confusion.items():
        table.add_row(gold.replace("_", " "), str(row["pred_1"]), str(row["pred_0"]), str(row["failed"]))
    return table
