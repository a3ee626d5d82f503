"""import_file: one file, one transaction, a report of what was added, skipped and rejected."""
from __future__ import annotations

import errno
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from db.examples import NewExample, content_hash, ids_by_source, insert_examples, stored_pair
from db.generations import add_generations, dedupe_key
from db.paths import store_path
from db.runs import finish_run, start_run
from db.staging import StagedRows, stage_rows
from db.thoughts import thought_with_text
from db.tx import when_unlocked, write_tx
from pipeline.importing.errors import (
    BadRow,
    ImportFailed,
    NoGold,
    ReportFailed,
    RowProblem,
    three_class_failure,
)
from pipeline.importing.names import Names
from pipeline.importing.parallel import PARALLEL_MIN_BYTES, staged_in_child
from pipeline.importing.plan import ImportPlan, plan_import
from pipeline.importing.readers import Record, file_records, jsonl_records, text_lines
from pipeline.importing.rejected import PendingReport, check_report, default_report_path
from pipeline.importing.validate import (
    Target,
    answer_label,
    example_batches,
    inconsistent,
    pair,
)
from pipeline.labels import LabelMap

Progress = Callable[[int], None]
_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


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
    no_consensus: int = 0  # rows whose gold label says the annotators did not agree (skipped)
    layout: str = ""  # how the columns and labels were read
    names: Names | None = None  # where dataset and split came from


def import_file(
    db: Database,
    path: str | Path,
    *,
    dataset: str | None = None,
    split: str | None = None,
    fmt: str = "auto",
    model: str | None = None,
    label_map: LabelMap | None = None,
    columns: str | None = None,
    skip_bad: bool = False,
    unlabelled: bool = False,
    report_path: Path | None = None,
    progress: Progress | None = None,
    on_wait: Callable[[], None] | None = None,
) -> ImportReport:
    """Import one file in one transaction; raises ImportFailed (writing nothing) on bad input or a full disk.

    progress, if given, is called now and then with the last input line handled. Large CSV and
    JSON Lines files of pairs are parsed in a second process while this one writes. While another
    process holds the store's write lock, the import waits for it; on_wait is told each busy timeout.
    """
    plan = plan_import(path, fmt=fmt, dataset=dataset, split=split, model=model, label_map=label_map,
                       columns=columns, unlabelled=unlabelled)
    pending = None
    if skip_bad:
        report_path = report_path or default_report_path(plan.path)
        check_report(report_path, store=store_path(db), source=plan.path)
        pending = PendingReport(report_path)
    outer = db.conn.in_transaction
    try:
        report = when_unlocked(lambda: _import_once(db, plan, skip_bad, pending, progress), on_wait=on_wait)
    except BaseException as exc:
        if pending is not None:
            pending.discard()
        if not outer and db.conn.in_transaction:  # a COMMIT that failed (a full disk) leaves it open
            db.conn.rollback()
        why = _write_failure(exc)
        if why:
            raise ImportFailed(plan.path, [], f"{store_path(db)}: {why} while importing {plan.path} ({exc}); "
                               "nothing was imported (an import is one transaction). Free some space on that "
                               "disk (or raise the limit: `ulimit -f`), then run the same command again.") from None
        raise
    if pending is not None and report.rejected:
        try:
            report.report_path = pending.publish()
        except OSError as exc:
            raise ReportFailed(f"{plan.path}: the good rows were imported, but the report of the "
                               f"{len(report.rejected)} rejected rows could not be moved to {pending.path} "
                               f"({exc.strerror}); it is at {pending.tmp}.") from None
    return report


def _storable(text: str) -> str:
    """text, with what cannot be stored as UTF-8 (a file name's undecodable bytes) as backslash escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _write_failure(exc: BaseException) -> str | None:
    """What a failed write means for the user, when exc is the disk (or a size limit) refusing data."""
    if isinstance(exc, sqlite3.DatabaseError):
        code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
        if code == sqlite3.SQLITE_FULL:
            return "the disk is full"
        if code == sqlite3.SQLITE_IOERR:  # what SQLite makes of EFBIG (a file-size limit), among others
            return "writing failed: the disk may be full, a file-size limit reached, or the disk failing,"
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return "the disk is full, or a file-size limit was reached,"
    return None


def _import_once(db: Database, plan: ImportPlan, skip_bad: bool, pending: PendingReport | None,
                 progress: Progress | None) -> ImportReport:
    """One try at the import's transaction (when_unlocked tries again while another writer holds the lock)."""
    target, path = plan.target, plan.path
    report = ImportReport(path, plan.format, target.dataset, target.split, layout=plan.layout_text(),
                          names=plan.names)
    bad: list[BadRow] = []
    skipped: list[int] = []
    with write_tx(db):
        run_id = start_run(db, "import", {"path": _storable(str(path)), "format": plan.format,
                                          "dataset": target.dataset, "split": target.split, "model": target.model,
                                          "skip_bad": skip_bad, "layout": target.layout.name})
        if plan.format == "seed-reflections":
            records = jsonl_records(path, text_lines(path), target.label_fields)
            _import_reflections(db, records, report, target, run_id, bad, skipped)
        else:
            _import_pairs_and_thoughts(db, path, plan.format, report, target, run_id, bad, skipped, progress)
        bad.sort(key=lambda b: b.line)
        if any(b.three_class for b in bad):
            raise three_class_failure(path, bad, skip_bad)
        if bad and not skip_bad:
            raise ImportFailed(path, bad)
        report.rejected, report.run_id, report.no_consensus = bad, run_id, len(skipped)
        if bad and pending is not None:
            try:
                pending.write(bad)
            except OSError as exc:  # inside the transaction: the import is rolled back with it
                raise ImportFailed(path, [], f"{pending.path}: cannot write the report of rejected rows "
                                   f"({exc.strerror}); nothing was imported (an import is one transaction). Free "
                                   "some space, or choose another --report path, then run the same command again."
                                   ) from None
        finish_run(db, run_id, "completed", metrics=_metrics(report))
    return report


def _import_pairs_and_thoughts(db: Database, path: Path, fmt: str, report: ImportReport, target: Target,
                               run_id: int, bad: list[BadRow], skipped: list[int], progress: Progress | None) -> None:
    thoughts: list[tuple[NewExample, dict[str, Any]]] | None = [] if fmt == "seed-thoughts" else None
    batches: Iterator[StagedRows]
    if thoughts is None and path.stat().st_size >= PARALLEL_MIN_BYTES:
        batches = staged_in_child(path, fmt, target, bad, skipped)
    else:
        batches = map(stage_rows, example_batches(file_records(path, fmt, target), target, bad, skipped, thoughts))
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
                        target: Target, run_id: int, bad: list[BadRow], skipped: list[int]) -> None:
    report.kind = "reflection"
    parsed: list[tuple[Record, NewExample]] = []
    for rec in records:
        if isinstance(rec, BadRow):
            bad.append(rec)
            continue
        try:
            parsed.append((rec, pair(rec, target)))
        except RowProblem as exc:
            bad.append(BadRow(rec.line, exc.reason, exc.fix, rec.raw, exc.three_class))
        except NoGold:
            skipped.append(rec.line)
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
    stored_hash, stored_gold = stored_pair(db, example_id)
    if stored_hash != content_hash(example.premise, example.hypothesis):
        raise RowProblem(f"premise/hypothesis differ from example id {example.source_id} in {where}",
                         "check that the reflection file belongs to this dataset and split")
    if stored_gold != example.gold_label:
        raise RowProblem(f"true_label {example.gold_label} differs from the stored gold label {stored_gold}",
                         "check that the reflection file belongs to this dataset and split")
    flawed = rec.data.get("thought_process")
    parent = thought_with_text(db, example_id, flawed)
    if parent is None:
        raise RowProblem(f"no stored thought of example id {example.source_id} matches this reflection's "
                         "thought_process", "import the thoughts file first (the reflection is linked to the "
                         "thought it corrects)")
    improved = rec.data.get("improved_thought_process")
    analysis = rec.data.get("error_analysis")
    # As the parser stores a reflection: failed (no label) without the improved thought or a 0/1 label;
    # without an error analysis it keeps its label, noted (an export uses only the thought and the label).
    label, problems = answer_label(rec.data, "improved_thought_process", improved)
    if not (isinstance(analysis, str) and analysis.strip()):
        problems.append("missing error_analysis")
    ok = label is not None
    not_gold = ["label_not_gold"] if label is not None and label != example.gold_label else []
    flags = not_gold + inconsistent(improved, label)
    fields = {
        "example_id": example_id,
        "kind": "reflection",
        "parent_id": parent,
        "model": model or str(rec.data.get("model") or "unknown"),
        "backend": "import",
        "params": {"source_line": rec.line, **({"parse_problems": problems} if problems else {})},
        "thought_process": improved if isinstance(improved, str) else None,
        "error_analysis": analysis if isinstance(analysis, str) else None,
        "predicted_label": label,
        "raw_response": None if ok else rec.raw,
        "parse_status": ("repaired" if problems else "ok") if ok else "failed",
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
        "no_consensus_skipped": report.no_consensus,
    }
