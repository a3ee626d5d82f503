"""Import NLI pairs and the original pipeline's thought / reflection files into the store.

Formats (auto-detected by extension and by the fields of the first record):
- `csv`: header with `premise`, `hypothesis`, `label` (and optionally `id`);
- `jsonl`: one object per line with the same fields;
- `seed-thoughts`: JSON Lines of stage-1 output (`id, premise, hypothesis, thought_process,
  predicted_label, true_label`, optionally `raw_response`);
- `seed-reflections`: JSON Lines of stage-3 output (`id, premise, hypothesis, thought_process`
  (the flawed thought), `predicted_label` (the reflection's label), `true_label`, `error_analysis`,
  `improved_thought_process`).

Text is stored exactly as given. A whole import is one transaction: bad input writes nothing,
unless `skip_bad`, which imports the good rows and writes the rejected ones to a report.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from db.examples import NewExample, content_hash, ids_by_source, insert_examples
from db.generations import add_generations, dedupe_key
from db.runs import finish_run, start_run
from db.tx import write_tx
from pipeline.labels import LabelError, gold_label
from pipeline.parsing import concluded_label, label_value, parse_thought

FORMATS = ("auto", "csv", "jsonl", "seed-thoughts", "seed-reflections")
_SPLIT_SUFFIX = re.compile(r"^(?P<name>.+?)[_.-](?P<split>train|dev|test|validation|val)$", re.I)
_STAGE_SUFFIX = re.compile(r"[_.-](thoughts?|reflections?)$", re.I)
MAX_SHOWN = 5
BATCH = 20_000
Progress = Callable[[int], None]


@dataclass(frozen=True)
class BadRow:
    """One rejected input row: where, why, how to fix it, and the row as it was."""

    line: int
    reason: str
    fix: str
    raw: str = ""


class ImportFailed(Exception):
    """The file cannot be imported; nothing was written. str() is the message for the user."""

    def __init__(self, path: Path, problems: list[BadRow], header: str | None = None):
        self.path, self.problems = path, problems
        lines = [header or f"{path}: {len(problems)} bad row(s); nothing was imported."]
        lines += [f"  {path}:{p.line}: {p.reason}. Fix: {p.fix}." for p in problems[:MAX_SHOWN]]
        if len(problems) > MAX_SHOWN:
            lines.append(f"  ... and {len(problems) - MAX_SHOWN} more.")
        if problems and problems[0].line > 0:
            lines.append("Fix the rows, or pass --skip-bad to import the good ones and write the rest to a report.")
        super().__init__("\n".join(lines))


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


class _Record:
    """An input record and the line it started on: a JSON object, or CSV values with the header.

    For CSV the dict and the raw text are built only when a row needs the slow path.
    """

    __slots__ = ("line", "index", "_data", "values", "names", "_raw")

    def __init__(self, line: int, index: int, data: dict[str, Any] | None, raw: str = "",
                 values: list[str] | None = None, names: list[str] | None = None):
        self.line, self.index, self._data, self._raw = line, index, data, raw
        self.values, self.names = values, names

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = dict(zip(self.names or [], self.values or []))
        return self._data

    @property
    def raw(self) -> str:
        return self._raw if self.values is None else _csv_line(self.values)


def default_names(path: Path) -> tuple[str, str]:
    """Dataset and split from a file name: rte_dev.csv -> (rte, dev); sample_thoughts.json -> (sample, train)."""
    stem = _STAGE_SUFFIX.sub("", Path(path.name).stem)
    match = _SPLIT_SUFFIX.match(stem)
    if match:
        return match["name"], match["split"].lower()
    return stem or "default", "train"


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

    progress, if given, is called now and then with the last input line handled.
    """
    path = Path(path)
    text = _read_text(path)
    fmt = detect_format(path, text) if fmt == "auto" else fmt
    if fmt not in FORMATS[1:]:
        raise ImportFailed(path, [], f"{path}: unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
    default_dataset, default_split = default_names(path)
    report = ImportReport(path, fmt, dataset or default_dataset, split or default_split)
    mapping = label_map or {}
    required = ["premise", "hypothesis"] + ([] if unlabelled else ["label"])
    records = (_csv_records(path, text, required, report.dataset, report.split, unlabelled) if fmt == "csv"
               else _jsonl_records(path, text))
    bad: list[BadRow] = []
    with write_tx(db):
        run_id = start_run(db, "import", {"path": str(path), "format": fmt, "dataset": report.dataset,
                                          "split": report.split, "model": model, "skip_bad": skip_bad})
        if fmt == "seed-reflections":
            _import_reflections(db, records, report, mapping, model, run_id, bad)
        else:
            _import_pairs_and_thoughts(db, records, report, mapping, model, run_id, bad, fmt, unlabelled, progress)
        bad.sort(key=lambda b: b.line)
        if bad and not skip_bad:
            raise ImportFailed(path, bad)
        report.rejected, report.run_id = bad, run_id
        finish_run(db, run_id, "completed", metrics=_metrics(report))
    if bad:
        report.report_path = write_rejected(bad, report_path or Path(f"{path.name}.rejected.jsonl"))
    return report


def detect_format(path: Path, text: str) -> str:
    """csv by extension; otherwise by the fields of the first JSON record."""
    if path.suffix.lower() in (".csv", ".tsv"):
        return "csv"
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    try:
        obj = json.loads(first)
    except json.JSONDecodeError:
        if first.lstrip().startswith("[") or first.strip() == "{":
            raise ImportFailed(path, [], f"{path}: this looks like one JSON document, not JSON Lines; "
                               "write one object per line.") from None
        raise ImportFailed(path, [], f"{path}: cannot tell the format: line 1 is neither a CSV file "
                           "(.csv) nor a JSON object. Pass --format.") from None
    if not isinstance(obj, dict):
        raise ImportFailed(path, [], f"{path}:1: expected a JSON object per line, found {type(obj).__name__}.")
    if "improved_thought_process" in obj or "error_analysis" in obj:
        return "seed-reflections"
    if "thought_process" in obj or "raw_response" in obj:
        return "seed-thoughts"
    return "jsonl"


def write_rejected(bad: list[BadRow], path: Path) -> Path:
    """Write rejected rows (line, reason, fix, raw) as JSON Lines via a temporary file; returns the path."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for b in bad:
            fh.write(json.dumps({"line": b.line, "reason": b.reason, "fix": b.fix, "raw": b.raw},
                                ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path.resolve()


def _read_text(path: Path) -> str:
    if not path.exists():
        raise ImportFailed(path, [], f"{path}: no such file. Check the path (it is relative to {Path.cwd()}).")
    if path.is_dir():
        raise ImportFailed(path, [], f"{path}: is a directory; give the path of a CSV or JSON Lines file.")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportFailed(
            path, [], f"{path}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}). "
            "Fix: re-save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`."
        ) from None


def _csv_records(path: Path, text: str, required: list[str], dataset: str, split: str,
                 unlabelled: bool) -> Iterator[NewExample | _Record | BadRow]:
    """CSV rows: plain valid rows straight as NewExample (the fast path), the rest as records to check."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFailed(path, [], f"{path}: the file is empty; expected a header premise,hypothesis,label.") from None
    except csv.Error as exc:
        raise ImportFailed(path, [], f"{path}:1: cannot read the CSV header: {exc}.") from None
    names = [h.strip() for h in header]
    missing = [name for name in required if name not in names]
    if missing:
        raise ImportFailed(path, [], f"{path}:1: the header lacks {', '.join(missing)} (it has "
                           f"{', '.join(names) or 'nothing'}). Fix: name the columns premise,hypothesis,label "
                           "(and optionally id)" + ("" if "label" not in missing else
                           ", or pass --unlabelled for data without gold labels") + ".")
    width, fast = len(names), "id" not in names
    ip, ih = names.index("premise"), names.index("hypothesis")
    il = None if unlabelled else names.index("label")
    start, index = reader.line_num + 1, 0
    rows = iter(reader)
    while True:
        try:
            for values in rows:
                if values:
                    if len(values) != width:
                        yield BadRow(start, f"the row has {len(values)} fields but the header has {width}",
                                     "quote fields that contain commas", _csv_line(values))
                    else:
                        premise, hypothesis = values[ip], values[ih]
                        gold = None if il is None else _PLAIN_LABELS.get(values[il], -1)
                        if fast and gold != -1 and premise.strip() and hypothesis.strip():
                            yield NewExample(start, dataset, split, str(index), premise, hypothesis, gold)
                        else:
                            yield _Record(start, index, None, values=values, names=names)
                    index += 1
                start = reader.line_num + 1
            return
        except csv.Error as exc:
            yield BadRow(start, f"malformed CSV ({exc})", "close the quotes of this row")
            start, index = reader.line_num + 1, index + 1


def _csv_line(values: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue()


def _jsonl_records(path: Path, text: str) -> Iterator[_Record | BadRow]:
    index = -1
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        index += 1
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield BadRow(number, f"malformed JSON ({exc.msg} at column {exc.colno})",
                         "write one complete JSON object per line", line)
            continue
        if not isinstance(obj, dict):
            yield BadRow(number, f"expected a JSON object, found {type(obj).__name__}",
                         "write one JSON object per line", line)
            continue
        yield _Record(number, index, obj, line)


def _pair(record: _Record, mapping: dict[str, int], gold_field: str, unlabelled: bool,
          dataset: str, split: str) -> NewExample:
    """Validate the pair fields of a record; raises _Bad."""
    data = record.data
    missing = [k for k in ("premise", "hypothesis") if k not in data] + (
        [] if unlabelled or gold_field in data else [gold_field])
    if missing:
        raise _Bad(f"missing field(s) {', '.join(missing)}",
                   f"every row needs premise, hypothesis and {gold_field}" + ("" if unlabelled else
                   " (or pass --unlabelled for data without gold labels)"))
    for key in ("premise", "hypothesis"):
        if not isinstance(data[key], str):
            raise _Bad(f"{key} is {type(data[key]).__name__}, not text", f"give {key} as a string")
        if not data[key].strip():
            raise _Bad(f"empty {key}", f"fill in the {key} or drop the row")
    gold = None
    if not unlabelled:
        try:
            gold = gold_label(data[gold_field], mapping)
        except LabelError as exc:
            raise _Bad(str(exc).split(":")[0], str(exc).split(": ", 1)[-1]) from None
    source = data.get("id")
    if source is None or (isinstance(source, str) and not source.strip()):
        source = record.index
    if isinstance(source, (dict, list, bool)):
        raise _Bad(f"id {source!r} is not a number or text", "give ids as numbers or strings")
    return NewExample(record.line, dataset, split, str(source), data["premise"], data["hypothesis"], gold)


_PLAIN_LABELS = {"0": 0, "1": 1}


class _Bad(Exception):
    def __init__(self, reason: str, fix: str):
        super().__init__(reason)
        self.reason, self.fix = reason, fix


def _import_pairs_and_thoughts(db: Database, records: Iterator[_Record | BadRow], report: ImportReport,
                               mapping: dict[str, int], model: str | None, run_id: int, bad: list[BadRow],
                               fmt: str, unlabelled: bool, progress: Progress | None) -> None:
    thoughts = fmt == "seed-thoughts"
    gold_field = "true_label" if thoughts else "label"
    gens: list[tuple[NewExample, dict[str, Any]]] = []

    def batches() -> Iterator[list[NewExample]]:
        """Validated pairs in batches."""
        batch: list[NewExample] = []
        for rec in records:
            if type(rec) is NewExample:
                batch.append(rec)
                if len(batch) == BATCH:
                    yield batch
                    batch = []
                continue
            if isinstance(rec, BadRow):
                bad.append(rec)
                continue
            try:
                pair = _pair(rec, mapping, gold_field, unlabelled, report.dataset, report.split)
                if thoughts:
                    gens.append((pair, _thought_fields(rec, model)))
            except _Bad as exc:
                bad.append(BadRow(rec.line, exc.reason, exc.fix, rec.raw))
                continue
            batch.append(pair)
            if len(batch) == BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    def counted(source: Iterator[list[NewExample]]) -> Iterator[list[NewExample]]:
        for batch in source:
            yield batch
            if progress:
                progress(batch[-1].line)

    result = insert_examples(db, counted(batches()))
    report.examples_added, report.examples_unchanged = result.added, result.unchanged
    conflicted = {c.line for c in result.conflicts}
    bad.extend(BadRow(c.line, c.reason, "give the row a new id, or import it under another --dataset/--split", "")
               for c in result.conflicts)
    if thoughts:
        report.kind = "thought"
        kept = [(p, g) for p, g in gens if p.line not in conflicted]
        ids = ids_by_source(db, report.dataset, report.split, [p.source_id for p, _ in kept])
        rows = []
        for pair, gen in kept:
            gen.update(example_id=ids[pair.source_id], run_id=run_id)
            gen["dedupe_key"] = dedupe_key("import", "thought", report.dataset, report.split, pair.source_id,
                                           gen["model"], gen["thought_process"], gen["predicted_label"],
                                           gen["raw_response"])
            rows.append(gen)
        added = add_generations(db, rows)
        report.generations_added, report.generations_unchanged = len(added), len(rows) - len(added)


def _thought_fields(rec: _Record, model: str | None) -> dict[str, Any]:
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
        "flags": _inconsistent(thought, label),
    }


def _inconsistent(text: object, label: int | None) -> list[str]:
    """The label_inconsistent flag when the reasoning's own conclusion is the other label."""
    said = concluded_label(text) if isinstance(text, str) else None
    return ["label_inconsistent"] if label is not None and said is not None and said != label else []


def _import_reflections(db: Database, records: Iterator[_Record | BadRow], report: ImportReport,
                        mapping: dict[str, int], model: str | None, run_id: int, bad: list[BadRow]) -> None:
    report.kind = "reflection"
    parsed: list[tuple[_Record, NewExample]] = []
    for rec in records:
        if isinstance(rec, BadRow):
            bad.append(rec)
            continue
        try:
            parsed.append((rec, _pair(rec, mapping, "true_label", False, report.dataset, report.split)))
        except _Bad as exc:
            bad.append(BadRow(rec.line, exc.reason, exc.fix, rec.raw))
    ids = ids_by_source(db, report.dataset, report.split, [p.source_id for _, p in parsed])
    rows = []
    for rec, pair in parsed:
        try:
            rows.append(_reflection_fields(db, rec, pair, ids, model, run_id, report))
        except _Bad as exc:
            bad.append(BadRow(rec.line, exc.reason, exc.fix, rec.raw))
    added = add_generations(db, rows)
    report.generations_added, report.generations_unchanged = len(added), len(rows) - len(added)


def _reflection_fields(db: Database, rec: _Record, pair: NewExample, ids: dict[str, int], model: str | None,
                       run_id: int, report: ImportReport) -> dict[str, Any]:
    where = f"{report.dataset}/{report.split}"
    example_id = ids.get(pair.source_id)
    if example_id is None:
        raise _Bad(f"reflection for unknown example id {pair.source_id} in {where}",
                   "import the examples (or the thoughts file) first, with the same --dataset and --split")
    stored = db.execute("SELECT content_hash, gold_label FROM examples WHERE id = ?", [example_id]).fetchone()
    if stored[0] != content_hash(pair.premise, pair.hypothesis):
        raise _Bad(f"premise/hypothesis differ from example id {pair.source_id} in {where}",
                   "check that the reflection file belongs to this dataset and split")
    if stored[1] != pair.gold_label:
        raise _Bad(f"true_label {pair.gold_label} differs from the stored gold label {stored[1]}",
                   "check that the reflection file belongs to this dataset and split")
    flawed = rec.data.get("thought_process")
    parent = db.execute(
        "SELECT max(id) FROM generations WHERE example_id = ? AND kind = 'thought' AND thought_process = ?",
        [example_id, flawed],
    ).fetchone()[0]
    if parent is None:
        raise _Bad(f"no stored thought of example id {pair.source_id} matches this reflection's thought_process",
                   "import the thoughts file first (the reflection is linked to the thought it corrects)")
    improved = rec.data.get("improved_thought_process")
    analysis = rec.data.get("error_analysis")
    label, note = label_value(rec.data.get("predicted_label"))
    ok = all(isinstance(t, str) and t.strip() for t in (improved, analysis)) and label is not None
    flags = (["label_not_gold"] if label is not None and label != pair.gold_label else []) + _inconsistent(improved, label)
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
    fields["dedupe_key"] = dedupe_key("import", "reflection", report.dataset, report.split, pair.source_id,
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
