"""Rich tables for `nlistral triage`: the named outcome cells, then the full cell grid."""
from __future__ import annotations

from rich.console import Group
from rich.table import Table

from db.outcomes import AXES, CELLS, Outcomes

BLIND_VALUES = ("robust", "rationalised", "doubts_gold")
BLIND_CAPTION = ("reflection, where `reflect --blind` ran: robust = the reflection shown gold and the blind one both "
                 "reach gold; rationalised = only the one shown gold does; doubts_gold = neither does")


def render_triage(o: Outcomes) -> Group:
    """The named cells with their counts and meanings, then every full cell that holds examples."""
    named = Table(title="Outcome cells", title_justify="left")
    named.add_column("cell", no_wrap=True)
    named.add_column("examples", justify="right")
    named.add_column("meaning", overflow="fold")
    for name, cell in CELLS.items():
        named.add_row(name, str(o.cells[name]), cell.meaning)
    blind = any(row.reflection in BLIND_VALUES for row in o.grid)
    grid = Table(title="Every cell (thought × reflection × latest prediction)", title_justify="left",
                 caption=BLIND_CAPTION if blind else None, caption_justify="left")
    for axis in AXES:
        grid.add_column(axis)
    grid.add_column("examples", justify="right")
    for row in o.grid:
        grid.add_row(row.thought, row.reflection, row.prediction, str(row.count))
    return Group(named, grid)
