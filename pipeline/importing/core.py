"""import_file: one file, one transaction, a report of what was added, skipped and rejected."""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from db.examples import NewExample, content_hash, ids_by_source, insert_examples
from db.generations import add_generations, dedupe_key
from db.runs import finish_run, start_run
from db.staging import StagedRows, stage_rows
from db.tx import write_tx
from pipeline.importing.errors import BadRow, ImportFailed, RowProblem
from pipeline.importing.parallel import PARALLEL_MIN_BYTES, staged_in_child
from pipeline.importing.readers import (
    Record,
    csv_records,
    default_names,
    detect_format,
    jsonl_records,
    read_head,
    text_lines,
)
from pipeline.importing.validate import Target, example_batches, inconsistent, pair
from pipeline.parsing import label_value

FORMATS = ("auto", "csv", "jsonl", "seed-thoughts", "seed-reflections")
Progress = Callable[[int], None]


@dataclass
class ImportReport:
    """What an import did."""

    path: Path
    format: str
    dataset: str
    split: str
    examples_added: int = 0
    examples_unchanged: int = 0
    generations_added: int = 0
    generations_unchanged: int = 0
    kind: str | None = None  # the generation kind the file held, if any
    rejected: list[BadRow] = field(default_factory=list)
    report_path: Path | None = None
    run_id: int | None = None


def import_file(
    db: Database,
    path: str | Path,
    *,
    dataset: str | None = None,
    split: str | None = None,
    fmt: str = "auto",
    model: str | None = None,
    label_map: dict[str, int] | None = None,
    skip_bad: bool = False,
    unlabelled: bool = False,
    report_path: Path | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import one file in one transaction; raises ImportFailed (writing nothing) on bad input.

    progress, if given, is called now and then with the last input line handled. Large CSV and
    JSON Lines files of pairs are parsed in a second process while this one writes.
    """
    path = Path(path)
    fmt = detect_format(path, read_head(path)) if fmt == "auto" else fmt
    if fmt not in FORMATS[1:]:
        raise ImportFailed(path, [], f"{path}: unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
    default_dataset, default_split = default_names(path)
    report = ImportReport(path, fmt, dataset or default_dataset, split or default_split)
    seed = fmt.startswith("seed-")
    target = Target(report.dataset, report.split, label_map or {}, unlabelled and not seed,
                    "true_label" if seed else "label", model)
    bad: list[BadRow] = []
    with write_tx(db):
        run_id = start_run(db, "import", {"path": str(path), "format": fmt, "dataset": report.dataset,
                                          "split": report.split, "model": model, "skip_bad": skip_bad})
        if fmt == "seed-reflections":
            _import_reflections(db, jsonl_records(path, text_lines(path)), report, target, run_id, bad)
        else:
            _import_pairs_and_thoughts(db, path, fmt, report, target, run_id, bad, progress)
        bad.sort(key=lambda b: b.line)
        if bad and not skip_bad:
            raise ImportFailed(path, bad)
        report.rejected, report.run_id = bad, run_id
        finish_run(db, run_id, "completed", metrics=_metrics(report))
    if bad:
        report.report_path = write_rejected(bad, report_path or Path(f"{path.name}.rejected.jsonl"))
    return report


def write_rejected(bad: list[BadRow], path: Path) -> Path:
    """Write rejected rows (line, reason, fix, raw) as JSON Lines via a temporary file; returns the path."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for b in bad:
            fh.write(json.dumps({"line": b.line, "reason": b.reason, "fix": b.fix, "raw": b.raw},
                                ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path.resolve()


def _import_pairs_and_thoughts(db: Database, path: Path, fmt: str, report: ImportReport, target: Target,
                               run_id: int, bad: list[BadRow], progress: Progress | None) -> None:
    thoughts: list[tuple[NewExample, dict[str, Any]]] | None = [] if fmt == "seed-thoughts" else None
    required = ["premise", "hypothesis"] + ([] if target.unlabelled else ["label"])
    batches: Iterator[StagedRows]
    if thoughts is None and path.stat().st_size >= PARALLEL_MIN_BYTES:
        batches = staged_in_child(path, fmt, required, target, bad)
    else:
        lines = text_lines(path)
        records = (csv_records(path, lines, required, target.dataset, target.split, target.unlabelled)
                   if fmt == "csv" else jsonl_records(path, lines))
        batches = map(stage_rows, example_batches(records, target, bad, thoughts))
    result = insert_examples(db, _reporting(batches, progress))
    report.examples_added, report.examples_unchanged = result.added, result.unchanged
    conflicted = {c.line for c in result.conflicts}
    bad.extend(BadRow(c.line, c.reason, "give the row a new id, or import it under another --dataset/--split", "")
               for c in result.conflicts)
    if thoughts is None:
        return
    report.kind = "thought"
    kept = [(p, g) for p, g in thoughts if p.line not in conflicted]
    ids = ids_by_source(db, report.dataset, report.split, [p.source_id for p, _ in kept])
    rows = []
    for example, gen in kept:
        gen.update(example_id=ids[example.source_id], run_id=run_id)
        gen["dedupe_key"] = dedupe_key("import", "thought", report.dataset, report.split, example.source_id,
                                       gen["model"], gen["thought_process"], gen["predicted_label"],
                                       gen["raw_response"])
        rows.append(gen)
    added = add_generations(db, rows)
    report.generations_added, report.generations_unchanged = len(added), len(rows) - len(added)


def _reporting(batches: Iterator[StagedRows], progress: Progress | None) -> Iterator[StagedRows]:
    for batch in batches:
        yield batch
        if progress:
            progress(batch.last_line)


def _import_reflections(db: Database, records: Iterator[Record | BadRow], report: ImportReport,
                        target: Target, run_id: int, bad: list[BadRow]) -> None:
    report.kind = "reflection"
    parsed: list[tuple[Record, NewExample]] = []
    for rec in records:
        if isinstance(rec, BadRow):
            bad.append(rec)
            continue
        try:
            parsed.append((rec, pair(rec, target)))
        except RowProblem as exc:
            bad.append(BadRow(rec.line, exc.reason, exc.fix, rec.raw))
    ids = ids_by_source(db, report.dataset, report.split, [p.source_id for _, p in parsed])
    rows = []
    for rec, example in parsed:
        try:
            rows.append(_reflection_fields(db, rec, example, ids, target.model, run_id, report))
        except RowProblem as exc:
            bad.append(BadRow(rec.line, exc.reason, exc.fix, rec.raw))
    added = add_generations(db, rows)
    report.generations_added, report.generations_unchanged = len(added), len(rows) - len(added)


def _reflection_fields(db: Database, rec: Record, example: NewExample, ids: dict[str, int], model: str | None,
                       run_id: int, report: ImportReport) -> dict[str, Any]:
    where = f"{report.dataset}/{report.split}"
    example_id = ids.get(example.source_id)
    if example_id is None:
        raise RowProblem(f"reflection for unknown example id {example.source_id} in {where}",
                         "import the examples (or the thoughts file) first, with the same --dataset and --split")
    stored = db.execute("SELECT content_hash, gold_label FROM examples WHERE id = ?", [example_id]).fetchone()
    if stored[0] != content_hash(example.premise, example.hypothesis):
        raise RowProblem(f"premise/hypothesis differ from example id {example.source_id} in {where}",
                         "check that the reflection file belongs to this dataset and split")
    if stored[1] != example.gold_label:
        raise RowProblem(f"true_label {example.gold_label} differs from the stored gold label {stored[1]}",
                         "check that the reflection file belongs to this dataset and split")
    flawed = rec.data.get("thought_process")
    parent = db.execute(
        "SELECT max(id) FROM generations WHERE example_id = ? AND kind = 'thought' AND thought_process = ?",
        [example_id, flawed],
    ).fetchone()[0]
    if parent is None:
        raise RowProblem(f"no stored thought of example id {example.source_id} matches this reflection's "
                         "thought_process", "import the thoughts file first (the reflection is linked to the "
                         "thought it corrects)")
    improved = rec.data.get("improved_thought_process")
    analysis = rec.data.get("error_analysis")
    label, note = label_value(rec.data.get("predicted_label"))
    ok = all(isinstance(t, str) and t.strip() for t in (improved, analysis)) and label is not None
    flags = (["label_not_gold"] if label is not None and label != example.gold_label else []) + inconsistent(improved, label)
    fields = {
        "example_id": example_id,
        "kind": "reflection",
        "parent_id": parent,
        "model": model or str(rec.data.get("model") or "unknown"),
        "backend": "import",
        "params": {"source_line": rec.line, **({"parse_problems": [note]} if note else {})},
        "thought_process": improved if isinstance(improved, str) else None,
        "error_analysis": analysis if isinstance(analysis, str) else None,
        "predicted_label": label,
        "raw_response": None if ok else rec.raw,
        "parse_status": ("repaired" if note else "ok") if ok else "failed",
        "flags": flags,
        "run_id": run_id,
    }
    fields["dedupe_key"] = dedupe_key("import", "reflection", report.dataset, report.split, example.source_id,
                                      fields["model"], parent, improved, analysis, label)
    return fields


def _metrics(report: ImportReport) -> dict[str, Any]:
    return {
        "examples_added": report.examples_added,
        "examples_unchanged": report.examples_unchanged,
        "generations_added": report.generations_added,
        "generations_unchanged": report.generations_unchanged,
        "rejected": len(report.rejected),
    }
