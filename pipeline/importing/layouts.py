"""Input layouts: which column (or JSON field) holds the premise, hypothesis, label and id, and how
the labels of a known public layout read.

Recognised from the CSV header or the first JSON record: our own `premise, hypothesis, label[, id]`;
SNLI / MultiNLI (`sentence1, sentence2, gold_label`, id `pairID`; `-` means the annotators reached no
consensus); ANLI (`uid, context` (or `premise`)`, hypothesis, label` in e/n/c). Any other layout is
named with `--columns premise=COL,hypothesis=COL,label=COL[,id=COL]`.
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace

from pipeline.importing.errors import BadOption
from pipeline.labels import LabelMap

ROLES = ("premise", "hypothesis", "label", "id")
# Rows whose gold label is one of these have none: skipped and counted, never guessed.
NO_CONSENSUS = frozenset({"-", ""})
_NLI3: LabelMap = {"entailment": 1, "neutral": 0, "contradiction": 0}


@dataclass(frozen=True)
class Layout:
    """Where a record keeps each part of a pair, and (for a known public layout) its label names."""

    name: str
    premise: str = "premise"
    hypothesis: str = "hypothesis"
    label: str = "label"
    id: str | None = "id"
    # The layout's own label names (mapped without --label-map; numbers are then refused as ambiguous).
    labels: LabelMap | None = None
    no_consensus: frozenset[str] = field(default_factory=frozenset)

    def describe(self) -> str:
        """The layout's columns (role=COLUMN where they differ) and label names, for the import summary."""
        cols = [role if column == role else f"{role}={column}" for role, column in
                (("premise", self.premise), ("hypothesis", self.hypothesis), ("label", self.label), ("id", self.id))
                if column]
        if self.id and self.name != "--columns":
            cols[-1] += " if present (else the row number)"
        text = ", ".join(cols)
        if self.labels is not None:
            text += f"; labels {', '.join(f'{k}={v}' for k, v in self.labels.items())}"
        return text


PAIRS = Layout("plain")
SEED = Layout("seed", label="true_label")
SNLI = Layout("SNLI/MultiNLI", "sentence1", "sentence2", "gold_label", "pairID", _NLI3, NO_CONSENSUS)
ANLI = Layout("ANLI", "context", "hypothesis", "label", "uid", {"e": 1, "n": 0, "c": 0, **_NLI3}, NO_CONSENSUS)


def recognise(fields: Collection[str]) -> Layout:
    """The layout of a file whose header (or first record) has these fields; PAIRS when none fits."""
    have = set(fields)
    if {"sentence1", "sentence2", "gold_label"} <= have:
        return SNLI
    if {"uid", "hypothesis", "label"} <= have and have & {"context", "premise"}:
        return ANLI if "context" in have else replace(ANLI, premise="premise")
    return PAIRS


def parse_columns(spec: str, unlabelled: bool) -> Layout:
    """A layout from `premise=COL,hypothesis=COL,label=COL[,id=COL]`; BadOption names what is wrong."""
    chosen: dict[str, str] = {}
    for part in spec.split(","):
        role, sep, column = (s.strip() for s in part.partition("="))
        if not sep or not column:
            raise BadOption("--columns", f"--columns entry {part.strip()!r} is not ROLE=COLUMN; write e.g. "
                            "--columns premise=sentence1,hypothesis=sentence2,label=gold_label.")
        if role not in ROLES:
            raise BadOption("--columns", f"--columns names an unknown role {role!r}; the roles are "
                            f"{', '.join(ROLES)} (id is optional).")
        if role in chosen:
            raise BadOption("--columns", f"--columns gives {role} twice; give each role once.")
        chosen[role] = column
    needed = ["premise", "hypothesis"] + ([] if unlabelled else ["label"])
    missing = [r for r in needed if r not in chosen]
    if missing:
        raise BadOption("--columns", f"--columns lacks {', '.join(missing)}; name a column for each of "
                        f"{', '.join(needed)}" + ("" if unlabelled else " (or pass --unlabelled)") + ".")
    return Layout("--columns", chosen["premise"], chosen["hypothesis"], chosen.get("label", "label"),
                  chosen.get("id"))


def missing_columns(layout: Layout, fields: Collection[str], unlabelled: bool) -> list[str]:
    """The columns the layout reads that fields lacks (the id column is optional unless --columns named it)."""
    wanted = [layout.premise, layout.hypothesis] + ([] if unlabelled else [layout.label])
    if layout.name == "--columns" and layout.id:
        wanted.append(layout.id)
    return [c for c in wanted if c not in fields]
