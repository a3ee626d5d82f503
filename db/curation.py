"""The curated label: which label, if any, a curated export trains a reviewed example on, written once as data.

A curated export (exports/rules.py) leaves out the statuses of LEFT_OUT and examples flagged for labeler
bias; every other example is taken from the first of its status's SOURCES whose label reaches the target
label (gold, or the suggested label when relabels are used), and is left out when none does. The export
rule reads these tables, and curated_label_sql() writes the same rule as SQL for the stats screen's label
balance, so the two cannot disagree.

Several reviewers (db/team.py): an example is exported under an adjudication where there is one (review_state
carries it), else under the reviewers' unanimous decision (review_state.conflict = 0: its status is that
decision), else under the export's POLICY:
- unanimous (the default): the contested example is left out as CONTESTED;
- majority: the decision most reviewers' standing decisions hold (a tie: CONTESTED), alone: a minority's
  bias flag does not count, a majority of bias flags leaves the example flagged with no status (pending),
  and a majority of edits trains on the latest of those edits (the newest word among those who agree);
- latest: review_state as it stands, the latest decision (what a single reviewer's store always uses).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

LEFT_OUT = ("rejected",)  # review statuses a curated export leaves out (the status is the reason)
# The sources a curated example may train on, by review status, tried in order.
SOURCES: dict[str, tuple[str, ...]] = {
    "edited": ("edit",),
    "accepted": ("thought", "reflection"),
    "pending": ("thought", "reflection"),
}
# Where each source's label is, over `examples e LEFT JOIN review_state r`.
LABEL_SQL = {"edit": "r.edited_label", "thought": "e.thought_label", "reflection": "e.reflection_label"}

POLICIES = ("unanimous", "majority", "latest")  # how a contested example is exported (module docstring)
DEFAULT_POLICY = "unanimous"
CONTESTED = "contested"  # the left-out reason of a contested example the policy does not settle
# The review status a majority's team decision (db.team.TEAM_DECISIONS) stands for; "flag" decides none.
TEAM_STATUS = {"accept": "accepted", "reject": "rejected", "edit": "edited", "flag": "pending"}

_OF_EXAMPLE = "FROM review_decisions d WHERE d.example_id = r.example_id"
# The decision most standing decisions hold, NULL on a tie (as majority() below).
_MAJORITY_SQL = (f"(SELECT CASE WHEN count(*) = 1 THEN max(decision) END FROM (SELECT d.decision, "
                 f"rank() OVER (ORDER BY count(*) DESC) AS place {_OF_EXAMPLE} GROUP BY d.decision) WHERE place = 1)")
# The label of the latest edit among the standing decisions (the majority's, when edit is the majority).
_LATEST_EDIT_LABEL_SQL = ("(SELECT json_extract(v.payload, '$.label') FROM review_decisions d JOIN review_events v "
                          "ON v.id = d.event_id WHERE d.example_id = r.example_id AND d.decision = 'edit' "
                          "ORDER BY d.event_id DESC LIMIT 1)")


def majority(decisions: Iterable[str]) -> str | None:
    """The decision most of these standing decisions hold; None when two or more tie for most."""
    top = Counter(decisions).most_common(2)
    if not top or (len(top) == 2 and top[0][1] == top[1][1]):
        return None
    return top[0][0]


def _label_case(target: str, status: str, biased: str, edited_label: str) -> str:
    """The CASE of the curated label for a review status, bias test and edited label given as SQL."""
    left_out = ", ".join(f"'{s}'" for s in LEFT_OUT)
    labels = {**LABEL_SQL, "edit": edited_label}
    cases = [f"WHEN {status} IN ({left_out}) OR {biased} THEN NULL"]
    for name, sources in SOURCES.items():
        reaching = " ".join(f"WHEN {labels[s]} = {target} THEN {target}" for s in sources)
        cases.append(f"WHEN {status} = '{name}' THEN CASE {reaching} END")
    return f"CASE {' '.join(cases)} END"


def curated_label_sql(target: str = "e.gold_label", policy: str = DEFAULT_POLICY) -> str:
    """SQL for the label a curated export (bias flags left out, no relabels, this policy) trains an example on,
    NULL when it leaves the example out; over `examples e LEFT JOIN review_state r`, the target label `target`."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
    standing = _label_case(target, "coalesce(r.status, 'pending')", "r.bias_category IS NOT NULL", LABEL_SQL["edit"])
    if policy == "latest":
        return standing
    contested = "NULL"
    if policy == "majority":
        status = "CASE " + " ".join(f"WHEN m.decision = '{d}' THEN '{s}'" for d, s in TEAM_STATUS.items()) + " END"
        by_majority = _label_case(target, status, "m.decision = 'flag'", _LATEST_EDIT_LABEL_SQL)
        contested = f"(SELECT {by_majority} FROM (SELECT {_MAJORITY_SQL} AS decision) m)"
    return f"CASE WHEN coalesce(r.conflict, 0) = 1 THEN {contested} ELSE {standing} END"
