"""Rich tables for `nlistral stats` (plain text: no value is ever read as markup, control characters shown)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from pipeline.control_chars import shown
from pipeline.views.tables import confusion_table, pct

if TYPE_CHECKING:
    from pipeline.stats import StoreStats


def render_stats(s: StoreStats) -> Group:
    """The stats dict of collect_stats as a group of tables."""
    parts: list[Any] = []
    data = Table(title="Examples", title_justify="left")
    for col in ("dataset", "split", "gold 1", "gold 0", "unlabelled", "total"):
        data.add_column(col, justify="left" if col in ("dataset", "split") else "right")
    grouped: dict[tuple[str, str], dict[Any, int]] = {}
    for row in s["by_dataset"]:
        grouped.setdefault((row["dataset"], row["split"]), {})[row["gold_label"]] = row["count"]
    for (dataset, split), c in sorted(grouped.items()):
        data.add_row(Text(shown(dataset)), Text(shown(split)), str(c.get(1, 0)), str(c.get(0, 0)),
                     str(c.get(None, 0)), str(sum(c.values())))
    parts.append(data)

    thought = Table(title="Thought model against gold (current thought per example)", title_justify="left",
                    caption="wrong: the thought's label differs from gold; failed: it did not parse",
                    caption_justify="left")
    thought.add_column("model", overflow="fold")
    for col in ("n", "accuracy", "precision", "recall", "F1", "wrong", "failed"):  # short: 80 columns hold them
        thought.add_column(col, justify="right", no_wrap=True)
    for model, m in s["thought_by_model"].items():
        thought.add_row(Text(shown(str(model))), str(m["n"]), pct(m["accuracy"]), pct(m["precision"]),
                        pct(m["recall"]), pct(m["f1"]), str(m["mismatches"]), str(m["failed"]))
    if len(s["thought_by_model"]) > 1:
        thought.add_row("all", "", pct(s["thought_accuracy"]), pct(s["thought_precision"]),
                        pct(s["thought_recall"]), pct(s["thought_f1"]), str(s["mismatches"]),
                        str(s["thought_parse_failures"]))
    parts.append(thought)

    confusion = confusion_table("Confusion (rows gold, columns thought label)", s["thought_confusion"])
    parts.append(confusion)

    parts.append(Text(
        f"Generations: {s['thoughts']} thoughts, {s['reflections']} reflections, {s['predictions']} predictions, "
        f"{s['judgements']} judge scores.\n"
        f"Reflections cover {s['mismatches_with_reflection']} of {s['mismatches']} mismatches "
        f"({pct(s['reflection_coverage'])}); {s['reflections_label_not_gold']} "
        f"{'reflection reaches' if s['reflections_label_not_gold'] == 1 else 'reflections reach'} a label "
        f"other than gold; {s['reflection_parse_failures']} failed to parse."
    ))
    if s["flags"]:
        parts.append(Text("Flagged (examples whose current thought or reflection carries the flag): " + ", ".join(
            f"{shown(name).replace('_', ' ')} {n}" for name, n in s["flags"].items()) + "."))

    review = Table(title="Review", title_justify="left")
    for col in ("pending", "accepted", "edited", "rejected", "bias flagged", "relabel suggestions"):
        review.add_column(col, justify="right")
    status = s["review"]["status"]
    review.add_row(*(str(status.get(k, 0)) for k in ("pending", "accepted", "edited", "rejected")),
                   str(s["review"]["bias_flagged"]), str(s["review"]["relabel_suggestions"]))
    parts.append(review)

    lengths = Table(title="Thought length (words) and accuracy", title_justify="left")
    for col in ("words", "thoughts", "accuracy"):
        lengths.add_column(col, justify="right")
    for b in s["thought_length_words"]:
        lengths.add_row(b["bucket"], str(b["thoughts"]), pct(b["accuracy"]))
    parts.append(lengths)
    parts.extend(team_tables(s))
    if s["attribution"]:
        shares = Table(title="Label attribution by run (nlistral attribute: mean share of |attribution|)",
                       title_justify="left")
        for col in ("run", "model", "answers", "thought", "premise+hyp.", "worst delta", "unconverged"):
            shares.add_column(col, justify="left" if col == "model" else "right", overflow="fold")
        for r in s["attribution"]:
            shares.add_row(str(r["run_id"]), Text(shown(r["model"])), str(r["examples"]), pct(r["thought_share"]),
                           pct(r["premise_hypothesis_share"]), pct(r["worst_relative_delta"]),
                           str(r["unconverged"]))
        parts.append(shares)
    return Group(*parts)


def team_tables(s: StoreStats) -> list[Table]:
    """The reviewers' standing decisions and the reasons given (nothing for a store nobody has decided on)."""
    tables = []
    if s["reviewers"]:
        reviewers = Table(title="Decisions by reviewer (standing: one per reviewer and example)", title_justify="left")
        for col in ("reviewer", "decisions", "accept", "reject", "edit", "flag"):
            reviewers.add_column(col, justify="left" if col == "reviewer" else "right")
        for r in s["reviewers"]:
            reviewers.add_row(Text(shown(r["reviewer"])), *(str(r[k]) for k in (
                "decisions", "accept", "reject", "edit", "flag")))
        tables.append(reviewers)
    if s["reasons"]:
        reasons = Table(title="Reasons given (standing decisions)", title_justify="left")
        reasons.add_column("reason", overflow="fold")
        reasons.add_column("decisions", justify="right")
        for reason, n in s["reasons"].items():
            reasons.add_row(Text(shown(reason)), str(n))
        tables.append(reasons)
    return tables
