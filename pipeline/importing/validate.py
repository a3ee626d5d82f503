"""Turning records into examples and model outputs (pure functions: they also run in the parser process)."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from db.examples import ExampleRow, NewExample, example_row
from pipeline.importing.errors import BadRow, RowProblem
from pipeline.importing.readers import Record
from pipeline.labels import LabelError, gold_label
from pipeline.parsing import concluded_label, label_value, parse_thought

BATCH = 20_000
FIRST_BATCH = 2_000  # small, so the writer starts while the rest is parsed


@dataclass(frozen=True)
class Target:
    """Where and how records are imported."""

    dataset: str
    split: str
    mapping: dict[str, int]
    unlabelled: bool = False
    gold_field: str = "label"  # "true_label" in the seed files
    model: str | None = None


def pair(record: Record, target: Target) -> NewExample:
    """Validate the pair fields of a record; raises RowProblem."""
    data, gold_field, unlabelled = record.data, target.gold_field, target.unlabelled
    missing = [k for k in ("premise", "hypothesis") if k not in data] + (
        [] if unlabelled or gold_field in data else [gold_field])
    if missing:
        raise RowProblem(f"missing field(s) {', '.join(missing)}",
                         f"every row needs premise, hypothesis and {gold_field}" + ("" if unlabelled else
                         " (or pass --unlabelled for data without gold labels)"))
    for key in ("premise", "hypothesis"):
        if not isinstance(data[key], str):
            raise RowProblem(f"{key} is {type(data[key]).__name__}, not text", f"give {key} as a string")
        if not data[key].strip():
            raise RowProblem(f"empty {key}", f"fill in the {key} or drop the row")
    gold = None
    if not unlabelled:
        try:
            gold = gold_label(data[gold_field], target.mapping)
        except LabelError as exc:
            raise RowProblem(str(exc).split(":")[0], str(exc).split(": ", 1)[-1]) from None
    source = data.get("id")
    if source is None or (isinstance(source, str) and not source.strip()):
        source = record.index
    if isinstance(source, (dict, list, bool)):
        raise RowProblem(f"id {source!r} is not a number or text", "give ids as numbers or strings")
    return NewExample(record.line, target.dataset, target.split, str(source), data["premise"],
                      data["hypothesis"], gold)


def example_batches(records: Iterator[NewExample | Record | BadRow], target: Target, bad: list[BadRow],
                    thoughts: list[tuple[NewExample, dict[str, Any]]] | None = None) -> Iterator[list[ExampleRow]]:
    """Validated example rows in batches; rejected rows go to bad, and (for thought files) the
    thought of each good record to thoughts."""
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
                bad.append(BadRow(rec.line, exc.reason, exc.fix, rec.raw))
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
    """A stored thought from a stage-1 record; only a raw reply goes through the parser."""
    data = rec.data
    thought, raw = data.get("thought_process"), data.get("raw_response")
    label, note = label_value(data.get("predicted_label"))
    problems = [note] if note else []
    ok = isinstance(thought, str) and bool(thought.strip()) and label is not None
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


def inconsistent(text: object, label: int | None) -> list[str]:
    """The label_inconsistent flag when the reasoning's own conclusion is the other label."""
    said = concluded_label(text) if isinstance(text, str) else None
    return ["label_inconsistent"] if label is not None and said is not None and said != label else []
