"""Turning records into examples and model outputs (pure functions: they also run in the parser process)."""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from db.examples import ExampleRow, NewExample, example_row
from pipeline.answer_fields import label_value
from pipeline.answer_text import concluded_label
from pipeline.importing.errors import BadRow, NoGold, RowProblem
from pipeline.importing.layouts import PAIRS, Layout
from pipeline.importing.readers import PLAIN_LABELS, Record, json_kind
from pipeline.labels import LabelError, LabelMap, as_written, gold_label, numbered
from pipeline.parsing import parse_thought

BATCH = 20_000
FIRST_BATCH = 2_000  # small, so the writer starts while the rest is parsed


@dataclass(frozen=True)
class Target:
    """Where and how records are imported: the dataset and split, the layout, how labels read."""

    dataset: str
    split: str
    mapping: LabelMap
    unlabelled: bool = False
    model: str | None = None
    layout: Layout = PAIRS
    # Only the layout's own label names are labels (a recognised public layout, no --label-map):
    # a number there is ambiguous (Hugging Face's copies number entailment 0).
    names_only: bool = False

    @property
    def label_fields(self) -> tuple[str, str]:
        """The fields whose numbers are read as written (readers.read_json): the gold label, a model's label."""
        return self.layout.label, "predicted_label"

    @cached_property
    def exact_labels(self) -> dict[str | int, int]:
        """Label texts (and JSON integers) that map as they are, gold_label's answer for them computed once:
        the fast path of CSV rows and of gold(); any other value goes through gold_label."""
        exact: dict[str | int, int] = {text: label for text, label in self.mapping.items() if label is not None}
        if not self.names_only and not numbered(self.mapping):
            exact.update(PLAIN_LABELS)  # as in gold_label: 0 and 1 are themselves unless the map numbers them
        exact.update({int(text): label for text, label in list(exact.items())
                      if isinstance(text, str) and text.isdigit() and text == str(int(text))})
        return exact

    def gold(self, value: object) -> int:
        """The 0/1 gold label of a value; RowProblem, or NoGold for a no-consensus label (or one the map says
        has none)."""
        if type(value) is int or type(value) is str:  # exactly: True == 1 and 1.0 == 1 as dict keys
            label = self.exact_labels.get(value)
            if label is not None:
                return label
        layout = self.layout
        if isinstance(value, str) and value.strip() in layout.no_consensus:
            raise NoGold
        if self.names_only:
            name = value.strip().lower() if isinstance(value, str) else None
            if name not in self.mapping:
                known = ", ".join(self.mapping)
                raise RowProblem(f"{layout.label} {as_written(value)} is not one of the {layout.name} labels ({known})",
                                 f"give one of {known}; numbered labels are ambiguous (Hugging Face's copies "
                                 "number entailment 0): write them as names, or pass --label-map nli-numbered "
                                 "(0 = entailment, 1 = neutral, 2 = contradiction) or --label-map 0=1,1=0,2=0")
            named = self.mapping[name]
            if named is None:
                raise NoGold
            return named
        try:
            gold = gold_label(value, self.mapping)
        except LabelError as exc:
            reason = exc.reason if layout.label == "label" else exc.reason.replace("label", layout.label, 1)
            raise RowProblem(reason, exc.fix, three_class=exc.three_class) from None
        if gold is None:
            raise NoGold
        return gold


def pair(record: Record, target: Target) -> NewExample:
    """Validate the pair fields of a record; raises RowProblem (or NoGold)."""
    data, layout, unlabelled = record.data, target.layout, target.unlabelled
    missing = [k for k in (layout.premise, layout.hypothesis) if k not in data] + (
        [] if unlabelled or layout.label in data else [layout.label])
    if missing:
        raise RowProblem(f"missing field(s) {', '.join(missing)}",
                         f"every row needs {layout.premise}, {layout.hypothesis} and {layout.label}" + (
                             "" if unlabelled else " (or pass --unlabelled for data without gold labels)"))
    for key in (layout.premise, layout.hypothesis):
        if not isinstance(data[key], str):
            raise RowProblem(f"{key} is {json_kind(data[key])}, not text", f"give {key} as a string")
        if not data[key].strip():
            raise RowProblem(f"empty {key}", f"fill in the {key} or drop the row")
    gold = None if unlabelled else target.gold(data[layout.label])
    source = data.get(layout.id) if layout.id else None
    if source is None or (isinstance(source, str) and not source.strip()):
        source = record.index
    if isinstance(source, (dict, list, bool)) or (isinstance(source, float) and not math.isfinite(source)):
        raise RowProblem(f"{layout.id} {as_written(source)} is not a number or text that can be stored",
                         "give ids as strings, or as numbers of at most a few hundred digits")
    return NewExample(record.line, target.dataset, target.split, str(source), data[layout.premise],
                      data[layout.hypothesis], gold)


def example_batches(records: Iterator[NewExample | Record | BadRow], target: Target, bad: list[BadRow],
                    skipped: list[int], thoughts: list[tuple[NewExample, dict[str, Any]]] | None = None,
                    ) -> Iterator[list[ExampleRow]]:
    """Validated example rows in batches; rejected rows go to bad, the lines of rows without a
    consensus label to skipped, and (for thought files) the thought of each good record to thoughts."""
    batch: list[ExampleRow] = []
    size = FIRST_BATCH
    for rec in records:
        if isinstance(rec, NewExample):
            batch.append(example_row(rec))
        elif isinstance(rec, Record):
            try:
                good = pair(rec, target)
                if thoughts is not None:
                    thoughts.append((good, thought_fields(rec, target.model)))
            except RowProblem as exc:
                bad.append(BadRow(rec.line, exc.reason, exc.fix, rec.raw, exc.three_class))
                continue
            except NoGold:
                skipped.append(rec.line)
                continue
            batch.append(example_row(good))
        else:
            bad.append(rec)
            continue
        if len(batch) == size:
            yield batch
            batch, size = [], BATCH
    if batch:
        yield batch


def thought_fields(rec: Record, model: str | None) -> dict[str, Any]:
    """A stored thought from a stage-1 record; only a raw reply goes through the parser. As the parser
    stores them, a thought without its text or a 0/1 label is "failed" with no label (the reason in params)."""
    data = rec.data
    thought, raw = data.get("thought_process"), data.get("raw_response")
    label, problems = answer_label(data, "thought_process", thought)
    ok = label is not None
    if not ok and isinstance(raw, str):
        parsed = parse_thought(raw)
        thought, label, problems = parsed.thought, parsed.label, list(parsed.problems)
        ok = parsed.status != "failed"
    return {
        "kind": "thought",
        "model": model or str(data.get("model") or "unknown"),
        "backend": "import",
        "params": {"source_line": rec.line, **({"parse_problems": problems} if problems else {})},
        "thought_process": thought if isinstance(thought, str) else None,
        "predicted_label": label,
        "raw_response": raw if isinstance(raw, str) else (None if ok else rec.raw),
        "parse_status": ("repaired" if problems else "ok") if ok else "failed",
        "flags": inconsistent(thought, label),
    }


def answer_label(data: dict[str, Any], text_field: str, text: object) -> tuple[int | None, list[str]]:
    """The predicted_label of an imported thought or reflection whose text is text_field, by the parser's
    rules (label_value), and notes: None when the label is not 0/1 as written or the text is missing."""
    label, note = label_value(data.get("predicted_label"))
    problems = [note] if note else []
    if "predicted_label" not in data:
        problems = ["missing predicted_label"]
    if not (isinstance(text, str) and text.strip()):
        problems.append(f"missing {text_field}")
        if label is not None:
            problems.append(f"a label without {text_field} cannot be used (an export leaves it out as "
                            "parse_failed), so it is not stored as an answer")
            label = None
    return label, problems


def inconsistent(text: object, label: int | None) -> list[str]:
    """The label_inconsistent flag when the reasoning's own conclusion is the other label."""
    said = concluded_label(text) if isinstance(text, str) else None
    return ["label_inconsistent"] if label is not None and said is not None and said != label else []
