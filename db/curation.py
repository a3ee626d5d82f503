"""The curated label: which label, if any, a curated export trains a reviewed example on, written once as data.

A curated export (exports/rules.py) leaves out the statuses of LEFT_OUT and examples flagged for labeler
bias; every other example is taken from the first of its status's SOURCES whose label reaches the target
label (gold, or the suggested label when relabels are used), and is left out when none does. The export
rule reads these tables, and curated_label_sql() writes the same rule as SQL for the stats screen's label
balance, so the two cannot disagree.
"""
from __future__ import annotations

LEFT_OUT = ("rejected",)  # review statuses a curated export leaves out (the status is the reason)
# The sources a curated example may train on, by review status, tried in order.
SOURCES: dict[str, tuple[str, ...]] = {
    "edited": ("edit",),
    "accepted": ("thought", "reflection"),
    "pending": ("thought", "reflection"),
}
# Where each source's label is, over `examples e LEFT JOIN review_state r`.
LABEL_SQL = {"edit": "r.edited_label", "thought": "e.thought_label", "reflection": "e.reflection_label"}


def curated_label_sql(target: str = "e.gold_label") -> str:
    """SQL for the label a curated export (bias flags left out, no relabels) trains an example on, NULL when
    it leaves the example out; over `examples e LEFT JOIN review_state r`, the target label being `target`."""
    left_out = ", ".join(f"'{s}'" for s in LEFT_OUT)
    status = "coalesce(r.status, 'pending')"
    cases = [f"WHEN {status} IN ({left_out}) OR r.bias_category IS NOT NULL THEN NULL"]
    for name, sources in SOURCES.items():
        reaching = " ".join(f"WHEN {LABEL_SQL[s]} = {target} THEN {target}" for s in sources)
        cases.append(f"WHEN {status} = '{name}' THEN CASE {reaching} END")
    return f"CASE {' '.join(cases)} END"
