"""What SFT and DPO exports share: the length check, one read snapshot, planning, and writing with lineage."""
from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlite_utils import Database

from db.reviews import log_position
from db.runs import finish_run, start_run
from exports.errors import EmptyExportError
from exports.length import ESTIMATE_NAME, TokenCounter
from exports.lineage import Manifest, record_export
from exports.sink import HfSink, JsonlSink
from exports.source import count_in_scope, outside_scope, read_snapshot, scopes_of
from exports.tally import ExportPlan, Tally

Progress = Callable[[int, int], None]  # (examples considered so far, examples in scope)
CHUNK = 1000  # examples per batch (tokenizer calls and progress reports)


class Options(Protocol):
    """What the engine reads of SftOptions and DpoOptions."""

    @property
    def splits(self) -> tuple[str, ...]: ...
    @property
    def datasets(self) -> tuple[str, ...]: ...
    @property
    def shuffle_seed(self) -> int | None: ...
    @property
    def max_tokens(self) -> int: ...
    @property
    def tokenizer(self) -> str | None: ...

    def as_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class LengthCheck:
    """The training-length limit and how lengths are measured (a tokenizer, or the estimate when None)."""

    max_tokens: int
    counter: TokenCounter | None

    @property
    def name(self) -> str:
        """How lengths are measured, for the plan and the manifest."""
        return self.counter.name if self.counter else ESTIMATE_NAME


@dataclass
class Selection:
    """The state one export run reads from: its options, counts so far, length check and progress."""

    db: Database
    tally: Tally
    length: LengthCheck
    total: int
    progress: Progress | None

    def report(self) -> None:
        """Tell the progress callback how far the selection is."""
        if self.progress is not None:
            self.progress(self.tally.considered, self.total)


Selector = Callable[[Selection], Iterator[list[str]]]  # yields the lines of each chunk of examples


def chunks(rows: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    """Lists of up to size items from rows."""
    rows = iter(rows)
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


def _select(db: Database, options: Options, kind: str, rule: str, selector: Selector,
            progress: Progress | None, length: LengthCheck) -> tuple[Selection, int, Iterator[list[str]]]:
    position = log_position(db)
    selection = Selection(db, Tally(kind, rule), length, count_in_scope(db, options.splits, options.datasets),
                          progress)
    return selection, position, selector(selection)


def _finish(selection: Selection, options: Options, length: LengthCheck, position: int) -> ExportPlan:
    """Resolve cross-split copies (inside the snapshot) and return the counts."""
    tally = selection.tally
    outside = outside_scope(selection.db, options.splits, options.datasets, tally.first_copy)
    ids = [i for pair in tally.later_copies for i in pair] + [tally.first_copy[row[3]] for row in outside]
    tally.find_cross_split(scopes_of(selection.db, ids), outside)
    return tally.plan(length_measure=length.name, max_tokens=length.max_tokens, review_log_position=position)


def _nothing_message(plan: ExportPlan) -> str:
    if not plan.considered:
        return "Nothing to export: no examples in the chosen splits and datasets. `nlistral stats` lists them."
    reasons = ", ".join(f"{reason}: {n}" for reason, n in plan.left_out.items())
    hint = " Review some examples first (DPO pairs come from accept and edit decisions)." if plan.kind == "dpo" else ""
    return f"Nothing to export: all {plan.considered} examples were left out ({reasons}).{hint}"


def length_check(options: Options) -> LengthCheck:
    """The length check of the options (loads the tokenizer, if one is given)."""
    return LengthCheck(options.max_tokens, TokenCounter(options.tokenizer) if options.tokenizer else None)


def plan_with(db: Database, options: Options, kind: str, rule: str, selector: Selector,
              progress: Progress | None = None) -> ExportPlan:
    """Run a selection without writing and return its counts."""
    length = length_check(options)
    with read_snapshot(db):
        selection, position, chunks_of_lines = _select(db, options, kind, rule, selector, progress, length)
        for _ in chunks_of_lines:
            pass
        return _finish(selection, options, length, position)


def write_with(db: Database, options: Options, kind: str, rule: str, fmt: str, rule_text: str, selector: Selector,
               out: Path | None, hf_dir: Path | None, progress: Progress | None = None) -> Manifest:
    """Run a selection into a JSONL file (out) or a Hugging Face dataset folder (hf_dir), with its lineage."""
    if (out is None) == (hf_dir is None):
        raise ValueError("give exactly one of out (a .jsonl file) and hf_dir (a dataset folder)")
    sink: JsonlSink | HfSink = JsonlSink(out) if out is not None else HfSink(hf_dir, fmt)  # type: ignore[arg-type]
    try:
        length = length_check(options)
        run_id = start_run(db, "export", {"kind": kind, "path": str(sink.path), "format": fmt,
                                          "storage": sink.storage, **options.as_dict()})
    except BaseException:
        sink.abort()
        raise
    try:
        with read_snapshot(db):
            selection, position, chunks_of_lines = _select(db, options, kind, rule, selector, progress, length)
            if options.shuffle_seed is not None:
                shuffled = [line for lines in chunks_of_lines for line in lines]
                random.Random(options.shuffle_seed).shuffle(shuffled)
                chunks_of_lines = iter([shuffled])
            for lines in chunks_of_lines:
                sink.write(lines)
            plan = _finish(selection, options, length, position)
        if not plan.rows:
            raise EmptyExportError(_nothing_message(plan))
        sink.finish()
        return record_export(db, sink=sink, plan=plan, kind=kind, fmt=fmt, rule_text=rule_text,
                             options=options.as_dict(), run_id=run_id)
    except BaseException as exc:
        sink.abort()
        finish_run(db, run_id, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
