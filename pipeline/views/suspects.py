"""Rich table of the top gold suspects (`nlistral triage`): the example, gold, score and reasons."""
from __future__ import annotations

from rich.table import Table
from rich.text import Text

from db.suspicion import Suspect
from pipeline.control_chars import shown


def suspects_table(top: list[Suspect], pairs: dict[int, tuple[str, str]], weights: dict[str, float]) -> Table:
    """The suspects, most suspect first; pairs: example id -> (dataset/split:source id, gold)."""
    on = ", ".join(f"{name} {weight:g}" for name, weight in weights.items() if weight > 0) or "none"
    table = Table(title=f"Gold suspects (weights: {on})", title_justify="left")
    table.add_column("example", no_wrap=True)
    table.add_column("gold", justify="center")
    table.add_column("score", justify="right")
    table.add_column("reasons (points)", overflow="fold", ratio=1)
    for s in top:
        where, gold = pairs.get(s.example_id, ("?", "?"))
        reasons = "; ".join(f"{r.detail} ({r.points:g})" for r in s.reasons)
        table.add_row(Text(f"{s.example_id} {shown(where)}"), gold, f"{s.score:g}", Text(reasons))
    if not top:
        table.add_row("-", "-", "-", "no signal fired on these examples")
    return table
