"""What the review app's stats screen shows beyond `nlistral stats`: the label balance and the review pace."""
from __future__ import annotations

from rich.table import Table
from rich.text import Text

from db.review_stats import ReviewPace


def balance_table(balance: dict[str, dict[str, int]]) -> Table:
    """Accepted and edited examples by gold label and by the label the curated example carries."""
    table = Table(title="Label balance of accepted and edited examples", title_justify="left")
    for col in ("", "label 1", "label 0", "unparsed"):
        table.add_column(col, justify="right")
    for key, title in (("gold", "gold"), ("curated", "curated label")):
        row = balance[key]
        table.add_row(title, *(str(row.get(k, 0)) for k in ("1", "0", "none")))
    return table


def pace_table(pace: ReviewPace) -> Table:
    """Decisions and median seconds per decision, by reviewer."""
    median = "-" if pace.median_seconds is None else f"{pace.median_seconds:.1f} s"
    table = Table(title=f"Review pace (median {median} per decision)", title_justify="left")
    for col in ("reviewer", "decisions", "median s"):
        table.add_column(col, justify="left" if col == "reviewer" else "right")
    for reviewer, n, med in pace.by_reviewer:
        table.add_row(Text(reviewer), str(n), "-" if med is None else f"{med:.1f}")
    return table
