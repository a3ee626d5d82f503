"""What SFT and DPO exports share: the length check, one read snapshot, blocks merged in id order, lineage.

An export reads its examples in one snapshot of the database and selects them in blocks of
consecutive ids (exports.block): in this process for small exports, in worker processes that
read the same snapshot for large ones (exports.parallel). Either way the blocks are merged in id
order by one Tally, which decides duplicates and counts, so both paths write the same bytes and
the same counts, and plan_with computes exactly what write_with writes.
"""
from __future__ import annotations

import contextlib
import errno
import itertools
import random
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlite_utils import Database

from db.reviews import log_position
from db.runs import finish_run, start_run
from db.tx import when_unlocked
from exports import block, parallel
from exports.block import Block
from exports.errors import EmptyExportError, ExportWriteError, ManifestPlaceError
from exports.length import ESTIMATE_NAME, TokenCounter
from exports.lineage import Manifest, database_path, listed_at, record_export
from exports.rules import SourceRow
from exports.sink import HfSink, JsonlSink
from exports.source import (
    Source,
    count_in_scope,
    outside_scope,
    read_snapshot,
    scopes_of,
)
from exports.tally import ExportPlan, Tally
from exports.target import Target, check_target

Progress = Callable[[int, int], None]  # (examples considered so far, examples in scope)
OnWait = Callable[[], None]  # told each time a write (or the workers' snapshot) waits for another process's lock
# Errors of a full or unwritable disk: said in words, with the fix.
_DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


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


@dataclass(frozen=True)
class Selector:
    """One kind of export: what it reads and how it makes a Block of a run of its rows.

    sft.selector and dpo.selector build one from the options, here and in worker processes alike.
    """

    kind: str  # sft | dpo
    rule: str  # the ablation, or the DPO pairing rule
    source: Source
    build: Callable[[Database, LengthCheck, list[SourceRow]], Block]


def chunks(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of up to size items from rows."""
    rows = iter(rows)
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


def length_check(options: Options) -> LengthCheck:
    """The length check of the options (loads the tokenizer, if one is given)."""
    return LengthCheck(options.max_tokens, TokenCounter(options.tokenizer) if options.tokenizer else None)


def _blocks_here(db: Database, selector: Selector, length: LengthCheck) -> Iterator[Block]:
    for chunk in chunks(selector.source.rows(db), block.BLOCK_EXAMPLES):
        yield selector.build(db, length, chunk)


def _finish(db: Database, tally: Tally, options: Options, length: LengthCheck, position: int) -> ExportPlan:
    """Resolve cross-split copies (inside the snapshot) and return the counts."""
    outside = outside_scope(db, options.splits, options.datasets, tally.first_copy)
    ids = [i for pair in tally.later_copies for i in pair] + [tally.first_copy[row[3]] for row in outside]
    tally.find_cross_split(scopes_of(db, ids), outside)
    return tally.plan(length_measure=length.name, max_tokens=length.max_tokens, review_log_position=position)


def _run(db: Database, options: Options, selector: Selector, length: LengthCheck, progress: Progress | None,
         write: Callable[[bytes], None] | None, on_wait: OnWait | None = None) -> ExportPlan:
    """Select every block in one snapshot, merging them in order; write gets each block's lines (None: plan)."""
    workers = parallel.workers_for(db, options)
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(parallel.Pool(db, workers, on_wait)) if workers else None  # holds writers off
        stack.enter_context(read_snapshot(db))
        position = log_position(db)  # the first read fixes the snapshot
        total = count_in_scope(db, options.splits, options.datasets)
        tally = Tally(selector.kind, selector.rule)
        blocks = pool.blocks(selector, options, total) if pool else _blocks_here(db, selector, length)
        for selected in blocks:
            data = tally.merge(selected)
            if write is not None:
                write(data)
            if progress is not None:
                progress(tally.considered, total)
        return _finish(db, tally, options, length, position)


def _nothing_message(plan: ExportPlan) -> str:
    if not plan.considered:
        return "Nothing to export: no examples in the chosen splits and datasets. `nlistral stats` lists them."
    reasons = ", ".join(f"{reason}: {n}" for reason, n in plan.left_out.items())
    hint = " Review some examples first (DPO pairs come from accept and edit decisions)." if plan.kind == "dpo" else ""
    return f"Nothing to export: all {plan.considered} examples were left out ({reasons}).{hint}"


def plan_with(db: Database, options: Options, selector: Selector, progress: Progress | None = None,
              on_wait: OnWait | None = None) -> ExportPlan:
    """Run a selection without writing and return its counts (with on_wait, a locked store is waited for)."""
    return _run(db, options, selector, length_check(options), progress, None, on_wait)


def export_target(db: Database, options: Options, out: Path | None, hf_dir: Path | None,
                  overwrite: bool = False) -> Target:
    """The checked output of an export (exports.target.check_target), against this store and the options' inputs."""
    if (out is None) == (hf_dir is None):
        raise ValueError("give exactly one of out (a .jsonl file) and hf_dir (a dataset folder)")
    path = Path(out if out is not None else hf_dir).expanduser().absolute()  # type: ignore[arg-type]
    listed = listed_at(db, path)
    about = f"export #{listed[0].id} of this store, written {listed[0].created_at[:16].replace('T', ' ')} UTC" \
        if listed else ""
    return check_target(path, folder=hf_dir is not None, overwrite=overwrite, store=database_path(db) or None,
                        inputs=[options.tokenizer] if options.tokenizer else [], listed=about)


def _explained(exc: BaseException, target: Target, run_id: int | None) -> BaseException:
    """A full or unwritable disk (the export's or the store's) as an ExportWriteError that says what to do."""
    if isinstance(exc, sqlite3.OperationalError) and exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_FULL,
                                                                                     sqlite3.SQLITE_IOERR):
        return ExportWriteError(f"The store could not be written ({exc}): its disk may be full. Nothing was exported; "
                                "free some space and export again.")
    if not isinstance(exc, OSError):
        return exc
    folder, option = target.path.parent, "--hf" if target.folder else "--out"
    if exc.errno in _DISK_FULL:
        why = f"the disk holding {folder} is full (or a quota or file-size limit was reached)"
        fix = f"Free some space there (or choose {option} on another disk) and export again."
    else:
        why = f"{folder} cannot be written here"
        fix = f"Choose {option} in a folder you can write to (or fix its permissions) and export again."
    run = f" and export run {run_id} is marked failed" if run_id is not None else ""
    return ExportWriteError(f"Writing {target.path} failed: {exc.strerror or exc}; {why}. Nothing was kept: the "
                            f"temporary file is removed{run}. {fix}")


def write_with(db: Database, options: Options, selector: Selector, fmt: str, rule_text: str, out: Path | None,
               hf_dir: Path | None, progress: Progress | None = None, *, overwrite: bool = False,
               on_wait: OnWait | None = None) -> Manifest:
    """Run a selection into a JSONL file (out) or a Hugging Face dataset folder (hf_dir), with its lineage.

    The target is checked before anything else (never the store or an input; an existing one only with
    overwrite); the run records every temporary name before the first is created; each write waits out
    another process's lock (on_wait is told each time).
    """
    target = export_target(db, options, out, hf_dir, overwrite)
    length = length_check(options)
    sink: JsonlSink | HfSink = HfSink(target, fmt) if target.folder else JsonlSink(target)
    config = {"kind": selector.kind, "path": str(target.path), "format": fmt, "storage": sink.storage,
              "overwrite": overwrite, "temporaries": target.temporaries, **options.as_dict()}
    run_id: int | None = None
    try:
        run_id = when_unlocked(lambda: start_run(db, "export", config), on_wait=on_wait)
        sink.open()
        if options.shuffle_seed is None:
            plan = _run(db, options, selector, length, progress, sink.write, on_wait)
        else:
            blocks: list[bytes] = []
            plan = _run(db, options, selector, length, progress, blocks.append, on_wait)
            lines = b"".join(blocks).splitlines(keepends=True)
            del blocks
            random.Random(options.shuffle_seed).shuffle(lines)
            sink.write(b"".join(lines))
        if not plan.rows:
            raise EmptyExportError(_nothing_message(plan))
        sink.finish()
        return record_export(db, sink=sink, plan=plan, kind=selector.kind, fmt=fmt, rule_text=rule_text,
                             options=options.as_dict(), run_id=run_id, on_wait=on_wait)
    except ManifestPlaceError:
        raise  # the export is recorded and in place
    except BaseException as exc:
        sink.abort()
        if run_id is not None:
            status, done = ("cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"), run_id
            error = f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(sqlite3.Error):  # a store that cannot be written: the sweep marks it later
                when_unlocked(lambda: finish_run(db, done, status, error=error), on_wait=on_wait)
        explained = _explained(exc, target, run_id)
        if explained is exc:
            raise
        raise explained from None
