"""`nlistral diff` as tables: counts, label balance, selection reasons, and a few rows of each change."""
from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from pipeline.views.tables import pct

CLIP = 100


def render_diff(d: dict[str, Any]) -> Group:
    """The dict of DatasetDiff.as_dict, for a terminal (dataset and model text as plain Text, never markup)."""
    a, b = d["a"], d["b"]
    head = Text(f"A: {a['spec']} ({a['kind']}, {a['path']})\nB: {b['spec']} ({b['kind']}, {b['path']})")
    counts = Table(title="Rows", title_justify="left")
    for col in ("added", "removed", "changed", "rows in A", "rows in B"):
        counts.add_column(col, justify="right")
    counts.add_row(*(str(d[k]["count"]) for k in ("added", "removed", "changed")),
                   str(d["balance"]["a"]["rows"]), str(d["balance"]["b"]["rows"]))
    balance = Table(title="Label balance", title_justify="left")
    for col in ("", "label 1", "label 0", "share of 1"):
        balance.add_column(col, justify="right")
    for side in ("a", "b"):
        row = d["balance"][side]
        balance.add_row(side.upper(), str(row["by_label"].get("1", 0)), str(row["by_label"].get("0", 0)),
                        pct(row["share_1"]))
    shift = d["balance"]["share_1_shift"]
    parts: list[Any] = [head, counts, balance]
    if shift is not None:
        parts.append(Text(f"share of label 1 moves by {shift * 100:+.1f} points"))
    parts.append(_reasons(d["reasons"]))
    for key, title in (("added", "Added (in B only)"), ("removed", "Removed (in A only)")):
        if d[key]["examples"]:
            parts.append(_rows(title, [(e["id"], e["label"], e["text"]) for e in d[key]["examples"]]))
    if d["changed"]["examples"]:
        table = Table(title="Changed (same example, another target)", title_justify="left")
        for col in ("id", "A", "B"):
            table.add_column(col, overflow="fold")
        for e in d["changed"]["examples"]:
            table.add_row(Text(str(e["id"])), Text(f"{e['label_a']}: {_clip(e['text_a'])}"),
                          Text(f"{e['label_b']}: {_clip(e['text_b'])}"))
        parts.append(table)
    return Group(*parts)


def _reasons(reasons: dict[str, Any]) -> Table | Text:
    if reasons["a"] is None and reasons["b"] is None:
        return Text("Selection reasons: neither export has its manifest beside it.")
    table = Table(title="Selection (from the manifests)", title_justify="left")
    for col in ("", "A", "B"):
        table.add_column(col, justify="right" if col else "left")
    keys = sorted({(group, k) for side in ("a", "b") if reasons[side] for group in ("by_source", "left_out")
                   for k in reasons[side][group]})
    for group, k in keys:
        values = [str((reasons[s] or {}).get(group, {}).get(k, 0)) if reasons[s] else "-" for s in ("a", "b")]
        table.add_row(Text(f"{'rows from' if group == 'by_source' else 'left out:'} {k}"), *values)
    return table


def _rows(title: str, rows: list[tuple[Any, Any, str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("id", "label", "target"):
        table.add_column(col, overflow="fold")
    for key, label, text in rows:
        table.add_row(Text(str(key)), Text(str(label)), Text(_clip(text)))
    return table


def _clip(text: str) -> str:
    return text if len(text) <= CLIP else text[: CLIP - 1] + "…"
